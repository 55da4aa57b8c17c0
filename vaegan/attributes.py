"""Chair attributes measured directly on voxel grids: the named quantities the semantic
sliders (`vaegan.directions`) are fitted to, the atlas is coloured by, and the
disentanglement table reports.

This module owns the attribute *definitions* (`ATTRIBUTES`) and their measurement
(`measure`, `measure_batch`). Everything is pure numpy/scipy: no model code.

Frame and units
---------------
Grids are in the project's voxel frame (see `vaegan.voxels`): up is array axis 2, the
backrest is toward the high end of axis 0 (the chair's front faces -axis 0), axis 1 is
left/right. Every grid is first brought to the *canonical 32^3 resolution* (64^3 by 2x2x2
block means, 16^3 and 8^3 by repeating voxels), so lengths are always in **voxels of a
32^3 grid**, in which the largest dimension of a training chair spans 24 voxels. One voxel
is therefore about 1/24 of a chair's largest dimension.

Robustness on rough GAN samples: occupied = probability >= 0.5, and only the largest
18-connected piece is kept (`vaegan.meshing.keep_largest_component`, what the app meshes).
An empty grid measures NaN for every attribute.

Definitions (z = array axis 2, "slice" = one horizontal layer of voxels)
-------------------------------------------------------------------------
* ``seat_height`` (voxels): the seat slice ``seat_z`` is the densest horizontal slice of
  the densest 3-slice slab (largest occupied area summed over z-1, z, z+1, slab centres
  from one slice above the bottom to one below the top; the slab keeps a lone dense slice
  such as a star base from winning over a seat with its cushion). The seat's top ``seat_top`` is the
  highest slice of the run of slices from ``seat_z`` up whose area is at least half the
  seat slice's (a thick cushion is all seat). Seat height = ``seat_top + 1 - bottom``, the
  sitting surface above the floor.
* ``backrest_height`` (voxels): how far the chair rises above the sitting surface at the
  back: the top of the highest occupied slice above ``seat_top`` among voxels in the back
  third of the seat slice's extent along axis 0 (and anything behind it), minus
  ``seat_top + 1``. 0 without a backrest.
* ``seat_width`` / ``seat_depth`` (voxels): the bounding-box extent of the seat slice along
  axis 1 (left/right) and axis 0 (front/back).
* ``armrests`` (fraction, 0..1): side strips = the outer 3 voxels of the seat slice's
  left/right extent, and everything outside it; the front two thirds of the seat's depth;
  from 2 to 10 voxels above the sitting surface (slices ``seat_top + 2 .. seat_top + 10``).
  Per side, the fraction of front/middle rows (axis-0 positions) with any occupied voxel
  in that box; the mean of the two sides. About 1 for an armrest bar along the whole
  seat, 0 for an armless chair.
* ``leg_count`` (pieces): in the leg band (from 25% to 75% of the way from the bottom to
  two slices under the seat), the number of separate 8-connected pieces in each slice,
  averaged over the band's slices: ~4 for four legs, ~1 for a pedestal or a solid base,
  0 when there is no room under the seat (fewer than 2 slices).
* ``leg_thickness`` (voxels): over the same pieces, the mean side of a square with the
  piece's area (sqrt(area)); 0 when there are no pieces.
* ``mass`` (fraction of the grid): occupied voxels / 32^3 after cleaning (a ModelNet chair
  fills 0.009..0.15, median 0.027).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import VoxelError
from .meshing import keep_largest_component

__all__ = ["CANONICAL_RESOLUTION", "Attribute", "ATTRIBUTES", "NAMES", "canonical_grid", "measure",
           "measure_batch"]

CANONICAL_RESOLUTION = 32
LEVEL = 0.5
# Geometry constants of the definitions above, in voxels of the 32^3 grid.
_SLAB_HALF = 1  # the seat search uses slabs of 2 * _SLAB_HALF + 1 slices
_ARM_STRIP = 3  # side strip width
_ARM_LOW, _ARM_HIGH = 2, 10  # armrest box above the seat top
_LEG_BAND = (0.25, 0.75)  # fraction of the leg region's height
_PLANE_STRUCTURE = np.ones((3, 3), dtype=bool)  # 8-connectivity within a slice


@dataclass(frozen=True)
class Attribute:
    """One measured attribute: its key, a label for sliders and tables, and its unit."""

    name: str
    label: str
    unit: str
    definition: str


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("seat_height", "seat height", "voxels",
              "sitting surface (top of the seat around the densest horizontal slab) above the chair's bottom"),
    Attribute("backrest_height", "backrest height", "voxels",
              "top of the chair above the sitting surface in the back third of the seat depth"),
    Attribute("seat_width", "seat width", "voxels", "left/right (axis 1) extent of the seat slice"),
    Attribute("seat_depth", "seat depth", "voxels", "front/back (axis 0) extent of the seat slice"),
    Attribute("armrests", "armrests", "fraction",
              "share of front/middle rows with occupancy 2-10 voxels above the sitting surface in the outer "
              "3-voxel side strips, mean of both sides"),
    Attribute("leg_count", "leg count", "pieces",
              "mean number of 8-connected pieces per slice in the middle half of the space under the seat"),
    Attribute("leg_thickness", "leg thickness", "voxels", "mean sqrt(area) of those pieces"),
    Attribute("mass", "mass", "fraction of grid", "occupied fraction of the 32^3 grid after cleaning"),
)
NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)


def canonical_grid(vox: np.ndarray) -> np.ndarray:
    """A cubic grid (R, R, R) -> float32 (32, 32, 32) occupancy at the canonical resolution.

    R = 32 is returned as is; R = 64, 128 are 2^k block means; R = 8, 16 repeat voxels.
    """
    grid = np.asarray(vox, dtype=np.float32)
    if grid.ndim != 3 or len(set(grid.shape)) != 1:
        raise VoxelError(f"attributes need a cubic (R, R, R) grid, got shape {grid.shape}")
    r = grid.shape[0]
    c = CANONICAL_RESOLUTION
    if r == c:
        return grid
    if r > c and r % c == 0:
        f = r // c
        return grid.reshape(c, f, c, f, c, f).mean(axis=(1, 3, 5))
    if r < c and c % r == 0:
        f = c // r
        return grid.repeat(f, 0).repeat(f, 1).repeat(f, 2)
    raise VoxelError(f"grid side {r} is not a power-of-two multiple or divisor of {c}")


def _nan_row() -> dict[str, float]:
    return dict.fromkeys(NAMES, float("nan"))


def _seat_slice(area: np.ndarray, bottom: int, top: int) -> int:
    """z of the densest slice of the densest (2 * _SLAB_HALF + 1)-slice slab within (bottom, top)."""
    slab = np.convolve(area, np.ones(2 * _SLAB_HALF + 1), mode="same")  # (32,)
    lo, hi = bottom + 1, top - 1
    if hi < lo:  # a chair 1-2 slices tall: take its densest slice
        return int(np.argmax(area))
    centre = lo + int(np.argmax(slab[lo:hi + 1]))
    return centre - _SLAB_HALF + int(np.argmax(area[centre - _SLAB_HALF:centre + _SLAB_HALF + 1]))


def _seat_top(area: np.ndarray, seat_z: int) -> int:
    """Highest slice of the run from ``seat_z`` up with at least half the seat slice's area."""
    top = seat_z
    while top + 1 < len(area) and area[top + 1] >= 0.5 * area[seat_z]:
        top += 1
    return top


