"""`python -m train gan`: train the 3D-GAN generator and discriminator on voxel chairs.

One readable loop (nanoGPT style): a D step on a real and a fake batch, then a G step
through a frozen D. What a run folder holds:

    runs/NAME/config.json        the resolved TrainConfig (also printed by --dry-run)
    runs/NAME/state.pt           everything --resume needs (written atomically)
    runs/NAME/metrics.csv        losses per log interval
    runs/NAME/eval.csv           cheap quality monitors on held-out training chairs
    runs/NAME/samples/*.png      sample sheets every few minutes
    runs/NAME/checkpoint/        the final pipeline folder (EMA generator + discriminator)
    runs/NAME/best/              the pipeline at the evaluation with the best held-out
                                 coverage-IoU (`keep_best`); late GAN training can drift

Runs under `torchrun --nproc_per_node N` with DistributedDataParallel (gloo on CPU).
"""

import copy
import csv
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from vaegan import meshing
from vaegan.config import ModelConfig
from vaegan.datasets import load_chairs
from vaegan.errors import CheckpointError, ConfigError
from vaegan.fileio import atomic_write
from vaegan.models import Discriminator, Generator, ShapeEncoder, to_channels_last, to_radius
from vaegan.pipeline import ChairPipeline
from vaegan.render import contact_sheet, render_grids
from vaegan.voxels import chair_ious

from .common import add_run_arguments, config_values, start_run

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: str = ""  # folder of chair_<id>_<k>.mat (with train/ test/) or of .binvox files
    out: str = "runs/chair32"  # run folder
    # --- model (see vaegan.config.ModelConfig)
    resolution: int = 32
    z_dim: int = 200
    g_widths: tuple[int, ...] = (128, 64, 32)
    d_widths: tuple[int, ...] | None = None  # None mirrors g_widths
    d_norm: str = "batch"  # "batch" or "spectral"
    # --- objective and optimiser
    loss: str = "bce"  # "bce" (the paper, non-saturating G loss) or "hinge"
    batch_size: int = 32  # per process
    g_lr: float = 2.5e-3  # the paper's G learning rate
    d_lr: float = 1e-3  # the paper says 1e-5; see the model card for what converged here
    beta1: float = 0.5
    beta2: float = 0.999
    d_acc_max: float = 0.8  # update D only while its batch accuracy is <= this (the paper)
    steps: int = 6000  # optimiser steps (one D + one G step each): 228 epochs of 840 chairs
    lr_decay_start: float = 1.0  # fraction of steps after which both lrs decay linearly ...
    lr_decay_final: float = 0.1  # ... to this fraction of their start value
    ema_decay: float = 0.999  # EMA of G weights (shipped); 0 disables
    ema_start: int = 500  # steps before the EMA starts tracking
    max_minutes: float = 0.0  # > 0: stop after this much training time; the lr schedule then runs on time
    # --- the 3D-VAE-GAN's shape encoder E trained jointly: G also reconstructs E(x); 0 = plain GAN
    recon_weight: float = 0.0  # weight of the reconstruction BCE(G(E(x)), x) in the G step
    pos_weight: float = 3.0  # BCE weight of occupied voxels (chairs fill ~3 % of the grid)
    code_noise: float = 0.0  # std of noise added to E(x) before G (then back on the shell): a smooth code space
    e_lr: float = 1e-3  # Adam learning rate of E
    # --- fine-tuning: start G (and its EMA), D [and E] from a pipeline folder instead of from scratch
    init: str = ""
    # --- data
    poses: tuple[int, ...] = (1,)  # canonical pose only: chairs stay upright and facing
    mirror: bool = True  # random left/right flips (array axis 1) as augmentation
    val_chairs: int = 48  # chairs held out (by id) for the quality monitor
    keep_best: bool = True  # export the pipeline of the best monitor evaluation to out/best/
    # --- bookkeeping
    seed: int = 0
    log_every: int = 50  # steps between metrics.csv rows
    eval_every: int = 500  # steps between eval.csv rows
    ckpt_every_min: float = 5.0  # minutes between state.pt writes
    sample_every_min: float = 5.0  # minutes between sample sheets
    sheet_samples: int = 32  # chairs per sample sheet
    threads: int = 0  # torch threads; 0 keeps torch's default (all cores)
    device: str = "auto"  # "auto" (CUDA when present, e.g. for the paper's 64^3 model), "cpu", "cuda"

    def model_config(self) -> ModelConfig:
        return ModelConfig(resolution=self.resolution, z_dim=self.z_dim, g_widths=self.g_widths,
                           d_widths=self.d_widths, d_norm=self.d_norm)

    def validate(self) -> None:
        self.model_config()  # raises ConfigError for bad architectures
        if self.loss not in ("bce", "hinge"):
            raise ConfigError(f"loss must be 'bce' or 'hinge', got {self.loss!r}")
        if min(self.recon_weight, self.code_noise, self.max_minutes) < 0:
            raise ConfigError("recon_weight, code_noise and max_minutes must be >= 0")
        if self.pos_weight <= 0 or min(self.g_lr, self.d_lr, self.e_lr) < 0:
            raise ConfigError("pos_weight must be > 0 and the learning rates >= 0")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("steps must be >= 1 and batch_size >= 2 (BatchNorm needs a batch)")
        if not self.data:
            raise ConfigError("--data is required: a folder of voxel chairs")


