"""Tests for vaegan.voxels: the voxel frame, file formats, and rejection of bad input."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.io

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
from vaegan import fileio  # noqa: E402
from vaegan import voxels as vx  # noqa: E402
from vaegan.errors import VoxelError  # noqa: E402

MODELNET = DATA / "modelnet10_chair_vol30" / "train"
SHAPENET = DATA / "shapenet_chair_binvox64"
IKEA = DATA / "ikea_chairs_dev" / "voxels"


def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (see shared/data/README.md)")


def _random_grid(size: int = 16, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size,) * 3) < 0.3).astype(np.float32)


def _asymmetric_grid(size: int = 16) -> np.ndarray:
    """An L of different arm lengths plus one marker voxel: any axis swap or flip changes it."""
    g = np.zeros((size,) * 3, np.float32)
    g[2:12, 3, 1] = 1  # long arm along axis 0
    g[2, 3:8, 1] = 1  # shorter arm along axis 1
    g[2, 3, 1:5] = 1  # shortest arm along axis 2
    g[9, 10, 13] = 1
    return g


def _bbox(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(grid >= 0.5)
    return idx.min(0), idx.max(0)


def _backrest_x(grid: np.ndarray) -> float:
    """Mean axis-0 position of the voxels in the top third of the occupied height."""
    idx = np.argwhere(grid >= 0.5)
    z0, z1 = idx[:, 2].min(), idx[:, 2].max()
    return float(idx[idx[:, 2] >= z0 + 2 * (z1 - z0 + 1) / 3, 0].mean())


# --------------------------------------------------------------------------- round trips

GRIDS = {"random": _random_grid(), "asymmetric": _asymmetric_grid()}
WRITERS = {
    ".binvox": (vx.write_binvox, vx.read_binvox),
    ".vox": (vx.write_vox, vx.read_vox),
    ".npy": (vx.save_npy, np.load),
    ".npz": (vx.save_npz, lambda p: np.load(p)["voxels"]),
}


@pytest.mark.parametrize("ext", list(WRITERS))
@pytest.mark.parametrize("kind", list(GRIDS))
def test_write_read_round_trip_is_exact(tmp_path: Path, ext: str, kind: str) -> None:
    grid = GRIDS[kind]
    write, read = WRITERS[ext]
    path = tmp_path / f"g{ext}"
    write(path, grid)
    back = read(path)
    assert back.shape == grid.shape
    np.testing.assert_array_equal(back.astype(np.float32), grid)
    loaded = vx.load_voxels(path, resolution=16)  # (R, R, R) already in the frame: as is
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, grid)


def test_float_grids_round_trip_through_numpy_files(tmp_path: Path) -> None:
    grid = np.random.default_rng(1).random((8, 8, 8)).astype(np.float32)
    vx.save_npy(tmp_path / "p.npy", grid)
    vx.save_npz(tmp_path / "p.npz", grid)
    np.testing.assert_array_equal(vx.load_voxels(tmp_path / "p.npy", 8), grid)
    np.testing.assert_array_equal(vx.load_voxels(tmp_path / "p.npz", 8), grid)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_binvox_uniform_grids_split_long_runs(tmp_path: Path, fill: float) -> None:
    grid = np.full((20, 20, 20), fill, np.float32)  # one run of 8000 -> 32 pairs
    vx.write_binvox(tmp_path / "u.binvox", grid)
    np.testing.assert_array_equal(vx.read_binvox(tmp_path / "u.binvox"), grid.astype(bool))


def test_writers_threshold_probabilities(tmp_path: Path) -> None:
    grid = np.zeros((4, 4, 4), np.float32)
    grid[0, 0, 0], grid[1, 1, 1], grid[2, 2, 2] = 0.49, 0.5, 0.9
    vx.write_binvox(tmp_path / "t.binvox", grid)
    vx.write_vox(tmp_path / "t.vox", grid, threshold=0.8)
    assert np.argwhere(vx.read_binvox(tmp_path / "t.binvox")).tolist() == [[1, 1, 1], [2, 2, 2]]
    assert np.argwhere(vx.read_vox(tmp_path / "t.vox")).tolist() == [[2, 2, 2]]


def test_binvox_files_are_standard_y_up_for_other_tools(tmp_path: Path) -> None:
    """trimesh (an independent parser) sees the frame's up axis 2 as binvox world y."""
    from trimesh.exchange.binvox import load_binvox

    grid = _asymmetric_grid()
    vx.write_binvox(tmp_path / "a.binvox", grid)
    with open(tmp_path / "a.binvox", "rb") as fh:
        world = load_binvox(fh).matrix  # (x, y, z), y up
    # frame = world (z, x, y): frame[a, b, c] == world[b, c, a]
    np.testing.assert_array_equal(world, grid.astype(bool).transpose(1, 2, 0))


