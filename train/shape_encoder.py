"""`python -m train shape-encoder`: train the shape encoder E (voxels -> z) for a frozen generator.

    python -m train shape-encoder --checkpoint checkpoints/chair32 \
        --data ../shared/data/modelnet10_chair_vol30 --out runs/shape32
    python -m train shape-encoder ... --resume          # continue after a kill
    python -m train shape-encoder ... --dry-run         # print the resolved config
    cp -r runs/shape32/shape_encoder checkpoints/chair32/

Each step takes a batch of training chairs and a batch of the generator's own samples:

- training chairs x: reconstruction through the frozen generator,
  BCE(G.logits(E(x)), x) with occupied voxels weighted by ``pos_weight`` (chairs fill ~3 % of
  the grid, so plain BCE would let thin legs go): the measure a user sees;
- generated chairs x = G(z) >= 0.5 with their known z, from a pool of ``pool`` samples made
  once at the start: ||E(x) - z||^2 / z_dim, which keeps the codes where the generator was
  trained (and is the whole target on its own chairs).

Fine-tuning a jointly trained encoder (`--init`; chair32 v3.3's flags are in its model card,
Recipe step 5) widens what it has seen rather than what it is asked:
- ``part_mix``: that share of the training chairs is replaced by part-mixed chairs, one chair
  below (or in front of) a random cut plane and another beyond it (`train.common.part_mix`): new
  chairs built of real parts, as the test chairs are, which the encoder must code for the frozen
  decoder; on its own, without them, fine-tuning moved the test figure by 0.0006;
- ``average_every``: the weights are averaged every that many steps (stochastic weight
  averaging, Izmailov et al. 2018; with a constant lr, ``lr_final`` 1), and the average, its
  BatchNorm statistics recomputed on the training chairs, is what is evaluated and kept.

The encoder's codes lie on the prior's shell |z| = sqrt(z_dim) by construction
(`vaegan.models.ShapeEncoder`), so the sliders and arithmetic behave on them as on sampled
chairs and no prior penalty is needed.

Both kinds go through E as one batch, so its BatchNorm statistics are those of the mixture in
training and at evaluation alike (two separate batches left the running statistics fitting
neither, and the held-out IoU fell as the loss fell). Every ``eval_every`` steps the one-pass IoU of G(E(x)) >= 0.5 with held-out training chairs
(by id, as `train gan` holds them out) is measured; the best encoder is kept in
``out/shape_encoder/``. At the end the same figure is measured on the data's test split,
in one pass and after the short refinement the app uses (`vaegan.projection.REFINE`), with its
time per chair; they go to ``out/shape_encoder.json`` and the log.
"""

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vaegan import projection
from vaegan.datasets import load_chairs
from vaegan.errors import ConfigError
from vaegan.models import ShapeEncoder, to_channels_last
from vaegan.pipeline import MAX_SAMPLES
from vaegan.voxels import chair_ious

from .common import (TrainingClock, add_run_arguments, augment, open_checkpoint, optimizer_step, part_mix,
                     restore_run, run_command, save_run, start_run)
from .gan import keep_best_one_pass, reconstruction_loss, split_by_id
from .photo_encoder import detached_copy

log = logging.getLogger(__name__)

