"""Differentiable augmentation of voxel grids for the discriminator (DiffAugment, Zhao et al.
2020; ADA, Karras et al. 2020), in 3-D.

With 840 training chairs D memorises the real set and its gradient stops being useful to G.
Augmenting *every* grid D sees, real and fake, in the D step and in the G step alike, lets D
see many more distinct inputs without teaching G the augmentation: the augmented real and
the augmented fake distributions match only when the un-augmented ones do. Each transform is
built from indexing and multiplication, so G's gradient flows through it.

    x = augment(x, ("translation", "cutout"), generator=rng)   # (B, 1, R, R, R) -> same shape

- ``translation``: each grid shifted by up to `shift` voxels along each axis, zero padded;
- ``cutout``: a cube of side `cutout` voxels at a random place in each grid set to empty;
- ``mirror``: half the grids flipped left/right (array axis 1, the chair's own symmetry).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSFORMS = ("translation", "cutout", "mirror")


def parse(spec: str) -> tuple[str, ...]:
    """'translation,cutout' -> ('translation', 'cutout'); ValueError names an unknown one."""
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}: choose from {', '.join(TRANSFORMS)}")
    return names


def _randint(high: int, shape, generator, device) -> torch.Tensor:
    return torch.randint(high, shape, generator=generator).to(device)


def translate(x: torch.Tensor, shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 1, R, R, R) -> each grid moved by its own integer offset in [-shift, shift]^3."""
    if shift <= 0:
        return x
    b, _, r = x.shape[0], x.shape[1], x.shape[2]
    padded = F.pad(x[:, 0], [shift] * 6)  # (B, R + 2s, R + 2s, R + 2s)
    offset = _randint(2 * shift + 1, (3, b), generator, x.device)  # start of the crop in the padded grid
    ar = torch.arange(r, device=x.device)
    i, j, k = (offset[a][:, None] + ar for a in range(3))  # (B, R) each
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    out = padded[batch, i[:, :, None, None], j[:, None, :, None], k[:, None, None, :]]  # (B, R, R, R)
    return out[:, None].contiguous(memory_format=torch.channels_last_3d)


def cut_out(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 1, R, R, R) -> each grid with one random cube of side `size` emptied."""
    if size <= 0:
        return x
    b, r = x.shape[0], x.shape[2]
    corner = _randint(r - size + 1, (3, b), generator, x.device)  # (3, B)
    ar = torch.arange(r, device=x.device)
    inside = [((ar >= c[:, None]) & (ar < c[:, None] + size)) for c in corner]  # 3 x (B, R)
    hole = inside[0][:, :, None, None] & inside[1][:, None, :, None] & inside[2][:, None, None, :]  # (B, R, R, R)
    return x * (~hole)[:, None].to(x.dtype)


def mirror(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 1, R, R, R) -> half the grids (at random) flipped along array axis 1 (left/right)."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)[:, None, None, None, None]
    return torch.where(flip, x.flip(3), x)  # dim 3 of (B, 1, R, R, R) is voxel axis 1


def augment(x: torch.Tensor, transforms: tuple[str, ...], shift: int = 2, cutout: int = 8,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply `transforms` in the order translation, cutout, mirror; each grid draws its own."""
    if "translation" in transforms:
        x = translate(x, shift, generator)
    if "cutout" in transforms:
        x = cut_out(x, cutout, generator)
    if "mirror" in transforms:
        x = mirror(x, generator)
    return x
