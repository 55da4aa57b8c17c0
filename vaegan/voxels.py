"""Voxel grids: validation, the project's voxel frame, and voxel file formats.

This module owns
- the voxel frame every other part of `vaegan` uses (see below) and the conversions into it
  from ModelNet (3D ShapeNets `.mat`), IKEA (`.mat`, key `grid`), ShapeNet `.binvox` and
  arbitrary arrays (`modelnet_to_frame`, `fit_to_frame`, `load_voxels`);
- validation of grids handed in by callers (`check_grid`);
- readers and atomic writers for `.binvox`, MagicaVoxel `.vox`, `.npy` and `.npz`.

The voxel frame: float32 (R, R, R) occupancy in [0, 1], indexed like
`scipy.io.loadmat(f)["instance"]` of the ModelNet10 `chair_<id>_1.mat` files (30^3, a 24^3
object centred per axis with 3 empty voxels of padding), padded by one empty voxel per side
to 32^3; at R = 64 each of those voxels is a 2x2x2 block. Up is array axis 2, the backrest is
toward the high end of axis 0, axis 1 is left/right. Measured on the 888 ModelNet training
chairs: the largest dimension spans 24 voxels and the occupied box is centred on EVERY axis,
the vertical one included (lo + hi == 29 in the 30^3 grid for 881-886 of 888 chairs), so a
chair lower than it is wide floats above the grid floor instead of standing on it.

Every bad input raises `VoxelError` naming the file or array and what is wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.io

from vaegan.errors import VoxelError
from vaegan.fileio import atomic_write

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "SOURCES",
    "check_grid",
    "chair_ious",
    "fit_to_frame",
    "load_voxels",
    "modelnet_to_frame",
    "read_binvox",
    "read_mat",
    "read_vox",
    "save_npy",
    "save_npz",
    "upsample_blocks",
    "write_binvox",
    "write_vox",
]

SUPPORTED_EXTENSIONS = (".mat", ".binvox", ".npy", ".npz", ".vox")
SOURCES = ("auto", "modelnet", "ikea", "shapenet")
MODELNET_SIZE = 30  # side of a 3D ShapeNets / ModelNet `instance` array
FRAME_BASE = 32  # MODELNET_SIZE + one empty voxel per side
MAT_KEYS = ("instance", "grid")  # ModelNet / 3D ShapeNets, IKEA
MAX_BINVOX_DIM = 1024
MAX_VOX_DIM = 256  # MagicaVoxel stores coordinates as bytes
_FLOAT_TOL = 1e-4  # float error tolerated outside [0, 1] before clipping


def chair_ious(made: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of each pair of bool grids (n, R, R, R) -> float (n,); an empty pair counts 0."""
    return (made & truth).sum((1, 2, 3)) / np.maximum((made | truth).sum((1, 2, 3)), 1)


# --------------------------------------------------------------------------- validation


def _as_array(vox: Any, name: str) -> np.ndarray:
    """A validated float32 copy of any 3-D occupancy array (not necessarily cubic)."""
    if hasattr(vox, "detach"):  # torch tensor, possibly on GPU / requiring grad
        vox = vox.detach().cpu().numpy()
    try:
        arr = np.asarray(vox)
    except (TypeError, ValueError) as err:
        raise VoxelError(f"{name} is not an array: {err}") from err
    if arr.dtype.kind not in "biuf":
        raise VoxelError(
            f"{name} has dtype {arr.dtype}: expected bool, integer or real float occupancy"
        )
    if arr.ndim != 3:
        raise VoxelError(f"{name} has shape {arr.shape}: expected a 3-D array")
    if min(arr.shape) < 2:
        raise VoxelError(f"{name} has shape {arr.shape}: every side must be at least 2 voxels")
    out = arr.astype(np.float32)  # always a copy
    if arr.dtype.kind == "f" and not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise VoxelError(f"{name} contains {bad} NaN/inf value(s)")
    lo, hi = float(out.min()), float(out.max())
    if lo < -_FLOAT_TOL or hi > 1 + _FLOAT_TOL:
        raise VoxelError(f"{name} has values in [{lo:g}, {hi:g}]: occupancy must be within [0, 1]")
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _check_resolution(resolution: Any) -> int:
    is_int = isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool)
    if not is_int or resolution < 2:
        raise VoxelError(f"resolution must be an integer >= 2, got {resolution!r}")
    return int(resolution)