@dataclass
class ShapeEncoderConfig:
    checkpoint: str = "checkpoints/chair32"  # the generator the codes are for (frozen)
    data: str = ""  # training chairs (`--data` of train gan); its test split is scored at the end
    out: str = "runs/shape_encoder"  # run folder
    init: bool = False  # start from the checkpoint's own shape encoder (fine-tune a jointly trained one)
    minutes: float = 25.0  # training time; the run stops at `steps` or here, whichever is first
    steps: int = 100_000
    batch_real: int = 32  # training chairs per step (reconstruction loss)
    batch_generated: int = 32  # generator samples per step (known-code loss)
    pool: int = 8192  # generator samples made once, drawn from for the known-code loss
    lr: float = 1e-3  # Adam
    lr_final: float = 0.1  # the lr decays linearly over the time budget to this fraction
    recon_weight: float = 10.0
    pos_weight: float = 3.0  # BCE weight of occupied voxels (as vaegan.projection)
    latent_weight: float = 0.3
    mirror: bool = True  # random left/right flips of the training chairs
    shift: int = 0  # random translations of up to this many voxels in the floor plane
    part_mix: float = 0.0  # share of the training chairs replaced by part-mixes (two chairs cut at one plane)
    average_every: int = 0  # > 0: average the weights every this many steps and keep the average (SWA)
    val_chairs: int = 48  # held out by id for model selection
    eval_every: int = 250
    seed: int = 0
    threads: int = 2

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("--data is required: the training chairs")
        if self.minutes <= 0 or self.steps < 1 or self.batch_real < 2 or self.batch_generated < 0:
            raise ConfigError("minutes > 0, steps >= 1, batch_real >= 2 and batch_generated >= 0 are needed")
        if min(self.lr, self.pos_weight) <= 0 or min(self.recon_weight, self.latent_weight) < 0:
            raise ConfigError("lr and pos_weight must be > 0, the loss weights >= 0")
        if not 0 <= self.part_mix <= 1 or self.average_every < 0 or self.shift < 0:
            raise ConfigError("part_mix must be in [0, 1], average_every and shift >= 0")


