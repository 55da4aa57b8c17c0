"""Metrics for generated voxel chairs: distances between shape sets, COV / MMD / 1-NNA,
validity and novelty. Pure numpy / scipy (no meshing, no model code): `train.eval_gen`
turns grids into the inputs these functions take.

Distances
---------
* IoU distance ``1 - IoU`` between thresholded grids, from `iou_matrix`. Two empty grids
  have IoU 1 (identical shapes); an empty grid against a non-empty one has IoU 0, i.e. the
  largest possible distance 1, so empty samples need no special case.
* Chamfer distance (CD) as in Achlioptas et al. 2018, "Learning representations and
  generative models for 3D point clouds":
  ``CD(A, B) = mean_{a in A} min_{b in B} |a - b|^2 + mean_{b in B} min_{a in A} |a - b|^2``
  (squared Euclidean distances, sum of the two directed means), from `chamfer_matrix`.
  A shape without a surface is passed as ``None``: its distance is ``+inf`` to every shape
  with a surface and 0 to another empty shape. `coverage_mmd_1nna` handles the infinities.

Set metrics (PointFlow, Yang et al. 2019, section 5.1), for samples S_g and references S_r
-----------------------------------------------------------------------------------------
* COV(S_g, S_r) = |{argmin_{Y in S_r} D(X, Y) : X in S_g}| / |S_r|: the fraction of
  references that are the nearest reference of at least one sample (higher is better;
  insensitive to quality, it measures how many modes are hit).
* MMD(S_g, S_r) = 1/|S_r| sum_{Y in S_r} min_{X in S_g} D(X, Y): the mean distance of each
  reference to its closest sample (lower is better; measures fidelity of the matched samples).
* 1-NNA(S_g, S_r): accuracy of the leave-one-out 1-nearest-neighbour classifier that labels
  each shape of S_g ∪ S_r by the set of its nearest other shape,
  (sum_{X in S_g} 1[N_X in S_g] + sum_{Y in S_r} 1[N_Y in S_r]) / (|S_g| + |S_r|).
  0.5 is ideal (the sets are indistinguishable); 1.0 means every shape's nearest neighbour is
  from its own set (e.g. mode collapse or off-distribution samples); well below 0.5 means the
  samples copy the references. Exact distance ties are broken uniformly at random *in
  expectation* (the fraction of tied nearest neighbours from the own set is counted), and a
  shape with no finite distance to anything (e.g. the only empty sample under CD) counts as
  correctly classified: it is trivially told apart.

Validity and novelty
--------------------
* `validity`: one connected piece (18-connectivity, the connectivity of
  `vaegan.meshing.keep_largest_component`: Lewiner marching cubes at 0.5 joins voxels that
  share a face or an edge into one surface, not voxels that touch at a corner only) AND an
  occupancy fraction inside a range, see `occupancy_range_from`.
* `nearest_iou`: the best IoU of each sample to any training chair; `near_copy_fraction`:
  the share of samples above a threshold (0.9: a near-copy of a training chair).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = [
    "CONNECTIVITY",
    "DEFAULT_OCCUPANCY_RANGE",
    "iou_matrix",
    "coverage_iou",
    "chamfer_matrix",
    "coverage_mmd_1nna",
    "occupancy",
    "n_components",
    "validity",
    "occupancy_range_from",
    "nearest_iou",
    "near_copy_fraction",
]

# 18-connectivity (face + edge neighbours), as in vaegan.meshing (tests check they agree).
CONNECTIVITY = ndimage.generate_binary_structure(3, 2)  # (3, 3, 3) bool
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)  # the chair32-v2 issue's validity rule counts corner contacts too

# occupancy_range_from(ModelNet10 train chairs, pose _1, 32^3): the 888 chairs fill
# 0.0091 .. 0.148 of the grid (median 0.027), so (0.5 * min, 2 * max) = (0.0045, 0.297).
# Fractions do not depend on the resolution (64^3 grids repeat each voxel 2x2x2).
DEFAULT_OCCUPANCY_RANGE: tuple[float, float] = (0.0045, 0.297)

# Budget per float32 operand block of iou_matrix (elements): 16M = 64 MB.
_IOU_BLOCK_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------- IoU


def _flat_bool(x: np.ndarray, name: str) -> np.ndarray:
    """(N, ...) array -> bool (N, V); non-bool input is occupied where > 0."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, V) or (N, R, R, R), got {x.shape}")
    x = x.reshape(len(x), -1)  # (N, V)
    return x if x.dtype == bool else x > 0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of occupancy grids -> float32 (N, M).

    a: (N, V) or (N, R, R, R), b: (M, V) or (M, R, R, R), bool (other dtypes: occupied
    where > 0). Intersections come from float32 matrix products (exact for V < 2^24),
    computed in blocks of at most ~64 MB per operand; union = |a| + |b| - intersection.
    Empty vs empty gives 1 (identical shapes), empty vs non-empty gives 0.
    """
    a = _flat_bool(a, "a")  # (N, V)
    b = _flat_bool(b, "b")  # (M, V)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"grids differ in size: {a.shape[1]} vs {b.shape[1]} voxels")
    n, m, v = len(a), len(b), a.shape[1]
    size_a = a.sum(1, dtype=np.int64)  # (N,)
    size_b = b.sum(1, dtype=np.int64)  # (M,)
    out = np.empty((n, m), dtype=np.float32)
    step = max(1, _IOU_BLOCK_ELEMENTS // max(v, 1))
    for j0 in range(0, m, step):
        bj = b[j0:j0 + step].astype(np.float32)  # (mb, V)
        for i0 in range(0, n, step):
            ai = a[i0:i0 + step].astype(np.float32)  # (na, V)
            inter = np.rint(ai @ bj.T).astype(np.int64)  # (na, mb)
            union = size_a[i0:i0 + step, None] + size_b[None, j0:j0 + step] - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
            out[i0:i0 + step, j0:j0 + step] = iou
    return out


def coverage_iou(iou_sr: np.ndarray) -> float:
    """Mean over references of the best IoU to any sample, from iou_sr (S, R).

    The "coverage-IoU" of the earlier notes; it equals 1 - MMD under the IoU distance.
    """
    iou_sr = np.asarray(iou_sr)
    return float(iou_sr.max(axis=0).mean())


# --------------------------------------------------------------------------- Chamfer


def _as_clouds(p, name: str) -> list[np.ndarray | None]:
    """(N, P, 3) array or a sequence of (P_i, 3) arrays / None -> list of float64 arrays."""
    if isinstance(p, np.ndarray) and p.dtype != object:
        if p.ndim != 3 or p.shape[2] != 3 or p.shape[1] == 0:
            raise ValueError(f"{name} must have shape (N, P, 3) with P >= 1, got {p.shape}")
        p = list(p)
    clouds: list[np.ndarray | None] = []
    for i, c in enumerate(p):
        if c is None:
            clouds.append(None)
            continue
        c = np.ascontiguousarray(c, dtype=np.float64)  # (P_i, 3)
        if c.ndim != 2 or c.shape[1] != 3 or len(c) == 0:
            raise ValueError(f"{name}[{i}] must have shape (P, 3) with P >= 1, got {c.shape}")
        if not np.isfinite(c).all():
            raise ValueError(f"{name}[{i}] contains NaN or infinite coordinates")
        clouds.append(c)
    return clouds


def _morton_codes(points: np.ndarray, lo: np.ndarray, hi: np.ndarray, bits: int = 10) -> np.ndarray:
    """Z-order curve codes of (P, 3) points in the box [lo, hi] -> int64 (P,)."""
    scale = (2**bits - 1) / np.maximum(hi - lo, 1e-12)  # (3,)
    q = ((points - lo) * scale).astype(np.int64)  # (P, 3) in [0, 2^bits)
    codes = np.zeros(len(points), dtype=np.int64)
    for bit in range(bits):
        for axis in range(3):
            codes |= ((q[:, axis] >> bit) & 1) << (3 * bit + axis)
    return codes


def _directed(queries: list, targets: list, workers: int, leafsize: int) -> np.ndarray:
    """out[i, j] = mean over points x of queries[i] of min_{y in targets[j]} |x - y|^2.

    One KD-tree per target cloud, queried once with the points of all query clouds.
    Entries involving a None cloud are +inf. float64 (len(queries), len(targets)).
    """
    out = np.full((len(queries), len(targets)), np.inf)
    present = [i for i, c in enumerate(queries) if c is not None]
    if not present:
        return out
    # Query points in Morton (Z-curve) order within each cloud: neighbouring queries visit
    # the same tree nodes, ~15% faster; the per-cloud means do not depend on the order.
    points = np.concatenate([queries[i] for i in present])  # (sum P_i, 3)
    lo, hi = points.min(axis=0), points.max(axis=0)
    codes = _morton_codes(points, lo, hi)  # (sum P_i,)
    counts = np.array([len(queries[i]) for i in present])  # (n_present,)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # (n_present,)
    cloud_of = np.repeat(np.arange(len(present)), counts)  # (sum P_i,)
    points = points[np.lexsort((codes, cloud_of))]  # grouped by cloud, Z-order inside
    for j, target in enumerate(targets):
        if target is None:
            continue
        dist, _ = cKDTree(target, leafsize=leafsize).query(points, k=1, workers=workers)
        out[present, j] = np.add.reduceat(dist * dist, starts) / counts
    return out


def chamfer_matrix(pa, pb=None, workers: int = -1, leafsize: int = 32) -> np.ndarray:
    """Chamfer distance (Achlioptas et al. 2018) of every pair of point clouds -> float32 (N, M).

    pa: (N, P, 3) array or a sequence of N (P_i, 3) arrays or None (a shape without a
    surface); pb likewise (M clouds), or None / pa itself for the symmetric (N, N) matrix,
    which then costs half: each directed term is computed once and the matrix is D + D.T
    (the diagonal is exactly 0). Distances are squared Euclidean; a None cloud is at +inf
    from every cloud and at 0 from another None.

    scipy cKDTree (one tree per cloud, `workers` query threads; -1 = all cores) rather than
    torch.cdist. Measured on the 2-core machine, shared with training jobs (load ~5), for
    ModelNet chairs with 2048 points each: 100 x 100 takes 41 s (the symmetric 100 x 100
    21 s); batched torch.cdist, which materialises every 2048 x 2048 block, took ~34 ms per
    pair, i.e. ~6 min for the same matrix.
    """
    a = _as_clouds(pa, "pa")
    symmetric = pb is None or pb is pa
    if symmetric:
        a_to_a = _directed(a, a, workers, leafsize)  # (N, N)
        out = a_to_a + a_to_a.T
        np.fill_diagonal(out, 0.0)
        empty_a = empty_b = np.array([c is None for c in a], dtype=bool)
    else:
        b = _as_clouds(pb, "pb")
        out = _directed(a, b, workers, leafsize) + _directed(b, a, workers, leafsize).T  # (N, M)
        empty_a = np.array([c is None for c in a], dtype=bool)
        empty_b = np.array([c is None for c in b], dtype=bool)
    out[empty_a[:, None] & empty_b[None, :]] = 0.0
    return out.astype(np.float32)


# --------------------------------------------------------------------------- COV / MMD / 1-NNA


def coverage_mmd_1nna(d_sr: np.ndarray, d_ss: np.ndarray, d_rr: np.ndarray) -> dict[str, float]:
    """COV, MMD and 1-NNA (PointFlow definitions, see the module docstring) from distances.

    d_sr: (S, R) sample-to-reference, d_ss: (S, S) sample-to-sample, d_rr: (R, R)
    reference-to-reference distances (diagonals are ignored: leave-one-out). +inf entries
    are allowed. Returns floats: cov, mmd, nna, and the 1-NNA accuracy split into
    nna_samples (share of samples whose neighbour is a sample) and nna_refs.
    """
    d_sr = np.asarray(d_sr, dtype=np.float64)
    d_ss = np.asarray(d_ss, dtype=np.float64)
    d_rr = np.asarray(d_rr, dtype=np.float64)
    if d_sr.ndim != 2 or 0 in d_sr.shape:
        raise ValueError(f"d_sr must have shape (S, R) with S, R >= 1, got {d_sr.shape}")
    s, r = d_sr.shape
    if d_ss.shape != (s, s) or d_rr.shape != (r, r):
        raise ValueError(f"d_ss {d_ss.shape} / d_rr {d_rr.shape} do not match d_sr {d_sr.shape}")
    if np.isnan(d_sr).any() or np.isnan(d_ss).any() or np.isnan(d_rr).any():
        raise ValueError("distance matrices contain NaN")

    # COV: which reference is each sample's nearest; samples at +inf from all count for none.
    has_match = np.isfinite(d_sr).any(axis=1)  # (S,)
    matched = np.argmin(d_sr, axis=1)[has_match]  # (S',)
    cov = len(np.unique(matched)) / r
    # MMD: each reference's distance to its closest sample.
    mmd = float(d_sr.min(axis=0).mean())

    # 1-NNA on S ∪ R (samples first), self excluded.
    full = np.block([[d_ss, d_sr], [d_sr.T, d_rr]])  # (S+R, S+R)
    np.fill_diagonal(full, np.inf)
    is_sample = np.r_[np.ones(s, bool), np.zeros(r, bool)]  # (S+R,)
    if s + r < 2:
        raise ValueError("1-NNA needs at least two shapes in S ∪ R")
    best = full.min(axis=1)  # (S+R,)
    ties = full == best[:, None]  # (S+R, S+R): all nearest neighbours of each shape
    same = ties & (is_sample[None, :] == is_sample[:, None])
    correct = same.sum(1) / ties.sum(1)  # (S+R,) expected accuracy under random tie-breaks
    correct[~np.isfinite(best)] = 1.0
    return {
        "cov": float(cov),
        "mmd": mmd,
        "nna": float(correct.mean()),
        "nna_samples": float(correct[:s].mean()),
        "nna_refs": float(correct[s:].mean()),
    }


# --------------------------------------------------------------------------- validity


def _occupied(grids: np.ndarray, level: float) -> np.ndarray:
    """(N, R, R, R) probabilities or bool -> bool (N, R, R, R), occupied = value >= level."""
    grids = np.asarray(grids)
    if grids.ndim != 4:
        raise ValueError(f"grids must have shape (N, R, R, R), got {grids.shape}")
    return grids if grids.dtype == bool else grids >= level


def occupancy(grids: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Occupied fraction of each grid (value >= level) -> float64 (N,)."""
    occ = _occupied(grids, level)
    return occ.reshape(len(occ), -1).mean(axis=1)