def test_vox_file_layout(tmp_path: Path) -> None:
    grid = np.zeros((5, 5, 5), np.float32)
    grid[1, 2, 3] = 1
    vx.write_vox(tmp_path / "v.vox", grid)
    raw = (tmp_path / "v.vox").read_bytes()
    assert raw[:4] == b"VOX " and int.from_bytes(raw[4:8], "little") == 150
    assert raw[8:12] == b"MAIN" and raw[20:24] == b"SIZE" and raw[44:48] == b"XYZI"
    assert raw[-4:] == bytes([1, 2, 3, 1])  # x, y, z (z up = frame axis 2), colour 1


# --------------------------------------------------------------------------- frame helpers


def test_modelnet_to_frame_pads_and_upsamples() -> None:
    inst = np.zeros((30, 30, 30), np.int8)
    inst[3:27, 10:20, 5:27] = 1
    f32, f64 = vx.modelnet_to_frame(inst), vx.modelnet_to_frame(inst, 64)
    assert f32.shape == (32,) * 3 and f32.dtype == np.float32
    np.testing.assert_array_equal(f32[1:31, 1:31, 1:31], inst)
    assert f64.shape == (64,) * 3 and f64.sum() == 8 * f32.sum()
    np.testing.assert_array_equal(f64[::2, ::2, ::2], f32)
    np.testing.assert_array_equal(vx.upsample_blocks(f32, 2), f64)


@pytest.mark.parametrize(
    "shape,res,msg",
    [
        ((32, 32, 32), 32, r"shape \(32, 32, 32\): expected \(30, 30, 30\)"),
        ((30, 30, 30), 48, "multiples of 32"),
    ],
)
def test_modelnet_to_frame_rejects_other_shapes_and_resolutions(shape, res, msg) -> None:
    with pytest.raises(VoxelError, match=msg):
        vx.modelnet_to_frame(np.zeros(shape), res)


def test_fit_to_frame_scales_largest_side_and_centres_every_axis() -> None:
    box = np.zeros((40, 50, 60), np.float32)
    box[5:25, 10:40, 0:60] = 1  # 20 x 30 x 60 -> 8 x 12 x 24 at R = 32
    out = vx.fit_to_frame(box, 32)
    lo, hi = _bbox(out)
    assert (hi - lo + 1).tolist() == [8, 12, 24]
    assert (lo + hi).tolist() == [31, 31, 31]  # centred per axis, vertical included
    assert out.sum() == 8 * 12 * 24
    lo, hi = _bbox(vx.fit_to_frame(box, 64))
    assert (hi - lo + 1).tolist() == [16, 24, 48]


def test_fit_to_frame_keeps_thin_parts_when_shrinking() -> None:
    chair = np.zeros((64, 64, 64), np.float32)
    chair[:, :, 30] = 1  # one-voxel seat plate
    chair[0, 0, :] = chair[63, 63, :] = 1  # one-voxel legs
    out = vx.fit_to_frame(chair, 32)
    assert out[:, :, 4:28].any(axis=(0, 1)).all()  # legs survive the 64 -> 24 shrink
    assert out.max(axis=2)[4:28, 4:28].all()  # so does the plate


def test_fit_to_frame_rejects_empty_grid(tmp_path: Path) -> None:
    with pytest.raises(VoxelError, match="voxel grid to fit is empty"):
        vx.fit_to_frame(np.zeros((10, 10, 10)))
    vx.write_binvox(tmp_path / "empty.binvox", np.zeros((8, 8, 8)))
    with pytest.raises(VoxelError, match=r"voxels in empty\.binvox is empty"):
        vx.load_voxels(tmp_path / "empty.binvox", 32, source="shapenet")