# ----------------------------------------------------------------------------- losses
def code_loss(code: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """||E(G(z)) - z||^2 / z_dim, averaged over the batch (B, z_dim)."""
    return (code - z).pow(2).mean()


# ----------------------------------------------------------------------------- helpers
@torch.no_grad()
def generated_pool(pipe, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded draws from the checkpoint's prior (`sample_latents`: its learned prior where it
    ships one, else N(0, I)) and the chairs `generate` shows for them, >= 0.5:
    (n, z_dim) float, (n, R, R, R) bool."""
    r = pipe.resolution
    if n == 0:
        return torch.zeros(0, pipe.z_dim), torch.zeros((0, r, r, r), dtype=torch.bool)
    counts = [min(MAX_SAMPLES, n - start) for start in range(0, n, MAX_SAMPLES)]  # sample_latents' cap
    z = torch.cat([pipe.sample_latents(count, seed=seed + 1 + i) for i, count in enumerate(counts)])
    return z, torch.from_numpy(pipe.generate(z) >= 0.5)


@torch.no_grad()
def averaged_encoder(average, chairs: torch.Tensor, batch: int) -> ShapeEncoder:
    """A copy of the weight average (`torch.optim.swa_utils.AveragedModel`) with its BatchNorm
    statistics recomputed on `chairs` (N, R, R, R), in eval mode: averaged weights never saw
    the running statistics of the weights they average."""
    encoder = detached_copy(average.module)
    batches = (chairs[i:i + batch].float()[:, None] for i in range(0, len(chairs), batch))  # one at a time
    torch.optim.swa_utils.update_bn(batches, encoder)
    return encoder.eval()


def train(cfg: ShapeEncoderConfig, resume: bool = False) -> Path:
    out, state_path, state = start_run(cfg, resume, ("checkpoint", "batch_real", "batch_generated"), "config.json")

    pipe = open_checkpoint(cfg.checkpoint)
    generator = pipe.generator.eval().requires_grad_(False)  # frozen; eval-mode BatchNorm
    chairs, names = load_chairs(cfg.data, "train", pipe.resolution)
    train_idx, val_idx = split_by_id(names, cfg.val_chairs, cfg.seed)
    data, val = torch.from_numpy(chairs[train_idx]), chairs[val_idx]  # (N, R, R, R) uint8
    log.info("data: %d training chairs, %d held out, generator %s", len(data), len(val), cfg.checkpoint)

    torch.manual_seed(cfg.seed)
    pool_z, pool_x = generated_pool(pipe, cfg.pool if cfg.batch_generated else 0, cfg.seed)
    encoder = ShapeEncoder(pipe.config)
    if cfg.init:
        if pipe.shape_encoder is None:
            raise ConfigError(f"--init needs a shape encoder in {cfg.checkpoint}; it has none")
        encoder.load_state_dict(pipe.shape_encoder.state_dict())
    encoder = to_channels_last(encoder).train()
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed)
    modules = {"encoder": encoder}
    if cfg.average_every:
        modules["average"] = torch.optim.swa_utils.AveragedModel(encoder)
    step, elapsed, best = restore_run(state, modules, opt, rng, out)

    def save_state() -> None:
        save_run(state_path, cfg, step, elapsed, best, modules, opt, rng)

    clock = TrainingClock("shape-encoder", cfg.steps, 60 * cfg.minutes, step, elapsed)
    while clock.going:
        for group in opt.param_groups:  # linear decay over the time budget
            group["lr"] = cfg.lr * (1 - (1 - cfg.lr_final) * clock.progress)
        real = data[torch.randint(len(data), (cfg.batch_real,), generator=rng)].float()  # (B, R, R, R)
        if cfg.part_mix:
            real = part_mix(real, cfg.part_mix, rng)
        real = augment(real, cfg.mirror, cfg.shift, rng)
        pick = torch.randint(max(1, len(pool_z)), (cfg.batch_generated,), generator=rng)  # none without a pool
        z, made = pool_z[pick], pool_x[pick].float()  # (b, z_dim), (b, R, R, R)
        grids = torch.cat([real, made])[:, None].contiguous(memory_format=torch.channels_last_3d)  # (B + b, 1, R^3)
        code = encoder(grids)  # (B + b, z_dim): one batch, one set of BatchNorm statistics
        code_real, code_made = code[:len(real)], code[len(real):]
        loss = cfg.recon_weight * reconstruction_loss(generator.logits(code_real), grids[:len(real)], cfg.pos_weight)
        if len(made):
            loss = loss + cfg.latent_weight * code_loss(code_made, z)
        optimizer_step(opt, loss)
        clock.tick(loss.item(), best=f"{best:.3f}")
        step, elapsed = clock.step, clock.elapsed
        if cfg.average_every and step % cfg.average_every == 0:
            modules["average"].update_parameters(encoder)
        if clock.due(cfg.eval_every):
            kept = averaged_encoder(modules["average"], data, cfg.batch_real) if cfg.average_every else encoder
            best = keep_best_one_pass(clock, kept, generator, val, best,
                                      lambda: detached_copy(kept).save_pretrained(out / "shape_encoder"))
        if clock.save_due():
            save_state()
    clock.close()
    save_state()
    log.info("trained %d steps in %.1f min; best held-out one-pass IoU %.3f -> %s", step, elapsed / 60, best,
             out / "shape_encoder")
    report = {"steps": step, "minutes": round(elapsed / 60, 2), "held_out_iou": round(best, 4)}
    report.update(test_report(cfg.checkpoint, out / "shape_encoder", cfg.data))
    (out / "shape_encoder.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return out / "shape_encoder"


def test_report(checkpoint: str, encoder_dir: Path, data: str) -> dict:
    """The trained encoder on the data's test split: one-pass IoU, and IoU after `REFINE`
    with its time per chair (one chair at a time, as in the app)."""
    if not (Path(data) / "test").is_dir():
        log.warning("no test split scored: %s has no test/ folder", data)
        return {}
    pipe = open_checkpoint(checkpoint)
    pipe.shape_encoder = ShapeEncoder.from_pretrained(encoder_dir)
    tests, _ = load_chairs(data, "test", pipe.resolution)
    once = chair_ious(pipe.generate(pipe.encode_shape(tests)) >= 0.5, tests > 0)
    start = time.perf_counter()
    refined = np.array([projection.encode(pipe, grid).iou[0] for grid in tests])  # one at a time, as the app
    seconds = (time.perf_counter() - start) / len(tests)
    return {"test_chairs": len(tests), "test_one_pass_iou": round(float(once.mean()), 4),
            "test_refined_iou": round(float(refined.mean()), 4), "refine_seconds_per_chair": round(seconds, 3),
            "refine": asdict(projection.REFINE)}


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    add_run_arguments(parser, ShapeEncoderConfig)


def main(args) -> int:
    return run_command(args, ShapeEncoderConfig, train)