# ----------------------------------------------------------------------------- losses
def d_loss_bce(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    return (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))


def g_loss_bce(fake_logit: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logit, torch.ones_like(fake_logit))


def d_loss_hinge(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logit).mean() + F.relu(1 + fake_logit).mean()


def g_loss_hinge(fake_logit: torch.Tensor) -> torch.Tensor:
    return -fake_logit.mean()


LOSSES = {"bce": (d_loss_bce, g_loss_bce), "hinge": (d_loss_hinge, g_loss_hinge)}


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """BCE of G's logits (B, 1, R, R, R) against binary chairs, occupied voxels weighted."""
    weight = torch.where(target >= 0.5, pos_weight, 1.0)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def d_accuracy(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """Fraction of the real and fake batch that D classifies right (logit sign)."""
    return torch.cat([(real_logit > 0), (fake_logit < 0)]).float().mean()


# ----------------------------------------------------------------------------- helpers
class DiscriminatorPair(nn.Module):
    """D on the real and on the fake batch in one forward, so DDP sees one forward per
    backward, while BatchNorm still takes separate statistics for real and fake."""

    def __init__(self, disc: Discriminator):
        super().__init__()
        self.disc = disc

    def forward(self, real: torch.Tensor, fake: torch.Tensor):
        return self.disc(real), self.disc(fake)


def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); under torchrun starts a gloo (CPU) or nccl (GPU) group."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def all_mean(value: torch.Tensor, world: int) -> torch.Tensor:
    """Average a scalar over processes, so that every rank takes the same decisions."""
    if world > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= world
    return value