def _extent(mask: np.ndarray) -> tuple[int, int]:
    """First and last True index of a 1-D mask (the caller guarantees one exists)."""
    idx = np.flatnonzero(mask)
    return int(idx[0]), int(idx[-1])


def _armrests(occ: np.ndarray, seat_top: int, x0: int, x_back: int, y0: int, y1: int) -> float:
    """The armrest score (see the module docstring) from the seat slice's box."""
    z_lo, z_hi = seat_top + _ARM_LOW, min(seat_top + _ARM_HIGH, occ.shape[2] - 1)
    if z_lo > z_hi or x_back <= x0:
        return 0.0
    box = occ[x0:x_back, :, z_lo:z_hi + 1].any(axis=2)  # (rows, 32): occupied above the seat
    left = box[:, : y0 + _ARM_STRIP].any(axis=1)  # (rows,)
    right = box[:, max(y1 - _ARM_STRIP + 1, 0):].any(axis=1)
    if y1 - y0 + 1 <= 2 * _ARM_STRIP:  # a seat too narrow for two separate strips
        return float(box.any(axis=1).mean())
    return float((left.mean() + right.mean()) / 2)


def _legs(occ: np.ndarray, bottom: int, seat_z: int) -> tuple[float, float]:
    """(mean pieces per slice, mean sqrt(piece area)) in the leg band under the seat."""
    top = seat_z - 2  # leave the seat's underside (skirts, thick seats) out
    if top - bottom + 1 < 2:
        return 0.0, 0.0
    span = top - bottom
    z_lo = bottom + int(round(_LEG_BAND[0] * span))
    z_hi = max(z_lo, bottom + int(round(_LEG_BAND[1] * span)))
    counts, sides = [], []
    for z in range(z_lo, z_hi + 1):
        labels, n = ndimage.label(occ[:, :, z], structure=_PLANE_STRUCTURE)
        counts.append(n)
        if n:
            areas = np.bincount(labels.ravel())[1:]  # (n,)
            sides.extend(np.sqrt(areas).tolist())
    return float(np.mean(counts)), float(np.mean(sides)) if sides else 0.0