def check_grid(vox: Any, name: str = "voxel grid", resolution: int | None = None) -> np.ndarray:
    """Validate an occupancy grid and return it as a float32 (R, R, R) copy.

    Accepts numpy arrays and torch tensors of dtype bool, int, uint or float with values in
    [0, 1] (float error up to 1e-4 is clipped). The grid must be cubic, and exactly
    (resolution,)*3 when `resolution` is given.
    """
    if resolution is not None:
        resolution = _check_resolution(resolution)
    arr = _as_array(vox, name)
    if len(set(arr.shape)) != 1:
        raise VoxelError(f"{name} has shape {arr.shape}: expected a cubic 3-D array (R, R, R)")
    if resolution is not None and arr.shape != (resolution,) * 3:
        raise VoxelError(f"{name} has shape {arr.shape}: expected {(resolution,) * 3}")
    return arr


def check_grids(grids: Any, resolution: int, what: str = "grids", max_count: int | None = None,
                hint: str = "") -> np.ndarray:
    """A grid (R, R, R) or a stack (n, R, R, R) at ``resolution`` -> float32 (n, R, R, R), each
    checked like `check_grid`. ``what`` names them in errors, ``hint`` is appended to a shape
    error, ``max_count`` bounds n."""
    arr = grids.detach().cpu().numpy() if hasattr(grids, "detach") else grids
    try:
        arr = np.asarray(arr)
    except (TypeError, ValueError) as err:
        raise VoxelError(f"{what} are not an array: {err}") from err
    given = tuple(arr.shape)
    if arr.ndim == 3:
        arr = arr[None]
    want = (resolution,) * 3
    if arr.ndim != 4 or tuple(arr.shape[1:]) != want or len(arr) == 0:
        raise VoxelError(f"{what} must have shape {want} or (n, {resolution}, {resolution}, {resolution}), "
                         f"got {given}{hint}")
    if max_count is not None and len(arr) > max_count:
        raise VoxelError(f"{len(arr):,} {what} at once: at most {max_count:,}, pass them in chunks")
    return np.stack([check_grid(g, name=f"{what[:-1] if what.endswith('s') else what} {i}", resolution=resolution)
                     for i, g in enumerate(arr)])


# --------------------------------------------------------------------------- frame


