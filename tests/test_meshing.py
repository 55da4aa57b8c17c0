"""Tests for vaegan.meshing (grid -> mesh -> file)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import trimesh

from vaegan import fileio
from vaegan.errors import EmptyShapeError, VoxelError
from vaegan.meshing import (
    MODEL3D_ROTATION,
    SUPPORTED_FORMATS,
    Y_UP_FORMATS,
    clean_grid,
    export_mesh,
    keep_largest_component,
    surface_points,
    to_model3d_frame,
    voxels_to_mesh,
)


def _grid(res: int, *blocks: tuple[slice, slice, slice]) -> np.ndarray:
    grid = np.zeros((res, res, res), np.float32)
    for block in blocks:
        grid[block] = 1.0
    return grid


def _chair(res: int = 16) -> np.ndarray:
    """Seat, four legs and a backrest at high axis 0 (front faces -axis0)."""
    seat = (slice(3, 13), slice(3, 13), slice(6, 8))
    legs = [(slice(a, a + 2), slice(b, b + 2), slice(0, 6)) for a in (3, 11) for b in (3, 11)]
    back = (slice(11, 13), slice(3, 13), slice(8, 15))
    return _grid(res, seat, *legs, back)


@pytest.fixture(scope="module")
def chair_mesh() -> trimesh.Trimesh:
    return voxels_to_mesh(_chair())


# --- marching cubes ------------------------------------------------------------------------


@pytest.mark.parametrize("res", [8, 16])
def test_cube_is_watertight_with_expected_volume_and_centre(res: int) -> None:
    k, lo = 4, 2
    mesh = voxels_to_mesh(_grid(res, (slice(lo, lo + k),) * 3))
    assert mesh.is_watertight
    voxel = 1.0 / res  # voxel side in the unit-cube frame
    # Surface halfway between inside/outside centres: a k-box with chamfered edges/corners.
    assert 0.85 * k**3 * voxel**3 <= mesh.volume <= k**3 * voxel**3
    centre = (lo + k / 2) / res - 0.5
    np.testing.assert_allclose(mesh.centroid, [centre] * 3, atol=1e-6)
    np.testing.assert_allclose(mesh.bounds, [[centre - k / 2 * voxel] * 3, [centre + k / 2 * voxel] * 3])


def test_full_grid_meshes_to_closed_cube() -> None:
    mesh = voxels_to_mesh(np.ones((8, 8, 8), np.float32))
    assert mesh.is_watertight and mesh.volume > 0.9
    np.testing.assert_allclose(mesh.bounds, [[-0.5] * 3, [0.5] * 3])


def test_voxel_centre_maps_to_frame() -> None:
    res, i = 8, 5
    mesh = voxels_to_mesh(_grid(res, (slice(i, i + 1),) * 3))
    np.testing.assert_allclose(mesh.centroid, [(i + 0.5) / res - 0.5] * 3, atol=1e-9)


def test_empty_grid_raises_helpful_error() -> None:
    grid = np.full((8, 8, 8), 0.31, np.float32)
    with pytest.raises(EmptyShapeError, match=r"iso-level 0.5 \(max 0.31\).*lower the level"):
        voxels_to_mesh(grid)
    assert voxels_to_mesh(grid, level=0.3).is_watertight


@pytest.mark.parametrize("level", [0.0, 1.0, -0.2, 1.5])
def test_level_outside_open_interval_raises(level: float) -> None:
    with pytest.raises(VoxelError):
        voxels_to_mesh(_chair(), level=level)


@pytest.mark.parametrize(
    "grid",
    [
        np.zeros((8, 8), np.float32),
        np.zeros((8, 8, 9), np.float32),
        np.full((8, 8, 8), np.nan, np.float32),
    ],
)
def test_bad_grids_raise_voxel_error(grid: np.ndarray) -> None:
    with pytest.raises(VoxelError):
        voxels_to_mesh(grid)


def test_level_equal_values_and_soft_grid_stay_watertight() -> None:
    rng = np.random.default_rng(0)
    soft = _chair() * 0.8 + rng.random((16, 16, 16)).astype(np.float32) * 0.2
    soft[5, 5, 7] = 0.5  # exactly at the level
    mesh = voxels_to_mesh(soft)
    assert mesh.is_watertight and mesh.volume > 0
    at_level = _chair() * np.float32(0.7)  # every occupied voxel exactly at the level
    mesh = voxels_to_mesh(at_level, level=0.7)
    assert mesh.is_watertight and mesh.volume > 0
    jitter = rng.choice(np.array([-1e-6, 0.0, 1e-6], np.float32), at_level.shape)
    near_level = np.where(at_level > 0, at_level + jitter, 0.0).astype(np.float32)
    assert voxels_to_mesh(near_level, level=0.7).is_watertight


def test_chair_mesh_is_one_watertight_piece(chair_mesh: trimesh.Trimesh) -> None:
    assert chair_mesh.is_watertight and chair_mesh.volume > 0
    assert len(chair_mesh.split(only_watertight=False)) == 1


def test_smoothing_keeps_watertight_and_volume() -> None:
    grid = _chair()
    grid[7, 7, 0:6] = 1.0  # a 1-voxel-thin leg must survive smoothing
    raw = voxels_to_mesh(grid)
    for smooth in (0.3, 1.0):
        smoothed = voxels_to_mesh(grid, smooth=smooth)
        assert smoothed.is_watertight
        assert len(smoothed.faces) == len(raw.faces)
        assert abs(smoothed.volume - raw.volume) <= 0.25 * raw.volume
    with pytest.raises(ValueError):
        voxels_to_mesh(grid, smooth=1.5)


# --- orientation ---------------------------------------------------------------------------


def test_orientation_and_model3d_frame() -> None:
    res = 16
    top = (slice(6, 10), slice(6, 10), slice(12, 16))  # high axis 2
    back = (slice(12, 16), slice(6, 10), slice(0, 4))  # high axis 0 (backrest side)
    top_mesh = voxels_to_mesh(_grid(res, top))
    back_mesh = voxels_to_mesh(_grid(res, back))
    assert top_mesh.centroid[2] > 0.2  # z is up
    assert back_mesh.centroid[0] > 0.2  # x is axis 0

    assert np.isclose(np.linalg.det(MODEL3D_ROTATION), 1.0)
    top_y, back_y = to_model3d_frame(top_mesh), to_model3d_frame(back_mesh)
    assert top_y.centroid[1] > 0.2  # top block: high Y
    assert back_y.centroid[2] < -0.2  # backrest: low Z, so the front faces +Z
    np.testing.assert_allclose(top_y.volume, top_mesh.volume)
    assert top_y.volume > 0
    # (x, y, z) -> (-y, z, -x), and the input is untouched
    np.testing.assert_allclose(
        top_y.vertices, np.c_[-top_mesh.vertices[:, 1], top_mesh.vertices[:, 2], -top_mesh.vertices[:, 0]]
    )
    assert top_y is not top_mesh and top_mesh.centroid[2] > 0.2


# --- components ----------------------------------------------------------------------------


def test_keep_largest_component_removes_speck() -> None:
    occ = _chair() >= 0.5
    speck = occ.copy()
    speck[0, 15, 15] = True
    kept = keep_largest_component(speck)
    np.testing.assert_array_equal(kept, occ)
    assert kept.dtype == bool


def test_keep_largest_component_min_size() -> None:
    big = (slice(0, 4), slice(0, 4), slice(0, 4))  # 64 voxels
    mid = (slice(10, 12), slice(10, 12), slice(10, 12))  # 8 voxels
    occ = _grid(16, big, mid) >= 0.5
    occ[15, 0, 15] = True  # 1 voxel
    assert keep_largest_component(occ).sum() == 64
    assert keep_largest_component(occ, min_size=8).sum() == 72
    assert keep_largest_component(occ, min_size=1).sum() == 73
    assert keep_largest_component(occ, min_size=100).sum() == 64  # largest always kept
    assert not keep_largest_component(np.zeros((8, 8, 8), bool)).any()


def test_connectivity_matches_marching_cubes() -> None:
    # Edge neighbours: one component and one mesh piece; corner neighbours: two of each.
    edge = np.zeros((8, 8, 8), bool)
    edge[3, 3, 3] = edge[4, 4, 3] = True
    corner = np.zeros((8, 8, 8), bool)
    corner[3, 3, 3] = corner[4, 4, 4] = True
    assert keep_largest_component(edge).sum() == 2
    assert keep_largest_component(corner).sum() == 1
    edge_mesh = voxels_to_mesh(edge.astype(np.float32), clean=False)
    corner_mesh = voxels_to_mesh(corner.astype(np.float32), clean=False)
    assert len(edge_mesh.split(only_watertight=False)) == 1
    assert len(corner_mesh.split(only_watertight=False)) == 2


def test_clean_grid_zeroes_specks_only() -> None:
    grid = _chair() * 0.9
    grid[0, 15, 15] = 0.8  # speck
    grid[0, 0, 15] = 0.3  # below level: untouched
    cleaned = clean_grid(grid)
    assert cleaned.dtype == np.float32 and cleaned[0, 15, 15] == 0.0 and cleaned[0, 0, 15] == pytest.approx(0.3)
    np.testing.assert_array_equal(cleaned[_chair() > 0], grid[_chair() > 0])
    assert grid[0, 15, 15] == pytest.approx(0.8)  # input not modified
    assert len(voxels_to_mesh(grid).split(only_watertight=False)) == 1
    assert len(voxels_to_mesh(grid, clean=False).split(only_watertight=False)) == 2


# --- export --------------------------------------------------------------------------------


def _tall_mesh() -> trimesh.Trimesh:
    return voxels_to_mesh(_grid(16, (slice(6, 9), slice(6, 10), slice(1, 15))))  # tall in z


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_export_bytes_and_file(fmt: str, tmp_path: Path) -> None:
    mesh = _tall_mesh()
    data = export_mesh(mesh, fmt)
    assert isinstance(data, bytes) and data
    loaded = trimesh.load_mesh(io.BytesIO(data), file_type=fmt)
    assert len(loaded.vertices) > 0
    extents = loaded.extents
    tallest = int(np.argmax(extents))
    assert tallest == (1 if fmt in Y_UP_FORMATS else 2)
    np.testing.assert_allclose(abs(loaded.volume), mesh.volume, rtol=1e-4)

    out = export_mesh(mesh, tmp_path / "sub" / f"chair.{fmt.upper()}")
    assert isinstance(out, Path) and out.read_bytes() == data
    assert os.listdir(tmp_path / "sub") == [out.name]  # no temp files left behind


def test_glb_is_y_up_front_plus_z(chair_mesh: trimesh.Trimesh) -> None:
    loaded = trimesh.load_mesh(io.BytesIO(export_mesh(chair_mesh, ".glb")), file_type="glb")
    np.testing.assert_allclose(loaded.bounds, to_model3d_frame(chair_mesh).bounds, atol=1e-6)
    assert loaded.volume > 0


def test_export_rejects_unknown_and_empty(tmp_path: Path) -> None:
    mesh = _tall_mesh()
    with pytest.raises(ValueError, match="glb, obj, stl, ply"):
        export_mesh(mesh, "fbx")
    with pytest.raises(ValueError, match="supported"):
        export_mesh(mesh, tmp_path / "chair.fbx")
    with pytest.raises(EmptyShapeError):
        export_mesh(trimesh.Trimesh(), "glb")


def test_failed_write_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "chair.stl"
    target.write_bytes(b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        export_mesh(_tall_mesh(), target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["chair.stl"]


def test_surface_points_deterministic(chair_mesh: trimesh.Trimesh) -> None:
    a = surface_points(chair_mesh, n=256, seed=3)
    b = surface_points(chair_mesh, n=256, seed=3)
    c = surface_points(chair_mesh, n=256, seed=4)
    assert a.shape == (256, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.abs(a) <= 0.5 + 1e-6)
    with pytest.raises(EmptyShapeError):
        surface_points(trimesh.Trimesh())