def measure(vox: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """One grid (R, R, R) of occupancy probabilities -> {attribute name: value}.

    Values follow the module docstring's definitions and units; NaN for an empty grid.
    """
    grid = canonical_grid(vox)  # (32, 32, 32)
    occ = keep_largest_component(grid >= level)  # (32, 32, 32) bool
    if not occ.any():
        return _nan_row()
    area = occ.sum(axis=(0, 1))  # (32,) occupied voxels per slice
    bottom, top = _extent(area > 0)
    seat_z = _seat_slice(area, bottom, top)
    seat_top = _seat_top(area, seat_z)
    seat = occ[:, :, seat_z]  # (32, 32)
    x0, x1 = _extent(seat.any(axis=1))
    y0, y1 = _extent(seat.any(axis=0))
    depth = x1 - x0 + 1
    x_back = x0 + int(np.ceil(2 * depth / 3))  # first row of the back third
    back = occ[x_back:, :, seat_top + 1:]  # (rows, 32, above) the back third and behind
    back_z = np.flatnonzero(back.any(axis=(0, 1)))
    legs, thickness = _legs(occ, bottom, seat_z)
    return {
        "seat_height": float(seat_top + 1 - bottom),
        "backrest_height": float(back_z[-1] + 1) if len(back_z) else 0.0,
        "seat_width": float(y1 - y0 + 1),
        "seat_depth": float(depth),
        "armrests": _armrests(occ, seat_top, x0, x_back, y0, y1),
        "leg_count": legs,
        "leg_thickness": thickness,
        "mass": float(occ.mean()),
    }


def measure_batch(grids: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Grids (n, R, R, R) -> float64 (n, len(NAMES)) attribute matrix, columns in NAMES order."""
    grids = np.asarray(grids)
    if grids.ndim != 4:
        raise VoxelError(f"expected a stack of grids (n, R, R, R), got shape {grids.shape}")
    out = np.empty((len(grids), len(NAMES)), dtype=np.float64)
    for i, grid in enumerate(grids):
        row = measure(grid, level)
        out[i] = [row[name] for name in NAMES]
    return out