def upsample_blocks(vox: Any, factor: int) -> np.ndarray:
    """Repeat every voxel into a factor^3 block: float32 (R, R, R) -> (R*f, R*f, R*f)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise VoxelError(f"upsampling factor must be an integer >= 1, got {factor!r}")
    out = check_grid(vox)
    for axis in range(3):
        out = np.repeat(out, int(factor), axis=axis)
    return out


def modelnet_to_frame(instance: Any, resolution: int = 32) -> np.ndarray:
    """ModelNet (30, 30, 30) `instance` -> float32 (R, R, R) frame; R a multiple of 32.

    Pads one empty voxel per side (30 -> 32), then repeats each voxel into an
    (R/32)^3 block, e.g. 2x2x2 at R = 64.
    """
    resolution = _check_resolution(resolution)
    if resolution % FRAME_BASE:
        raise VoxelError(
            f"ModelNet grids map to resolutions 32, 64, ... (multiples of 32), got {resolution}"
        )
    grid = check_grid(instance, "ModelNet instance", resolution=MODELNET_SIZE)
    padded = np.pad(grid, 1)  # (32, 32, 32)
    return upsample_blocks(padded, resolution // FRAME_BASE)


def _resample_weights(n_in: int, scale: float, n_out: int) -> np.ndarray:
    """(n_out, n_in) overlap lengths of input cells [i, i+1)*scale with output cells,
    the input span (n_in*scale) centred within [0, n_out)."""
    shift = (n_out - n_in * scale) / 2
    edges_in = shift + np.arange(n_in + 1) * scale
    lo = np.maximum(edges_in[None, :-1], np.arange(n_out)[:, None])
    hi = np.minimum(edges_in[None, 1:], np.arange(n_out)[:, None] + 1)
    return np.clip(hi - lo, 0.0, None)


def fit_to_frame(
    grid: Any, resolution: int = 32, span: float = 24 / 32, *, name: str = "voxel grid to fit"
) -> np.ndarray:
    """Fit any 3-D occupancy array (ShapeNet, IKEA, ...) into the frame: float32 (R, R, R).

    Crops to the occupied (>= 0.5) bounding box, rescales it uniformly so its largest
    dimension spans round(span * R) voxels, and centres the occupied box on every axis like
    the ModelNet chairs (vertical axis included). The grid must already be upright (up =
    axis 2); its orientation is not changed.

    Rescaling is exact area weighting (each output voxel gets the occupied volume of the
    input inside it); an output voxel is filled when that volume is at least half a voxel of
    whichever grid is finer. Unlike zoom + threshold 0.5, this keeps legs and slats one
    input voxel thin when shrinking (as a surface voxelizer would), and is the usual
    half-coverage rule when enlarging.
    """
    resolution = _check_resolution(resolution)
    if not 0 < span <= 1:
        raise VoxelError(f"span must be in (0, 1], got {span}")
    arr = _as_array(grid, name)
    occupied = np.argwhere(arr >= 0.5)
    if occupied.size == 0:
        raise VoxelError(f"{name} is empty: no voxel >= 0.5, nothing to fit into the frame")
    lo, hi = occupied.min(0), occupied.max(0) + 1
    crop = (arr[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] >= 0.5).astype(np.float32)
    target = max(1, round(span * resolution))
    scale = target / max(crop.shape)  # output voxels per input voxel
    cover = crop  # (d0, d1, d2) -> (n0, n1, n2) occupied volume per output voxel
    for axis, n_in in enumerate(crop.shape):
        n_out = min(resolution, int(np.ceil(n_in * scale - 1e-9)))
        weights = _resample_weights(n_in, scale, n_out)
        cover = np.moveaxis(np.tensordot(weights, cover, axes=([1], [axis])), 0, axis)
    filled = cover >= 0.5 * min(1.0, scale**3) - 1e-9
    kept = np.argwhere(filled)
    lo, hi = kept.min(0), kept.max(0) + 1
    body = filled[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    out = np.zeros((resolution,) * 3, np.float32)
    start = [(resolution - n) // 2 for n in body.shape]
    out[tuple(slice(s, s + n) for s, n in zip(start, body.shape))] = body
    return out


# --------------------------------------------------------------------------- atomic writes


def _write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temp file in the target folder, then os.replace it into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise VoxelError(f"cannot write {path}: folder {path.parent} does not exist")
    atomic_write(path, write)


def _binary(vox: Any, threshold: float, name: str) -> np.ndarray:
    if not 0.0 < threshold <= 1.0:
        raise VoxelError(f"threshold must be in (0, 1], got {threshold}")
    return check_grid(vox, name) >= threshold


def save_npy(path: str | Path, vox: Any) -> None:
    """Save a validated float32 (R, R, R) grid as `.npy`, atomically."""
    grid = check_grid(vox, f"grid for {Path(path).name}")
    _write_atomic(path, lambda fh: np.save(fh, grid, allow_pickle=False))


def save_npz(path: str | Path, vox: Any) -> None:
    """Save a validated float32 (R, R, R) grid as compressed `.npz` (key `voxels`), atomically."""
    grid = check_grid(vox, f"grid for {Path(path).name}")
    _write_atomic(path, lambda fh: np.savez_compressed(fh, voxels=grid))


# --------------------------------------------------------------------------- .mat


def _require_file(path: Path) -> None:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise VoxelError(f"voxel file {path} {what}")


def _open_error(path: Path, err: OSError) -> VoxelError:
    if isinstance(err, FileNotFoundError):
        return VoxelError(f"voxel file {path} does not exist")
    return VoxelError(f"cannot read voxel file {path}: {err}")


def _read_mat_keyed(path: Path, key: str | None) -> tuple[str, np.ndarray]:
    """(key used, raw array) from a `.mat` file; key None -> the first of MAT_KEYS present."""
    _require_file(path)
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many types (OSError, ValueError, zlib, MatReadError...)
        raise VoxelError(
            f"{path} is not a readable MATLAB v5 .mat file (truncated or corrupt?): {err}"
        ) from err
    found = sorted(k for k in data if not k.startswith("__"))
    if key is None:
        key = next((k for k in MAT_KEYS if k in data), None)
        if key is None:
            raise VoxelError(
                f"{path} has none of the voxel keys {list(MAT_KEYS)}; keys found: {found}"
            )
    elif key not in data:
        raise VoxelError(f"{path} has no key {key!r}; keys found: {found}")
    value = data[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise VoxelError(f"{path}: {key!r} is not a numeric array")
    return key, value


def read_mat(path: str | Path, key: str | None = None) -> np.ndarray:
    """The raw array stored under `key` in a MATLAB v5 `.mat` file (no frame conversion).

    With key=None the key is detected: "instance" (ModelNet / 3D ShapeNets) or "grid" (IKEA).
    """
    return _read_mat_keyed(Path(path), key)[1]


# --------------------------------------------------------------------------- .binvox
#
# A binvox file run-length encodes a (d0, d1, d2) array in C order; binvox's own docs call
# the axes [x, z, y] with y up (y runs fastest). This module maps file axes (a0, a1, a2) to
# frame axes (a1, a0, a2), i.e. frame = world (z, x, y): a cyclic relabelling of the
# right-handed world axes, so y-up becomes up = axis 2 and nothing is mirrored (the file
# order itself, (x, z, y), is mirrored). Measured on the 15 ShapeNet chairs in
# shapenet_chair_binvox64: up is the file's last axis (world y; every chair is upright in
# side views) and the backrest is toward high world z (the file's middle axis) for all 15,
# so with this mapping ShapeNet chairs read upright with the backrest toward high axis 0:
# no extra ShapeNet rotation is needed. After fit_to_frame, this orientation correlates
# best with the mean ModelNet chair among all 24 rotations for 12 of 15 files (the misses:
# a round egg chair, a rocking lounger, a block-like armchair). The handedness matches
# ModelNet: its poses k = 1..12 turn the backrest from +axis 0 toward +axis 1, a positive
# (counter-clockwise) turn in a right-handed (axis 0, 1, 2) frame.
# `write_binvox` applies the inverse mapping, so write -> read round-trips exactly.

_BINVOX_TO_FRAME = (1, 0, 2)  # a self-inverse transpose


def _parse_binvox(raw: bytes, path: Path) -> np.ndarray:
    """Decode binvox bytes -> bool array in file axis order (d0, d1, d2)."""
    header_end = raw.find(b"\ndata\n")
    if not raw.startswith(b"#binvox") or header_end < 0:
        raise VoxelError(f"{path} is not a binvox file (no '#binvox' header ending in 'data')")
    dims = None
    for line in raw[:header_end].decode("ascii", "replace").splitlines()[1:]:
        words = line.split()
        if words and words[0] == "dim":
            try:
                dims = tuple(int(w) for w in words[1:])
            except ValueError:
                dims = None
    if dims is None or len(dims) != 3 or not all(2 <= d <= MAX_BINVOX_DIM for d in dims):
        raise VoxelError(f"{path} has no valid 'dim' line (3 sizes in 2..{MAX_BINVOX_DIM})")
    rle = np.frombuffer(raw, np.uint8, offset=header_end + len(b"\ndata\n"))
    total, decoded = int(np.prod(dims)), int(rle[1::2].sum(dtype=np.int64))
    if len(rle) % 2 or decoded < total:
        raise VoxelError(f"{path} is truncated: its data decodes to {decoded} of {total} voxels")
    if decoded > total:
        raise VoxelError(
            f"{path} is corrupt: its data decodes to {decoded} voxels, expected {total}"
        )
    values = rle[0::2]
    if values.max(initial=0) > 1:
        raise VoxelError(f"{path} is corrupt: run values must be 0 or 1")
    return np.repeat(values.astype(bool), rle[1::2]).reshape(dims)


def read_binvox(path: str | Path) -> np.ndarray:
    """Read a `.binvox` file -> bool (D0, D1, D2) in the frame's axis order (up = axis 2).

    See the comment above `_BINVOX_TO_FRAME` for the axis mapping.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise _open_error(path, err) from err
    return np.ascontiguousarray(_parse_binvox(raw, path).transpose(_BINVOX_TO_FRAME))


