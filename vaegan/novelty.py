"""Nearest chair by IoU over bit-packed grids: the novelty check (is a generated chair a
copy of a training chair?) and the retrieval start of `vaegan.projection`.

This module owns `PackedGrids` (a set of occupancy grids as bits, 4 KB per 32^3 grid) and
one-against-many IoU on them. A query against the 888 ModelNet training chairs takes a few
milliseconds: AND + popcount of 3.6 MB, where `train.metrics.iou_matrix` (float32 matrix
products, meant for all-pairs evaluation) would first expand the set to 116 MB of floats.

IoU conventions match `train.metrics.iou_matrix`: occupied = value >= level (0.5), two
empty grids have IoU 1, empty against non-empty 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import VoxelError

__all__ = ["PackedGrids", "pack", "iou_one_to_many", "nearest"]

_QUERY_BLOCK_BYTES = 1 << 25  # 32 MB of AND results per block of queries


@dataclass(frozen=True)
class PackedGrids:
    """Occupancy grids as bits: ``words`` uint64 (n, W), ``counts`` int64 (n,) occupied voxels,
    ``resolution`` R, and optional ``names`` (n,)."""

    words: np.ndarray
    counts: np.ndarray
    resolution: int
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.words)

    def unpack(self, index: int) -> np.ndarray:
        """Grid ``index`` back as bool (R, R, R)."""
        r = self.resolution
        bits = np.unpackbits(self.words[index].view(np.uint8), count=r ** 3)
        return bits.reshape(r, r, r).astype(bool)


def _grids(grids, name: str) -> np.ndarray:
    arr = np.asarray(grids)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or len(set(arr.shape[1:])) != 1 or len(arr) == 0:
        raise VoxelError(f"{name} must be a grid (R, R, R) or a stack (n, R, R, R), got shape {arr.shape}")
    return arr


def pack(grids, level: float = 0.5, names=()) -> PackedGrids:
    """Grids (n, R, R, R) or one (R, R, R), probabilities or bool -> PackedGrids."""
    arr = _grids(grids, "grids")
    occ = arr if arr.dtype == bool else arr >= level  # (n, R, R, R)
    flat = occ.reshape(len(occ), -1)  # (n, V)
    padded = np.zeros((len(flat), -(-flat.shape[1] // 64) * 64), dtype=bool)  # whole uint64 words
    padded[:, : flat.shape[1]] = flat
    words = np.packbits(padded, axis=1).view(np.uint64)  # (n, W)
    names = tuple(str(n) for n in names)
    if names and len(names) != len(words):
        raise ValueError(f"{len(names)} names for {len(words)} grids")
    return PackedGrids(words, flat.sum(1, dtype=np.int64), int(arr.shape[1]), names)


def iou_one_to_many(query: PackedGrids, refs: PackedGrids) -> np.ndarray:
    """IoU of every query grid with every reference grid -> float32 (n_query, n_refs)."""
    if query.resolution != refs.resolution:
        raise VoxelError(f"grids of side {query.resolution} cannot be compared with side {refs.resolution}")
    out = np.empty((len(query), len(refs)), dtype=np.float32)
    block = max(1, _QUERY_BLOCK_BYTES // max(refs.words.nbytes, 1))
    for i0 in range(0, len(query), block):
        q = query.words[i0:i0 + block]  # (b, W)
        inter = np.bitwise_count(q[:, None, :] & refs.words[None]).sum(-1, dtype=np.int64)  # (b, n)
        union = query.counts[i0:i0 + block, None] + refs.counts[None] - inter
        out[i0:i0 + block] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return out


def nearest(grids, refs: PackedGrids, level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """For each grid (n, R, R, R) or one (R, R, R): (index of the nearest reference by IoU
    int64 (n,), that IoU float32 (n,)). Ties go to the first reference."""
    if len(refs) == 0:
        raise ValueError("no reference chairs to compare with")
    arr = _grids(grids, "grid")
    if arr.shape[1] != refs.resolution:
        raise VoxelError(f"grid has side {arr.shape[1]}; the reference chairs have side {refs.resolution}")
    iou = iou_one_to_many(pack(arr, level), refs)  # (n, n_refs)
    best = iou.argmax(axis=1)
    return best.astype(np.int64), iou[np.arange(len(iou)), best]