def progress(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """Fraction of the run done, 0..1: of its steps, or of its time when max_minutes is set."""
    done = step / cfg.steps
    if cfg.max_minutes > 0:
        done = max(done, elapsed / (60 * cfg.max_minutes))
    return min(1.0, done)


def lr_factor(cfg: TrainConfig, step: int, elapsed: float = 0.0) -> float:
    """1 until `lr_decay_start` of the run, then linear down to `lr_decay_final` at its end."""
    done = progress(cfg, step, elapsed)
    if done < cfg.lr_decay_start or cfg.lr_decay_start >= 1:
        return 1.0
    frac = (done - cfg.lr_decay_start) / (1 - cfg.lr_decay_start)
    return 1.0 - (1.0 - cfg.lr_decay_final) * frac


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def recalibrate_batchnorm(gen: Generator, z_dim: int, batches: int = 16, batch_size: int = 64, seed: int = 1234) -> None:
    """Recompute the generator's BatchNorm running statistics from fresh samples.

    The EMA weights never ran a forward pass of their own, so the statistics copied from
    the raw generator do not quite fit them; a cumulative average over a few batches does.
    """
    g = torch.Generator().manual_seed(seed)
    device = next(gen.parameters()).device
    bns = [m for m in gen.modules() if isinstance(m, nn.BatchNorm3d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    gen.train()
    for _ in range(batches):
        gen(torch.randn(batch_size, z_dim, generator=g).to(device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    gen.eval()


# Config fields a resumed run must share with the saved one (the rest may change).
RESUME_KEYS = ("resolution", "z_dim", "g_widths", "d_widths", "d_norm", "loss", "batch_size", "recon_weight")


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda handle: torch.save(obj, handle))


def split_by_id(names: list[str], n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): a seeded choice of whole chair ids, never single files."""
    ids = sorted({n.rsplit("_", 1)[0] for n in names})
    rng = np.random.default_rng(seed)
    val_ids = set(rng.choice(ids, size=min(n_val, len(ids) // 5), replace=False)) if n_val else set()
    is_val = np.array([n.rsplit("_", 1)[0] in val_ids for n in names])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@torch.no_grad()
def monitor(gen: Generator, z: torch.Tensor, val: np.ndarray) -> dict:
    """Cheap quality figures: coverage-IoU of held-out chairs, validity, occupancy."""
    gen.eval()
    device = next(gen.parameters()).device
    samples = torch.cat([gen(c.to(device)).cpu() for c in z.split(50)])[:, 0].numpy() >= 0.5  # (n, R, R, R)
    flat = samples.reshape(len(samples), -1).astype(np.float32)
    ref = val.reshape(len(val), -1).astype(np.float32)
    inter = ref @ flat.T  # (n_val, n)
    union = ref.sum(1)[:, None] + flat.sum(1)[None] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    pieces = [meshing.count_components(s) for s in samples]
    return {
        "coverage_iou": float(iou.max(1).mean()),
        "one_piece": float(np.mean([p == 1 for p in pieces])),
        "occupancy": float(samples.mean()),
        "empty": float(np.mean([p == 0 for p in pieces])),
    }


@torch.no_grad()
def one_pass_iou(encoder: ShapeEncoder, generator: Generator, grids: np.ndarray) -> np.ndarray:
    """IoU of G(E(x)) >= 0.5 with each grid x (n, R, R, R) -> (n,), both in eval mode."""
    was_training = encoder.training, generator.training
    encoder.eval(), generator.eval()
    device = next(generator.parameters()).device
    x = torch.from_numpy(grids.astype(np.float32))[:, None]
    made = torch.cat([generator(encoder(c.to(device))).cpu() for c in x.split(64)])[:, 0].numpy() >= 0.5
    encoder.train(was_training[0]), generator.train(was_training[1])
    return chair_ious(made, grids > 0)


def keep_best_one_pass(clock, encoder: ShapeEncoder, generator: Generator, val: np.ndarray, best: float,
                       save) -> float:
    """The held-out check of an encoder-decoder run (`train autoencoder`, `train shape-encoder`):
    the one-pass IoU of the held-out chairs `val`, logged with the step; `save()` when it beats
    `best`. Returns the best so far. The clock resumes after it: evaluating is not training time."""
    iou = float(one_pass_iou(encoder, generator, val).mean())
    tqdm.write(f"step {clock.step} ({clock.elapsed / 60:.1f} min): loss {clock.running:.4f}, "
               f"held-out one-pass IoU {iou:.3f}")
    if iou > best:
        best = iou
        save()
    clock.resume()
    return best


def save_sheet(gen: Generator, z: torch.Tensor, path: Path) -> None:
    gen.eval()
    with torch.no_grad():
        vox = gen(z.to(next(gen.parameters()).device))[:, 0].cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    contact_sheet(render_grids(vox, size=96, clean=False, points=20_000), cols=8).save(tmp)
    os.replace(tmp, path)


class CsvLog:
    """Append rows to a CSV file, writing the header once."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(columns)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])


# ----------------------------------------------------------------------------- training
def gan_step(gen: nn.Module, pair: nn.Module, opt_g, opt_d, real: torch.Tensor, z: torch.Tensor,
             loss: str = "bce", d_acc_max: float = 0.8, world: int = 1, freeze_d: bool = True, *,
             encoder: ShapeEncoder | None = None, opt_e=None,
             recon_weight: float = 0.0, pos_weight: float = 3.0, code_noise: float = 0.0,
             rng: torch.Generator | None = None):
    """One D step on a real and a fake batch, then one G step; -> (d_loss, g_loss, acc, updated D, recon).

    `gen` and `pair` may be DDP-wrapped (plain GAN only). D is skipped while its accuracy
    (averaged over processes, so that all ranks agree) is above `d_acc_max`. With `encoder`,
    G decodes E(real) in the same forward as z (one set of BatchNorm statistics) and the G step adds `recon_weight` * BCE(G(E(x)), x), which E learns too.
    `freeze_d=False` is the naive variant kept for the throughput benchmark: D's weight
    gradients are computed in the G step.
    """
    d_loss_fn, g_loss_fn = LOSSES[loss]
    disc = pair.module.disc if isinstance(pair, nn.parallel.DistributedDataParallel) else pair.disc
    recon = torch.tensor(float("nan"))
    if encoder is not None:
        codes = encoder(real)  # (B, z_dim) on the shell
        if code_noise > 0:
            noise = torch.randn(codes.shape, generator=rng).to(codes.device)
            codes = to_radius(codes + code_noise * noise, codes.shape[1] ** 0.5)
        logits = gen.logits(torch.cat([z, codes]))  # (2B, 1, R, R, R)
        fake, recon_logits = torch.sigmoid(logits[:len(z)]), logits[len(z):]
    else:
        fake = gen(z)  # (B, 1, R, R, R) probabilities
    # ---- D step: real vs detached fake
    real_logit, fake_logit = pair(real, fake.detach())
    d_loss = d_loss_fn(real_logit, fake_logit)
    acc = all_mean(d_accuracy(real_logit, fake_logit).detach(), world)
    update_d = bool(acc <= d_acc_max)
    opt_d.zero_grad(set_to_none=True)
    if update_d:
        d_loss.backward()
        opt_d.step()
    # ---- G step through D; freezing D skips its weight gradients (1.2-1.7x faster here)
    disc.requires_grad_(not freeze_d)
    g_loss = g_loss_fn(disc(fake))
    total = g_loss
    if encoder is not None:
        recon = reconstruction_loss(recon_logits, real, pos_weight)
        total = g_loss + recon_weight * recon
        opt_e.zero_grad(set_to_none=True)
    opt_g.zero_grad(set_to_none=True)
    total.backward()
    opt_g.step()
    if encoder is not None:
        opt_e.step()
    disc.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)  # drop the G step's D gradients (naive variant)
    return d_loss.detach(), g_loss.detach(), acc, update_d, recon.detach()


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    cfg.validate()
    rank, world, device = setup_distributed(cfg.device)
    main_proc = rank == 0
    out, state_path, state = start_run(cfg, resume, RESUME_KEYS, "config.json" if main_proc else None)

    # Data: (N, R, R, R) uint8 in memory; held-out chairs by id for the monitor.
    chairs, names = load_chairs(cfg.data, "train", cfg.resolution, cfg.poses)
    train_idx, val_idx = split_by_id(names, cfg.val_chairs, cfg.seed)
    data = torch.from_numpy(chairs[train_idx])  # (N, R, R, R) uint8
    val = chairs[val_idx]
    if main_proc:
        log.info("data: %d training grids, %d held out (%d ids) from %s", len(data), len(val_idx),
                 len({names[i].rsplit('_', 1)[0] for i in val_idx}), cfg.data)
    if len(data) < cfg.batch_size:
        raise ConfigError(f"only {len(data)} training grids; batch_size {cfg.batch_size} needs more")

    joint = cfg.recon_weight > 0
    if world > 1 and joint:
        raise ConfigError("the joint shape encoder runs in one process: drop torchrun, or set --recon-weight 0")
    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config()
    gen, disc = Generator(mcfg), Discriminator(mcfg)
    encoder = ShapeEncoder(mcfg) if joint else None
    ema = copy.deepcopy(gen).requires_grad_(False).to(device) if cfg.ema_decay > 0 else None
    # E follows G's EMA with an EMA of its own, so the shipped pair was averaged alike.
    ema_e = copy.deepcopy(encoder).requires_grad_(False).to(device) if joint and ema is not None else None
    to_channels_last(gen.to(device)), to_channels_last(disc.to(device))
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))
    opt_e = None
    if joint:
        to_channels_last(encoder.to(device))
        opt_e = torch.optim.Adam(encoder.parameters(), lr=cfg.e_lr, betas=(cfg.beta1, cfg.beta2))
    step, elapsed, best = 0, 0.0, {"coverage_iou": -1.0, "step": 0}
    # Each rank draws its own noise and batches; rank 0's stream equals a 1-process run.
    rng = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    if cfg.init and state is None:
        load_init(cfg, gen, disc, ema, encoder, ema_e)
        if main_proc:
            log.info("fine-tuning from %s", cfg.init)
    if state is not None:
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        if joint:
            encoder.load_state_dict(state["encoder"])
            opt_e.load_state_dict(state["opt_e"])
            if ema_e is not None and state.get("ema_encoder") is not None:
                ema_e.load_state_dict(state["ema_encoder"])
        step, elapsed = state["step"], state["elapsed"]
        best = state.get("best") or best
        rng.set_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        if main_proc:
            log.info("resumed %s at step %d (%.1f min trained)", out, step, elapsed / 60)

    gen_ddp: nn.Module = gen
    pair: nn.Module = DiscriminatorPair(disc)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        gen_ddp = nn.parallel.DistributedDataParallel(gen, device_ids=ids)
        pair = nn.parallel.DistributedDataParallel(pair, device_ids=ids)

    fixed_z = torch.randn(100, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 99))
    metrics_log = CsvLog(out / "metrics.csv", ["step", "minutes", "d_loss", "g_loss", "d_acc", "d_updates", "recon",
                                               "lr_scale"]) if main_proc else None
    eval_log = CsvLog(out / "eval.csv", ["step", "minutes", "model", "coverage_iou", "one_piece", "occupancy", "empty",
                                         "encoder_iou"]) if main_proc else None

    def sample_model() -> Generator:
        return ema if ema is not None and step > cfg.ema_start else gen

    def write_state() -> None:
        rngs = None
        if world > 1:  # nccl gathers device tensors only; gloo is happy either way
            mine = rng.get_state().to(device)
            rngs = [torch.empty_like(mine) for _ in range(world)]
            dist.all_gather(rngs, mine)
            rngs = [r.cpu() for r in rngs]
        if main_proc:
            atomic_torch_save({
                "config": asdict(cfg), "step": step, "elapsed": elapsed,
                "generator": gen.state_dict(), "discriminator": disc.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "encoder": encoder.state_dict() if joint else None,
                "ema_encoder": ema_e.state_dict() if ema_e is not None else None,
                "opt_e": opt_e.state_dict() if joint else None,
                "rng": rngs or [rng.get_state()], "best": best,
                "perm": perm, "pos": pos,
            }, state_path)

    if state is not None and world == 1 and len(state.get("perm", [])) == len(data):
        perm, pos = state["perm"], state["pos"]  # the exact batch order continues
    else:
        perm, pos = torch.randperm(len(data), generator=rng), 0
    sums = {"d_loss": 0.0, "g_loss": 0.0, "d_acc": 0.0, "d_updates": 0.0, "recon": 0.0, "n": 0}
    t_last = time.perf_counter()
    last_ckpt = last_sheet = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, disable=not main_proc, desc="gan", dynamic_ncols=True, mininterval=2)
    budget = 60 * cfg.max_minutes if cfg.max_minutes > 0 else float("inf")
    while step < cfg.steps and elapsed < budget:
        # ---- batch: this rank's slice of a shared-size draw, random mirror along axis 1
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(data), generator=rng), 0
        real = data[perm[pos:pos + cfg.batch_size]].float()  # (B, R, R, R)
        pos += cfg.batch_size
        if cfg.mirror:
            flip = torch.rand(len(real), generator=rng) < 0.5
            real[flip] = real[flip].flip(2)  # (B, R, R, R): dim 2 is voxel axis 1
        real = real[:, None].to(device).contiguous(memory_format=torch.channels_last_3d)  # (B, 1, R, R, R)
        z = torch.randn(cfg.batch_size, cfg.z_dim, generator=rng).to(device)  # CPU stream: same on any device
        scale = lr_factor(cfg, step, elapsed)
        for opt, lr in ((opt_g, cfg.g_lr), (opt_d, cfg.d_lr), (opt_e, cfg.e_lr)):
            if opt is None:
                continue
            for group in opt.param_groups:
                group["lr"] = lr * scale

        gen_ddp.train(), pair.train()
        if joint:
            encoder.train()
        d_loss, g_loss, acc, update_d, recon = gan_step(
            gen_ddp, pair, opt_g, opt_d, real, z, cfg.loss, cfg.d_acc_max, world, encoder=encoder, opt_e=opt_e,
            recon_weight=cfg.recon_weight, pos_weight=cfg.pos_weight, code_noise=cfg.code_noise, rng=rng)
        step += 1
        if ema is not None:
            decay = 0.0 if step <= cfg.ema_start else cfg.ema_decay
            ema_update(ema, gen, decay)
            if ema_e is not None:
                ema_update(ema_e, encoder, decay)

        # ---- bookkeeping
        now = time.perf_counter()
        elapsed += now - t_last
        t_last = now
        for k, v in (("d_loss", d_loss.item()), ("g_loss", g_loss.item()), ("d_acc", acc.item()),
                     ("d_updates", float(update_d)), ("recon", recon.item() if joint else 0.0)):
            sums[k] += v
        sums["n"] += 1
        bar.update(1)
        last = step == cfg.steps or elapsed >= budget
        if step % cfg.log_every == 0 or last:
            row = {k: round(sums[k] / sums["n"], 4) for k in ("d_loss", "g_loss", "d_acc", "d_updates", "recon")}
            if not joint:
                row.pop("recon")
            if main_proc:
                metrics_log.write({"step": step, "minutes": round(elapsed / 60, 2), "lr_scale": round(scale, 3), **row})
                bar.set_postfix(D=row["d_loss"], G=row["g_loss"], acc=row["d_acc"], upd=row["d_updates"])
            sums = dict.fromkeys(sums, 0.0)
        if main_proc and (step % cfg.eval_every == 0 or last) and len(val):
            model = sample_model()
            if model is ema:
                recalibrate_batchnorm(ema, cfg.z_dim)
            figures = monitor(model, fixed_z, val)
            if joint:
                figures["encoder_iou"] = float(one_pass_iou(ema_e if model is ema else encoder, model, val).mean())
            eval_log.write({"step": step, "minutes": round(elapsed / 60, 2),
                            "model": "ema" if model is ema else "raw", **{k: round(v, 4) for k, v in figures.items()}})
            tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
            if cfg.keep_best and figures["coverage_iou"] > best["coverage_iou"]:
                best = {"coverage_iou": figures["coverage_iou"], "step": step, "model": "ema" if model is ema else "raw"}
                model_e = (ema_e if model is ema else encoder) if joint else None
                # the monitor already recalibrated an EMA generator's BatchNorm statistics
                export_pipeline(cfg, model.state_dict(), disc.state_dict(), out / "best", recalibrate=False,
                                e_state=model_e.state_dict() if joint else None)
                (out / "best" / "best.json").write_text(json.dumps({**best, **figures}, indent=2))
        if main_proc and (now - last_sheet >= cfg.sample_every_min * 60 or last):
            save_sheet(sample_model(), fixed_z[:cfg.sheet_samples], out / "samples" / f"step_{step:06d}.png")
            last_sheet = time.perf_counter()
        # Every rank must join the all_gather in write_state: decide on rank 0's clock.
        due = torch.tensor(float(now - last_ckpt >= cfg.ckpt_every_min * 60 or last), device=device)
        if world > 1:
            dist.broadcast(due, 0)
        if due.item():
            write_state()
            last_ckpt = time.perf_counter()
    bar.close()

    final = out / "checkpoint"
    if main_proc:
        shipped = ema if ema is not None and step > cfg.ema_start else gen
        shipped_e = (ema_e if shipped is ema else encoder) if joint else None
        export_pipeline(cfg, shipped.state_dict(), disc.state_dict(), final, recalibrate=shipped is ema,
                        e_state=shipped_e.state_dict() if joint else None)
        log.info("finished %d steps in %.1f min; pipeline written to %s", step, elapsed / 60, final)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def load_init(cfg: TrainConfig, gen: Generator, disc: Discriminator, ema: Generator | None,
              encoder: ShapeEncoder | None, ema_e: ShapeEncoder | None) -> None:
    """Weights of the pipeline folder `cfg.init` into the fresh models (fine-tuning): its generator
    into G and its EMA, its discriminator, and its shape encoder (if it has one) into E."""
    pipe = ChairPipeline.from_pretrained(cfg.init)
    mine, theirs = cfg.model_config(), pipe.generator.config
    for key in ("resolution", "z_dim", "g_widths", "d_widths", "d_norm"):
        if getattr(mine, key) != getattr(theirs, key):
            raise ConfigError(f"--init {cfg.init} has {key}={getattr(theirs, key)!r}, this run {getattr(mine, key)!r}")
    if pipe.discriminator is None:
        raise CheckpointError(f"--init {cfg.init} has no discriminator to continue from")
    for model in (gen, ema):
        if model is not None:
            model.load_state_dict(pipe.generator.state_dict())
    disc.load_state_dict(pipe.discriminator.state_dict())
    if encoder is not None and pipe.shape_encoder is not None:
        for model in (encoder, ema_e):
            if model is not None:
                model.load_state_dict(pipe.shape_encoder.state_dict())