def _rle_encode(flat: np.ndarray) -> np.ndarray:
    """uint8 {0,1} (N,) -> binvox (value, count) byte pairs, counts 1..255."""
    starts = np.r_[0, np.flatnonzero(np.diff(flat)) + 1]
    lengths = np.diff(np.r_[starts, flat.size])
    pieces = -(-lengths // 255)  # runs longer than 255 split into several pairs
    counts = np.full(int(pieces.sum()), 255, np.int64)
    counts[np.cumsum(pieces) - 1] = lengths - 255 * (pieces - 1)
    return np.column_stack([np.repeat(flat[starts], pieces), counts]).astype(np.uint8).ravel()


def write_binvox(path: str | Path, vox: Any, threshold: float = 0.5) -> None:
    """Write (R, R, R) occupancy (voxels >= threshold) as `.binvox`, atomically.

    The grid is stored in binvox's standard [x, z, y] order with frame axis 2 as y (up),
    so binvox viewers show it upright and `read_binvox` returns it unchanged.
    """
    occupied = _binary(vox, threshold, f"grid for {Path(path).name}")
    size = occupied.shape[0]
    header = f"#binvox 1\ndim {size} {size} {size}\ntranslate 0 0 0\nscale 1\ndata\n".encode()
    data = _rle_encode(occupied.transpose(_BINVOX_TO_FRAME).astype(np.uint8).ravel())
    _write_atomic(path, lambda fh: fh.write(header + data.tobytes()))


# --------------------------------------------------------------------------- .vox (MagicaVoxel)
#
# MagicaVoxel is z-up like the frame, so frame axes (0, 1, 2) are written as (x, y, z).


def _chunk(tag: bytes, content: bytes, children: bytes = b"") -> bytes:
    return tag + struct.pack("<ii", len(content), len(children)) + content + children


def write_vox(path: str | Path, vox: Any, threshold: float = 0.5) -> None:
    """Write (R, R, R) occupancy (voxels >= threshold) as MagicaVoxel `.vox` (v150), atomically.

    One model (SIZE + XYZI chunks), every voxel with palette colour 1; R <= 256.
    """
    occupied = _binary(vox, threshold, f"grid for {Path(path).name}")
    size = occupied.shape[0]
    if size > MAX_VOX_DIM:
        raise VoxelError(f"MagicaVoxel .vox grids are at most {MAX_VOX_DIM}^3, got {size}^3")
    xyz = np.argwhere(occupied)  # (N, 3)
    xyzi = np.column_stack([xyz, np.ones(len(xyz), np.int64)]).astype(np.uint8)
    children = _chunk(b"SIZE", struct.pack("<iii", size, size, size)) + _chunk(
        b"XYZI", struct.pack("<i", len(xyz)) + xyzi.tobytes()
    )
    data = b"VOX " + struct.pack("<i", 150) + _chunk(b"MAIN", b"", children)
    _write_atomic(path, lambda fh: fh.write(data))


def read_vox(path: str | Path) -> np.ndarray:
    """Read the first model of a MagicaVoxel `.vox` file -> bool (X, Y, Z) (frame axes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise _open_error(path, err) from err
    if raw[:4] != b"VOX " or len(raw) < 20 or raw[8:12] != b"MAIN":
        raise VoxelError(f"{path} is not a MagicaVoxel .vox file (no 'VOX ' + MAIN header)")
    size = coords = None
    pos = 20 + struct.unpack_from("<i", raw, 12)[0]  # first child chunk of MAIN
    while pos + 12 <= len(raw) and (size is None or coords is None):
        tag = raw[pos : pos + 4]
        n_content = struct.unpack_from("<i", raw, pos + 4)[0]
        body = raw[pos + 12 : pos + 12 + n_content]
        if n_content < 0 or len(body) < n_content:
            break
        if tag == b"SIZE" and n_content >= 12:
            size = struct.unpack_from("<iii", body)
        elif tag == b"XYZI" and n_content >= 4:
            count = struct.unpack_from("<i", body)[0]
            if count < 0 or n_content < 4 + 4 * count:
                break
            coords = np.frombuffer(body, np.uint8, count * 4, 4).reshape(count, 4)[:, :3]
        pos += 12 + n_content  # children of SIZE/XYZI are empty; skip other chunks whole
    if size is None or coords is None:
        raise VoxelError(f"{path} is truncated or corrupt: no complete SIZE + XYZI chunks")
    if not all(1 <= s <= MAX_VOX_DIM for s in size) or (coords >= np.array(size)).any():
        raise VoxelError(f"{path} is corrupt: size {size} or voxel coordinates out of range")
    grid = np.zeros(size, bool)
    grid[tuple(coords.T)] = True
    return grid


# --------------------------------------------------------------------------- load_voxels


def _read_numpy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except OSError as err:
        raise _open_error(path, err) from err
    except Exception as err:  # bad zip / header / pickled objects
        raise VoxelError(f"{path} is not a readable {path.suffix} file: {err}") from err
    if isinstance(data, np.ndarray):
        return data
    with data:
        keys = list(data.files)
        if "voxels" in keys:
            key = "voxels"
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise VoxelError(f"{path} must hold 'voxels' or a single array; keys found: {keys}")
        try:
            return data[key]
        except Exception as err:
            raise VoxelError(f"{path}: array {key!r} is unreadable: {err}") from err


def _to_frame(grid: np.ndarray, resolution: int, source: str, name: str) -> np.ndarray:
    """Raw array from a file + its source -> float32 (R, R, R) frame."""
    modelnet_shape = (MODELNET_SIZE,) * 3
    arr = _as_array(grid, name)
    if source == "ikea":  # vertical axis 0 -> axis 2 (cyclic, no mirroring)
        return fit_to_frame(np.moveaxis(arr, 0, 2), resolution, name=name)
    if source == "shapenet":
        return fit_to_frame(arr, resolution, name=name)
    if source == "modelnet" and arr.shape != modelnet_shape:
        raise VoxelError(f"{name} has shape {arr.shape}: ModelNet grids are {modelnet_shape}")
    if source == "auto" and arr.shape == (resolution,) * 3:
        return arr
    if arr.shape == modelnet_shape:
        if resolution % FRAME_BASE == 0:
            return modelnet_to_frame(arr, resolution)
        return fit_to_frame(np.pad(arr, 1), resolution, name=name)
    if arr.shape == (FRAME_BASE,) * 3 and resolution % FRAME_BASE == 0:
        return upsample_blocks(arr, resolution // FRAME_BASE)
    return fit_to_frame(arr, resolution, name=name)


def load_voxels(path: str | Path, resolution: int = 32, source: str = "auto") -> np.ndarray:
    """Load a voxel file into the frame -> float32 (R, R, R).

    Formats (by extension): `.mat` (key "instance": ModelNet; key "grid": IKEA), `.binvox`,
    `.npy`, `.npz` (key "voxels", else its single array), `.vox`.

    `source` says how the stored grid relates to the frame:
    - "auto": an "instance" `.mat` is ModelNet and a "grid" `.mat` is IKEA (as below);
      otherwise an (R, R, R) grid is taken as already in the frame and returned unchanged
      (so files written by this module round-trip exactly), (30,)^3 is ModelNet,
      (32,)^3 is block-repeated to R (a multiple of 32), any other shape goes through
      `fit_to_frame`;
    - "modelnet": a (30, 30, 30) 3D ShapeNets grid -> `modelnet_to_frame`;
    - "ikea": vertical axis 0 is moved to axis 2, then `fit_to_frame`. The IKEA CAD models do
      not share one yaw and it is left as stored: align it yourself if you compare poses;
    - "shapenet": always `fit_to_frame` (a ShapeNet 64^3 binvox fills its grid, so load it
      with this source even at R = 64). `read_binvox` already puts ShapeNet chairs upright
      with the backrest toward high axis 0; no further rotation is applied.
    """
    path = Path(path)
    resolution = _check_resolution(resolution)
    if source not in SOURCES:
        raise VoxelError(f"unknown voxel source {source!r}; expected one of {list(SOURCES)}")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise VoxelError(
            f"{path} has unsupported extension {path.suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    _require_file(path)
    name = f"voxels in {path.name}"
    if ext == ".mat":
        key, grid = _read_mat_keyed(path, {"modelnet": "instance", "ikea": "grid"}.get(source))
        if source == "auto":
            source = "modelnet" if key == "instance" else "ikea"
        return _to_frame(grid, resolution, source, name)
    readers: dict[str, Callable[[Path], np.ndarray]] = {
        ".binvox": read_binvox,
        ".vox": read_vox,
        ".npy": _read_numpy,
        ".npz": _read_numpy,
    }
    return _to_frame(readers[ext](path), resolution, source, name)