def n_components(grids: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Number of 18-connected occupied components of each grid -> int64 (N,)."""
    occ = _occupied(grids, level)
    return np.array([ndimage.label(g, structure=CONNECTIVITY)[1] for g in occ], dtype=np.int64)


def validity(
    grids: np.ndarray,
    level: float = 0.5,
    occupancy_range: tuple[float, float] = DEFAULT_OCCUPANCY_RANGE,
) -> np.ndarray:
    """Valid = exactly one 18-connected piece AND occupancy within [lo, hi] -> bool (N,).

    grids: (N, R, R, R) probabilities (occupied = value >= level) or bool. An empty grid has
    zero pieces and is invalid.
    """
    lo, hi = occupancy_range
    frac = occupancy(grids, level)  # (N,)
    return (n_components(grids, level) == 1) & (frac >= lo) & (frac <= hi)


def occupancy_range_from(train_grids: np.ndarray, level: float = 0.5) -> tuple[float, float]:
    """(0.5 * min, 2 * max) of the training chairs' occupancy fractions.

    The thinnest and the bulkiest real chair bound what a chair looks like; the factor 2
    either way leaves room for a generated chair that is a bit thinner or thicker than any
    training chair (at 32^3 a leg one voxel thicker doubles its volume), while a sample far
    below the thinnest chair is a fragment (a seat without legs) and one far above the
    bulkiest is a blob. On ModelNet10 chairs: (0.0045, 0.297), see DEFAULT_OCCUPANCY_RANGE.
    """
    frac = occupancy(train_grids, level)
    if len(frac) == 0:
        raise ValueError("no training grids to derive an occupancy range from")
    return 0.5 * float(frac.min()), 2.0 * float(frac.max())


def largest_piece_share(grids: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Share of each grid's occupied voxels in its largest 26-connected piece -> float64 (N,);
    0 for an empty grid. Floating specks lower it; a chair in two halves halves it."""
    occ = _occupied(grids, level)
    shares = []
    for g in occ:
        labels, count = ndimage.label(g, structure=CONNECTIVITY_26)
        shares.append(np.bincount(labels.ravel())[1:].max() / g.sum() if count else 0.0)
    return np.array(shares, dtype=np.float64)


def mostly_one_piece(grids: np.ndarray, level: float = 0.5, occupancy_range: tuple[float, float] = (0.005, 0.40),
                     share: float = 0.95) -> np.ndarray:
    """The chair32-v2 validity of raw `generate` output -> bool (N,): occupancy within
    `occupancy_range` and the largest 26-connected piece holding >= `share` of the voxels
    (a few specks pass, a chair in pieces does not)."""
    frac = occupancy(grids, level)
    lo, hi = occupancy_range
    return (frac >= lo) & (frac <= hi) & (largest_piece_share(grids, level) >= share)


# --------------------------------------------------------------------------- novelty


def nearest_iou(samples: np.ndarray, train: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Best IoU of each sample to any training grid -> float32 (N,).

    samples: (N, V) or (N, R, R, R) bool; train: (T, ...) bool. `exclude` (N,) int: for
    sample i, ignore train[exclude[i]] (use when the samples ARE training chairs; -1 = none).
    """
    iou = iou_matrix(samples, train)  # (N, T)
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        rows = np.flatnonzero(exclude >= 0)
        iou[rows, exclude[rows]] = -np.inf
    if iou.shape[1] == 0:
        raise ValueError("no training grids to compare with")
    return iou.max(axis=1).astype(np.float32)


def near_copy_fraction(nearest: Sequence[float] | np.ndarray, threshold: float = 0.9) -> float:
    """Share of samples whose nearest training IoU is above `threshold` (near-copies)."""
    nearest = np.asarray(nearest, dtype=np.float64)
    if nearest.size == 0:
        raise ValueError("no samples")
    return float((nearest > threshold).mean())