def test_load_voxels_auto_shapes(tmp_path: Path) -> None:
    inst = np.zeros((30, 30, 30), np.uint8)
    inst[3:27, 8:22, 3:27] = 1
    np.save(tmp_path / "m.npy", inst)
    expected = vx.modelnet_to_frame(inst, 64)
    np.testing.assert_array_equal(vx.load_voxels(tmp_path / "m.npy", 64), expected)
    g32 = vx.modelnet_to_frame(inst)
    np.save(tmp_path / "f.npy", g32.astype(bool))
    expected = vx.upsample_blocks(g32, 2)
    np.testing.assert_array_equal(vx.load_voxels(tmp_path / "f.npy", 64), expected)
    np.save(tmp_path / "o.npy", np.ones((10, 5, 20), np.float32))
    lo, hi = _bbox(vx.load_voxels(tmp_path / "o.npy", 32))
    assert (hi - lo + 1).tolist() == [12, 6, 24]


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def mean_modelnet_chair() -> np.ndarray:
    """Mean of 200 ModelNet training chairs (pose 1) in the 32^3 frame."""
    _need(MODELNET)
    files = sorted(MODELNET.glob("chair_*_1.mat"))[:200]
    return np.mean([vx.load_voxels(f) for f in files], axis=0)


def test_modelnet_file_reads_into_the_frame() -> None:
    _need(MODELNET)
    path = sorted(MODELNET.glob("chair_*_1.mat"))[0]
    grid = vx.load_voxels(path)
    assert grid.shape == (32,) * 3 and set(np.unique(grid)) <= {0.0, 1.0}
    assert not grid[[0, -1]].any() and not grid[:, [0, -1]].any() and not grid[:, :, [0, -1]].any()
    lo, hi = _bbox(grid)
    assert (hi - lo + 1).max() == 24 and np.all(np.abs(lo + hi - 31) <= 1)
    assert _backrest_x(grid) > 15.5 + 2  # backrest toward high axis 0
    big = vx.load_voxels(path, 64)
    assert big.sum() == 8 * grid.sum()
    # fit_to_frame centres exactly as the ModelNet chairs are centred
    np.testing.assert_array_equal(vx.fit_to_frame(vx.read_mat(path)), grid)


def test_modelnet_mean_chair_is_upright(mean_modelnet_chair: np.ndarray) -> None:
    assert _backrest_x(mean_modelnet_chair) > 18
    seat_high = mean_modelnet_chair.sum(axis=(0, 1)).argmax()  # the seat: densest height
    assert 10 <= seat_high <= 20


def test_ikea_files_read_upright_and_centred() -> None:
    _need(IKEA)
    for path in sorted(IKEA.glob("*.mat")):
        raw = vx.read_mat(path)
        assert raw.shape == (20, 20, 20)
        grid = vx.load_voxels(path)
        lo, hi = _bbox(grid)
        ext = hi - lo + 1
        assert ext[2] == 24 and ext.max() == 24, path.name  # the tall axis 0 became axis 2
        assert np.all(np.abs(lo + hi - 31) <= 1), path.name


def test_every_shapenet_binvox_reads_upright(mean_modelnet_chair: np.ndarray) -> None:
    _need(SHAPENET)
    files = sorted(SHAPENET.glob("*.binvox"))
    assert files
    best = 0
    for path in files:
        raw = vx.read_binvox(path)
        assert raw.shape == (64,) * 3 and raw.dtype == bool
        grid = vx.load_voxels(path, 32, source="shapenet")
        lo, hi = _bbox(grid)
        assert (hi - lo + 1).max() == 24 and np.all(np.abs(lo + hi - 31) <= 1), path.name
        assert _backrest_x(grid) > 16, path.name  # grid centre is 15.5
        scores = {}  # the 24 rotations of the centred grid (mirror images excluded)
        for perm in itertools.permutations(range(3)):
            for flips in itertools.product((False, True), repeat=3):
                if np.linalg.det(np.eye(3)[list(perm)]) * (-1) ** sum(flips) < 0:
                    continue
                turned = np.flip(grid.transpose(perm), [a for a in range(3) if flips[a]])
                scores[perm, flips] = np.corrcoef(turned.ravel(), mean_modelnet_chair.ravel())[0, 1]
        assert len(scores) == 24
        best += max(scores, key=scores.get) == ((0, 1, 2), (False,) * 3)
    # the misses are a round egg chair, a rocking lounger and a block-like armchair
    assert best >= 0.75 * len(files), f"only {best} of {len(files)} ShapeNet chairs best as read"


