"""Projection of voxel grids into the latent space: find z with G(z) close to a given chair,
so a loaded binvox/ModelNet chair (or any grid) can be edited with the same sliders.

This module owns `project` (GAN inversion by optimisation through the frozen generator)
and `latent_bank` (prior samples with their packed shapes, the retrieval start).

Method
------
1. *Retrieval start*: a bank of prior samples z ~ N(0, I) is generated once; each target
   starts from the ``starts`` bank latents whose shapes have the highest IoU with it
   (`vaegan.novelty`). Starting near the right chair matters far more than the optimiser:
   from z = 0 the optimisation mostly lands in a poor local optimum.
2. *Optimisation*: Adam on z (generator frozen, eval-mode BatchNorm, so the batch does not
   change any chair) minimising
       BCE(G.logits(z), target, positives weighted by ``pos_weight``)  (mean over voxels)
       + ``prior_weight`` * |z|^2 / z_dim                              (stay near the prior)
   Chairs fill ~3% of the grid, so unweighted BCE is dominated by empty space; the positive
   weight keeps thin legs and backrest slats in the fit.
3. The result per target is the latent with the best IoU (G(z) >= ``level`` against
   target >= 0.5) among the starts and the checkpoints every ``eval_every`` steps.

Everything is batched (``batch_size`` latents per forward pass) and seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from . import novelty
from .errors import ConfigError
from .voxels import check_grids

__all__ = ["ProjectionConfig", "ProjectionResult", "LatentBank", "REFINE", "check_targets", "latent_bank", "project",
           "encode"]


@dataclass
class ProjectionConfig:
    steps: int = 100  # Adam steps per target
    lr: float = 0.3  # Adam learning rate on z (constant: a decay only slowed it down)
    pos_weight: float = 3.0  # BCE weight of occupied target voxels
    prior_weight: float = 0.01  # weight of |z|^2 / z_dim
    bank: int = 1024  # prior samples for the retrieval start
    starts: int = 2  # bank latents optimised per target (best kept)
    batch_size: int = 64  # latents per forward pass
    eval_every: int = 20  # steps between best-IoU checkpoints
    level: float = 0.5  # iso-level of the generated shape for IoU
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 0 or self.bank < 1 or not 1 <= self.starts <= self.bank or self.batch_size < 1:
            raise ConfigError("projection needs steps >= 0, bank >= 1, 1 <= starts <= bank, batch_size >= 1")
        if self.lr <= 0 or self.pos_weight <= 0 or self.prior_weight < 0 or self.eval_every < 1:
            raise ConfigError("projection needs lr > 0, pos_weight > 0, prior_weight >= 0, eval_every >= 1")
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"level must be in (0, 1), got {self.level}")


# The short refinement of a shape-encoder code (`encode`): a few Adam steps from a start that
# is already close, about 0.4 s for one chair on 2 cores (train shape-encoder measures it).
REFINE = ProjectionConfig(steps=30, starts=1, eval_every=10, lr=0.1)


@dataclass
class ProjectionResult:
    """``z`` float32 (n, z_dim); ``iou`` float32 (n,) of G(z) against the target; ``start_iou``
    float32 (n,) of the best retrieval start (before any optimisation); the config used."""

    z: np.ndarray
    iou: np.ndarray
    start_iou: np.ndarray
    config: dict


@dataclass(frozen=True)
class LatentBank:
    """Prior samples ``z`` float32 (n, z_dim) and their shapes packed at ``level``."""

    z: np.ndarray
    shapes: novelty.PackedGrids


def check_targets(grids, resolution: int) -> np.ndarray:
    """A grid (R, R, R) or a stack (n, R, R, R) of occupancies in [0, 1] -> float32 (n, R, R, R).

    The grids must already be at the model's resolution and in its frame (load files with
    `vaegan.voxels.load_voxels(path, resolution)`); anything else is a VoxelError."""
    return check_grids(grids, resolution, what="projection targets",
                       hint=f"; load files with vaegan.voxels.load_voxels(path, {resolution})")


def latent_bank(pipe, n: int = 1024, seed: int = 0, level: float = 0.5, batch_size: int = 64) -> LatentBank:
    """``n`` prior latents (seeded) and their generated shapes, packed for IoU lookups."""
    z = np.asarray(pipe.sample_latents(n, seed=seed), dtype=np.float32)  # (n, z_dim)
    shapes = [novelty.pack(pipe.generate(chunk), level) for chunk in np.array_split(z, max(1, -(-n // batch_size)))]
    words = np.concatenate([s.words for s in shapes])
    counts = np.concatenate([s.counts for s in shapes])
    return LatentBank(z, novelty.PackedGrids(words, counts, pipe.resolution))


def _iou(probs: torch.Tensor, target: torch.Tensor, level: float) -> torch.Tensor:
    """IoU of (B, R, R, R) probabilities >= level against targets >= 0.5 -> (B,)."""
    a, b = probs >= level, target >= 0.5
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _optimise(generator, z0: torch.Tensor, target: torch.Tensor,
              cfg: ProjectionConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam from z0 (B, z_dim) toward targets (B, R, R, R) -> (best z (B, z_dim), best IoU (B,),
    IoU of the start (B,))."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    weight = torch.where(target >= 0.5, cfg.pos_weight, 1.0)  # (B, R, R, R)
    best_z, best_iou = z0.clone(), torch.full((len(z0),), -1.0)
    for step in range(cfg.steps + 1):
        logits = generator.logits(z)[:, 0]  # (B, R, R, R)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with torch.no_grad():
                iou = _iou(torch.sigmoid(logits), target, cfg.level)  # (B,)
                if step == 0:
                    start_iou = iou
                better = iou > best_iou
                best_iou = torch.where(better, iou, best_iou)
                best_z[better] = z.detach()[better]
        if step == cfg.steps:
            break
        bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="none")
        loss = bce.flatten(1).mean(1) + cfg.prior_weight * z.pow(2).mean(1)  # (B,)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # latents are independent: each gets its own gradient
        opt.step()
    return best_z, best_iou, start_iou


def project(pipe, grids, config: ProjectionConfig | None = None, bank: LatentBank | None = None,
            progress: Callable[[int, int], None] | None = None, init=None) -> ProjectionResult:
    """Project grids (n, R, R, R) or one (R, R, R) into z (see the module docstring).

    ``bank`` reuses a `latent_bank` across calls (it must come from the same model);
    ``init`` (n, z_dim), e.g. `ChairPipeline.encode_shape` codes, replaces the retrieval
    start: one start per target, a short refinement of a code that is already close;
    ``progress(done, total)`` is called after each batch of targets.
    """
    cfg = config or ProjectionConfig()
    cfg.validate()
    targets = check_targets(grids, pipe.resolution)  # (n, R, R, R)
    if init is not None:
        starts_z = pipe.check_latents(init).numpy()  # (n, z_dim)
        if len(starts_z) != len(targets):
            raise ConfigError(f"init has {len(starts_z)} codes for {len(targets)} targets")
        starts, order = 1, np.arange(len(targets))[:, None]  # (n, 1)
        start_iou = np.empty(len(targets), dtype=np.float32)  # filled from the optimisation's first step
    else:
        bank = bank or latent_bank(pipe, cfg.bank, cfg.seed, cfg.level, cfg.batch_size)
        if bank.z.shape[1] != pipe.z_dim or bank.shapes.resolution != pipe.resolution:
            raise ConfigError("the latent bank was made with a different model")
        starts = min(cfg.starts, len(bank.z))
        starts_z = bank.z
        iou_bank = novelty.iou_one_to_many(novelty.pack(targets), bank.shapes)  # (n, bank)
        order = np.argsort(-iou_bank, axis=1, kind="stable")[:, :starts]  # (n, starts) best first
        start_iou = iou_bank[np.arange(len(targets)), order[:, 0]]
    generator = pipe.generator.eval()
    flags = [p.requires_grad for p in generator.parameters()]
    generator.requires_grad_(False)
    per_batch = max(1, cfg.batch_size // starts)  # targets per forward pass
    z_out = np.empty((len(targets), pipe.z_dim), dtype=np.float32)
    iou_out = np.empty(len(targets), dtype=np.float32)
    torch.manual_seed(cfg.seed)
    try:
        for i0 in range(0, len(targets), per_batch):
            idx = np.arange(i0, min(i0 + per_batch, len(targets)))
            z0 = torch.from_numpy(starts_z[order[idx].ravel()])  # (b * starts, z_dim)
            target = torch.from_numpy(targets[idx]).repeat_interleave(starts, 0)  # (b * starts, R, R, R)
            best_z, best_iou, first_iou = _optimise(generator, z0, target, cfg)
            if init is not None:
                start_iou[idx] = first_iou.numpy()  # that step is the start's only generator pass
            best_iou = best_iou.view(len(idx), starts)
            pick = best_iou.argmax(1)  # (b,)
            z_out[idx] = best_z.view(len(idx), starts, -1)[torch.arange(len(idx)), pick].numpy()
            iou_out[idx] = best_iou[torch.arange(len(idx)), pick].numpy()
            if progress is not None:
                progress(int(idx[-1]) + 1, len(targets))
    finally:
        for p, flag in zip(generator.parameters(), flags):
            p.requires_grad_(flag)
    return ProjectionResult(z_out, iou_out, start_iou.astype(np.float32), asdict(cfg))


def encode(pipe, grids, refine: bool = True, config: ProjectionConfig = REFINE) -> ProjectionResult:
    """Codes of grids (n, R, R, R) or one (R, R, R) by the checkpoint's shape encoder
    (`ChairPipeline.encode_shape`, one pass), then, with ``refine``, `project` from those codes
    with ``config``. Without refinement ``iou`` equals ``start_iou``: the one-pass figure."""
    codes = pipe.encode_shape(grids)  # (n, z_dim); VoxelError for bad grids
    return project(pipe, grids, replace(config, steps=config.steps if refine else 0), init=codes)
