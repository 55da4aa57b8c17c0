"""Tests for vaegan.web_mesh: the voxel-cube surface and the mesh payload the WebGL viewer draws."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import trimesh

from vaegan import web_mesh
from vaegan.errors import EmptyShapeError
from vaegan.meshing import MODEL3D_ROTATION, to_model3d_frame, voxels_to_mesh


def _chair(res: int = 32) -> np.ndarray:
    """Seat, four legs and a backrest at high axis 0, float32 (res, res, res)."""
    grid = np.zeros((res, res, res), np.float32)
    s = res // 16
    grid[3 * s:13 * s, 3 * s:13 * s, 6 * s:8 * s] = 1  # seat
    for a in (3, 11):
        for b in (3, 11):
            grid[a * s:(a + 2) * s, b * s:(b + 2) * s, 0:6 * s] = 1  # legs
    grid[11 * s:13 * s, 3 * s:13 * s, 8 * s:15 * s] = 1  # backrest
    return grid


@pytest.mark.parametrize(("coords", "triangles"),
                         [([(3, 3, 3)], 12), ([(3, 3, 3), (4, 3, 3)], 20), ([(3, 3, 3), (4, 4, 4)], 24)])
def test_voxel_cubes_are_the_exposed_faces_wound_outward(coords, triangles):
    grid = np.zeros((8, 8, 8), np.float32)
    for c in coords:
        grid[c] = 1.0
    mesh = web_mesh.voxel_cube_mesh(grid)
    assert len(mesh.faces) == triangles
    np.testing.assert_allclose(mesh.volume, len(coords) / 8**3)  # positive: outward winding


def test_voxel_cubes_of_a_chair_hold_its_volume_in_the_mesh_frame():
    grid = _chair(32)
    mesh = web_mesh.voxel_cube_mesh(grid, level=0.5)
    np.testing.assert_allclose(mesh.volume, (grid >= 0.5).sum() / 32**3)
    assert np.all(np.abs(mesh.vertices) <= 0.5 + 1e-9)
    with pytest.raises(EmptyShapeError, match="lower the level"):
        web_mesh.voxel_cube_mesh(np.zeros((8, 8, 8), np.float32))


def test_payload_dtypes_sizes_and_y_up():
    mesh = voxels_to_mesh(_chair(32))
    payload = web_mesh.mesh_payload(mesh, label="seed 7 · #3")
    n_vertices, n_faces = len(mesh.vertices), len(mesh.faces)
    assert payload["vertex_count"] == n_vertices and payload["face_count"] == n_faces
    assert payload["index_type"] == "uint16" and payload["label"] == "seed 7 · #3" and not payload["flat"]
    # Exactly float32 positions and uint16 indices: 12 bytes a vertex, 6 a triangle.
    assert len(base64.b64decode(payload["positions"])) == 12 * n_vertices
    assert len(base64.b64decode(payload["indices"])) == 6 * n_faces
    positions, faces = web_mesh.decode_payload(payload)
    assert positions.dtype == np.float32 and positions.shape == (n_vertices, 3) and faces.shape == (n_faces, 3)
    np.testing.assert_allclose(positions, mesh.vertices @ MODEL3D_ROTATION.T, atol=1e-6)
    np.testing.assert_allclose(positions, to_model3d_frame(mesh).vertices, atol=1e-6)
    # Y-up: the chair's height (our axis 2) is the payload's y; its seat is below its backrest top.
    assert np.ptp(positions[:, 1]) == pytest.approx(np.ptp(mesh.vertices[:, 2]), abs=1e-6)
    assert trimesh.Trimesh(positions, faces).volume > 0  # a rotation keeps the outward winding
    assert len(payload["positions"]) + len(payload["indices"]) < 200_000  # compact: a 32^3 chair


def test_payload_switches_to_uint32_past_65536_vertices():
    rng = np.random.default_rng(0)
    vertices = rng.random((70_000, 3)) - 0.5
    faces = np.stack([np.arange(0, 69_999), np.arange(1, 70_000), np.zeros(69_999, int)], axis=1)
    payload = web_mesh.mesh_payload(trimesh.Trimesh(vertices, faces, process=False))
    assert payload["index_type"] == "uint32"
    positions, decoded = web_mesh.decode_payload(payload)
    np.testing.assert_array_equal(decoded, faces)


def test_nothing_to_show_is_a_message_payload():
    with pytest.raises(EmptyShapeError):
        web_mesh.mesh_payload(trimesh.Trimesh())
    assert web_mesh.message_payload("empty", "x") == {"message": "empty", "label": "x"}