def test_shapenet_source_refits_full_grid_binvox() -> None:
    _need(SHAPENET)
    path = sorted(SHAPENET.glob("*.binvox"))[0]
    as_is = vx.load_voxels(path, 64)  # auto: already 64^3, returned unchanged
    np.testing.assert_array_equal(as_is, vx.read_binvox(path))
    fitted = vx.load_voxels(path, 64, source="shapenet")
    lo, hi = _bbox(fitted)
    assert (hi - lo + 1).max() == 48


# --------------------------------------------------------------------------- bad input

BAD_GRIDS = [
    (np.zeros((3, 4)), "has shape (3, 4): expected a 3-D array"),
    (np.zeros((4, 4, 5)), "expected a cubic 3-D array (R, R, R)"),
    (np.zeros((4, 4, 4), dtype=object), "dtype object"),
    (np.zeros((4, 4, 4), dtype=complex), "dtype complex128"),
    (np.full((4, 4, 4), "a"), "dtype <U1"),
    (np.full((4, 4, 4), np.nan), "64 NaN/inf"),
    (np.full((4, 4, 4), 1.5), "values in [1.5, 1.5]"),
    (np.full((4, 4, 4), -1, np.int8), "occupancy must be within [0, 1]"),
    (np.full((1, 1, 1), 1.0), "at least 2 voxels"),
]


@pytest.mark.parametrize("grid,msg", BAD_GRIDS)
def test_check_grid_rejects_bad_grids(grid: np.ndarray, msg: str) -> None:
    with pytest.raises(VoxelError) as err:
        vx.check_grid(grid, name="test grid")
    assert str(err.value).startswith("test grid") and msg in str(err.value)


def test_check_grid_accepts_and_copies() -> None:
    src = np.ones((4, 4, 4), bool)
    out = vx.check_grid(src, resolution=4)
    assert out.dtype == np.float32 and out.sum() == 64 and not np.shares_memory(out, src)
    assert vx.check_grid(np.full((2, 2, 2), 1 + 1e-6)).max() == 1.0  # float error is clipped
    with pytest.raises(VoxelError, match=r"expected \(8, 8, 8\)"):
        vx.check_grid(src, resolution=8)


def test_check_grid_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    out = vx.check_grid(torch.ones(3, 3, 3, requires_grad=True))
    assert out.dtype == np.float32 and out.sum() == 27


@pytest.fixture
def binvox_bytes(tmp_path: Path) -> bytes:
    real = sorted(SHAPENET.glob("*.binvox")) if SHAPENET.is_dir() else []
    if real:
        return real[0].read_bytes()
    vx.write_binvox(tmp_path / "w.binvox", _random_grid(32))
    return (tmp_path / "w.binvox").read_bytes()


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_binvox_is_rejected(tmp_path: Path, binvox_bytes: bytes, keep: float) -> None:
    path = tmp_path / "cut.binvox"
    path.write_bytes(binvox_bytes[: int(len(binvox_bytes) * keep)])
    with pytest.raises(VoxelError, match="cut.binvox is truncated"):
        vx.load_voxels(path)


@pytest.mark.parametrize(
    "content,msg",
    [(b"hello world\n", "not a binvox file"), (b"#binvox 1\ndim 0 4 4\ndata\n", "no valid 'dim'")],
)
def test_corrupt_binvox_header_is_rejected(tmp_path: Path, content: bytes, msg: str) -> None:
    (tmp_path / "bad.binvox").write_bytes(content)
    with pytest.raises(VoxelError, match=msg):
        vx.read_binvox(tmp_path / "bad.binvox")


