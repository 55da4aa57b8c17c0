"""Datasets of voxel chairs: loads the folders that `--data` (training, evaluation) and the
app's novelty check point at.

Supported `--data` layouts:
- a 3D ShapeNets / ModelNet10 volumetric folder (`chair_<id>_<k>.mat`, key `instance`),
  either the class folder holding `train/` and `test/` or one split folder itself;
- a folder of `.binvox` files (e.g. ShapeNet chairs), fitted into our voxel frame;
- `modelnet10_vox30.npz` (all ten classes; see `load_modelnet10_npz`).

Everything comes back in the project's voxel frame (see `vaegan.voxels`) as uint8 {0,1}
arrays of shape (N, R, R, R): small enough (888 x 32^3 = 29 MB) to hold in memory.
"""

import logging
import re
from pathlib import Path

import numpy as np

from .errors import VoxelError
from .voxels import load_voxels, modelnet_to_frame, read_mat

log = logging.getLogger(__name__)

# chair_000000182_1.mat -> id "000000182", pose 1
_MAT_NAME = re.compile(r"^(?P<cls>.+)_(?P<id>\d+)_(?P<pose>\d+)\.mat$")


def _split_dir(root: Path, split: str) -> Path:
    """`root/split` when root holds splits, else root itself (a split folder was given)."""
    if (root / split).is_dir():
        return root / split
    return root


def list_mat_files(root: str | Path, split: str = "train", poses: tuple[int, ...] = (1,)) -> list[Path]:
    """The `.mat` files of one split whose pose index k is in `poses`, sorted by name."""
    folder = _split_dir(Path(root), split)
    files = []
    for path in sorted(folder.glob("*.mat")):
        m = _MAT_NAME.match(path.name)
        if m and int(m["pose"]) in poses:
            files.append(path)
    return files


def load_chairs(
    root: str | Path, split: str = "train", resolution: int = 32, poses: tuple[int, ...] = (1,)
) -> tuple[np.ndarray, list[str]]:
    """Load every usable chair under `root` -> (uint8 (N, R, R, R), names).

    Corrupt files are skipped with a warning and counted; a folder with no usable file
    raises a VoxelError naming what was looked for.
    """
    root = Path(root)
    if not root.exists():
        raise VoxelError(f"data path {root} does not exist")
    if root.is_file() and root.suffix == ".npz":
        grids, labels = load_modelnet10_npz(root, split, resolution)
        return grids, [f"{split}_{i}_label{l}" for i, l in enumerate(labels)]
    mats = list_mat_files(root, split, poses)
    binvox = sorted(_split_dir(root, split).glob("*.binvox"))
    paths = mats or binvox
    if not paths:
        raise VoxelError(
            f"no usable voxel files in {root}: expected chair_<id>_<pose>.mat files "
            f"(optionally under {split}/) or .binvox files"
        )
    grids, names, skipped = [], [], []
    for path in paths:
        try:
            if path.suffix == ".mat":
                grid = modelnet_to_frame(read_mat(path, key="instance"), resolution)
            else:
                grid = load_voxels(path, resolution, source="shapenet")
        except VoxelError as err:
            skipped.append(path.name)
            log.warning("skipping %s: %s", path.name, err)
            continue
        grids.append((grid >= 0.5).astype(np.uint8))
        names.append(path.stem)
    if skipped:
        log.warning("skipped %d corrupt file(s) of %d in %s", len(skipped), len(paths), root)
    if not grids:
        raise VoxelError(f"none of the {len(paths)} voxel files in {root} could be read")
    return np.stack(grids), names


def load_modelnet10_npz(
    path: str | Path, split: str = "train", resolution: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """`modelnet10_vox30.npz` -> (uint8 (N, R, R, R) in our frame, int labels (N,)).

    The file's horizontal axes are swapped relative to the `.mat` files (its README), so
    axes 0 and 1 are transposed before the usual 30 -> 32 padding.
    """
    path = Path(path)
    try:
        data = np.load(path)
    except Exception as err:  # zip/pickle errors vary; all mean "not a usable npz"
        raise VoxelError(f"cannot read {path}: {err}") from err
    xk, yk = f"X_{split}", f"y_{split}"
    missing = [k for k in (xk, yk) if k not in data.files]
    if missing:
        raise VoxelError(f"{path.name} lacks array(s) {missing}; found {sorted(data.files)}")
    x, y = data[xk], data[yk]
    if x.ndim != 4 or x.shape[1:] != (30, 30, 30) or len(x) != len(y):
        raise VoxelError(f"{path.name}: {xk} has shape {x.shape}, expected (N, 30, 30, 30) matching {yk}")
    x = np.transpose(x, (0, 2, 1, 3))
    grids = np.stack([modelnet_to_frame(g, resolution) for g in x]).astype(np.uint8)
    return grids, y.astype(np.int64)