def export_pipeline(cfg: TrainConfig, g_state: dict, d_state: dict, folder: Path, recalibrate: bool,
                    e_state: dict | None = None) -> Path:
    """Write a ChairPipeline folder (generator + discriminator [+ shape encoder]) from training weights.

    `recalibrate` recomputes the generator's BatchNorm statistics (needed for EMA weights).
    """
    mcfg = cfg.model_config()

    def on_cpu(module: nn.Module, state: dict) -> nn.Module:
        module.load_state_dict({k: v.cpu() for k, v in state.items()})
        return module

    g_out, d_out = on_cpu(Generator(mcfg), g_state), on_cpu(Discriminator(mcfg), d_state)
    e_out = on_cpu(ShapeEncoder(mcfg), e_state) if e_state is not None else None
    if recalibrate:
        recalibrate_batchnorm(g_out, cfg.z_dim)
    ChairPipeline(g_out, d_out, shape_encoder=e_out).save_pretrained(folder)
    (folder / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    return folder


def export_run(run: str | Path, folder: str | Path) -> Path:
    """A run's latest state.pt -> pipeline folder (EMA generator once the EMA has started)."""
    state_path = Path(run) / "state.pt"
    if not state_path.is_file():
        raise CheckpointError(f"{state_path} does not exist: not a training run folder")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    known = TrainConfig.__dataclass_fields__  # runs of earlier versions may carry retired settings
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items() if k in known})
    use_ema = state.get("ema") is not None and state["step"] > cfg.ema_start
    g_state = state["ema"] if use_ema else state["generator"]
    e_state = (state.get("ema_encoder") if use_ema else None) or state.get("encoder")
    export_pipeline(cfg, g_state, state["discriminator"], Path(folder), recalibrate=use_ema, e_state=e_state)
    log.info("exported step %d of %s (%s generator) to %s", state["step"], run, "EMA" if use_ema else "raw", folder)
    return Path(folder)


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    """One flag per TrainConfig field (`--g-widths 256 128 64`, `--no-mirror`, ...)."""
    add_run_arguments(parser, TrainConfig, list_fields=("d_widths",))
    parser.add_argument("--export", metavar="FOLDER",
                        help="write the run's latest state (in --out) as a pipeline folder and exit")


def config_from_args(args) -> TrainConfig:
    values = config_values(args, TrainConfig)
    for key in ("g_widths", "poses"):
        values[key] = tuple(values[key])
    if values["d_widths"] is not None:
        values["d_widths"] = tuple(values["d_widths"])
    return TrainConfig(**values)


def main(args) -> int:
    if args.export:
        export_run(args.out, args.export)
        return 0
    cfg = config_from_args(args)
    if args.dry_run:
        cfg.model_config()  # surface config errors in a dry run too
        print(json.dumps(asdict(cfg), indent=2))
        return 0
    start = time.perf_counter()
    train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"wall time {(time.perf_counter() - start) / 60:.1f} min -> {Path(cfg.out) / 'checkpoint'}")
    return 0