def test_truncated_vox_is_rejected(tmp_path: Path) -> None:
    vx.write_vox(tmp_path / "v.vox", _random_grid())
    raw = (tmp_path / "v.vox").read_bytes()
    (tmp_path / "v.vox").write_bytes(raw[: len(raw) - 10])
    with pytest.raises(VoxelError, match="v.vox is truncated"):
        vx.load_voxels(tmp_path / "v.vox", 16)


def _mat_bytes(tmp_path: Path) -> bytes:
    real = sorted(MODELNET.glob("chair_*_1.mat")) if MODELNET.is_dir() else []
    if real:
        return real[0].read_bytes()
    scipy.io.savemat(tmp_path / "w.mat", {"instance": np.zeros((30, 30, 30), np.int8)})
    return (tmp_path / "w.mat").read_bytes()


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.9])
def test_truncated_mat_is_rejected(tmp_path: Path, keep: float) -> None:
    raw = _mat_bytes(tmp_path)
    (tmp_path / "cut.mat").write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(VoxelError, match=r"cut\.mat is not a readable MATLAB"):
        vx.load_voxels(tmp_path / "cut.mat")


def test_non_mat_file_with_mat_extension_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "fake.mat").write_text("this is not a MATLAB file\n" * 20)
    with pytest.raises(VoxelError, match=r"fake\.mat is not a readable MATLAB"):
        vx.read_mat(tmp_path / "fake.mat")


def test_mat_without_voxel_key_lists_keys(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "k.mat", {"volume": np.zeros((4, 4, 4))})
    with pytest.raises(VoxelError, match=r"none of the voxel keys .*keys found: \['volume'\]"):
        vx.load_voxels(tmp_path / "k.mat")
    with pytest.raises(VoxelError, match=r"no key 'instance'; keys found: \['volume'\]"):
        vx.read_mat(tmp_path / "k.mat", key="instance")


def test_npz_without_voxels_key_lists_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 4, 4)), b=np.zeros((4, 4, 4)))
    with pytest.raises(VoxelError, match=r"keys found: \['a', 'b'\]"):
        vx.load_voxels(tmp_path / "two.npz", 4)


def test_bad_grid_inside_a_file_names_the_file(tmp_path: Path) -> None:
    np.save(tmp_path / "nan.npy", np.full((4, 4, 4), np.nan))
    with pytest.raises(VoxelError, match=r"voxels in nan\.npy contains 64 NaN"):
        vx.load_voxels(tmp_path / "nan.npy", 4)


def test_unknown_extension_missing_file_and_bad_source(tmp_path: Path) -> None:
    (tmp_path / "chair.obj").write_text("v 0 0 0\n")
    with pytest.raises(VoxelError, match=r"unsupported extension '\.obj'; supported: \.mat, "):
        vx.load_voxels(tmp_path / "chair.obj")
    missing = tmp_path / "nowhere.binvox"
    with pytest.raises(VoxelError, match="nowhere.binvox does not exist"):
        vx.load_voxels(missing)
    with pytest.raises(VoxelError, match="does not exist"):
        vx.read_binvox(missing)
    with pytest.raises(VoxelError, match="does not exist"):
        vx.read_mat(tmp_path / "nowhere.mat")
    with pytest.raises(VoxelError, match="unknown voxel source 'lego'"):
        vx.load_voxels(missing, source="lego")
    with pytest.raises(VoxelError, match="resolution must be an integer >= 2"):
        vx.load_voxels(missing, resolution=1)


@pytest.mark.parametrize("ext", list(WRITERS))
def test_writing_a_bad_grid_keeps_the_existing_file(tmp_path: Path, ext: str) -> None:
    write, read = WRITERS[ext]
    path = tmp_path / f"keep{ext}"
    write(path, _asymmetric_grid())
    before = path.read_bytes()
    with pytest.raises(VoxelError, match=f"grid for keep{ext}"):
        write(path, np.full((16, 16, 16), np.nan))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_failed_replace_leaves_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keep.binvox"
    vx.write_binvox(path, _asymmetric_grid())
    before = path.read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        vx.write_binvox(path, _random_grid())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_vox_rejects_grids_over_256(tmp_path: Path) -> None:
    with pytest.raises(VoxelError, match="at most 256"):
        vx.write_vox(tmp_path / "big.vox", np.zeros((257,) * 3, bool))
    assert not (tmp_path / "big.vox").exists()
