"""`python -m train vaegan`: train the 3D-VAE-GAN image encoder E on rendered photos.

    python -m train vaegan --data ../shared/data/modelnet10_chair_vol30 --generator checkpoints/chair32 \\
        --out runs/vaegan32 --renders runs/photos

The objective is the paper's 3D-VAE-GAN loss for E (Wu et al. 2016, section 3.2), per photo y
of chair x, with z ~ q(z | y) = N(mu(y), diag sigma^2(y)) by the reparameterisation trick:

    L = recon(G(z), x) + kl_weight * KL(q(z | y) || N(0, I)) + adv_weight * -log D(G(z))

- recon: binary cross-entropy of G's logits against the true voxels, summed over the grid,
  with positive voxels weighted by `pos_weight` (2). Chairs fill ~3% of the grid, and a
  voxel's IoU-optimal cut on a calibrated probability q is about J / (1 + J) for an IoU J
  (the F1 / Jaccard threshold relation), ~1/3 at J = 0.5: weighting positives by 2 moves the
  BCE optimum so that the 0.5 cut of `pipe.generate` is that cut.
- KL: `vaegan.models.kl_divergence` (summed over z, mean over the batch); with the sum over
  voxels above, kl_weight = 1 is the evidence lower bound.
- adversarial: the non-saturating GAN loss of D on G(z), the paper's L_3D-GAN term for E.
  It keeps E's latents where G makes chairs D believes. It is computed every `adv_every`
  steps with its weight scaled by that factor (same expected gradient; D's forward and
  backward cost about 40% of a step with the 256-128-64 generator, measured).

Generated chairs (`--generated FOLDER`, from `python -m train.photos --generator CKPT --count N`,
off by default): a share (`generated_fraction`) of every batch is renders of the generator's own
samples, whose code z is known, and for those the loss adds latent_weight * ||mu(y) - z||^2
(the encoder-on-samples of iGAN, Zhu et al. 2016). Tried because with the paper's objective
alone, through the frozen 32^3 generator, E stalls at held-out IoU ~0.22 after ~1000 steps,
with the same IoU (0.23) on its own training chairs: it underfits. Measured (model card of
chair32, "Photo -> chair: what was tried"): it did not help. Even with only the latent term,
||mu - z||^2 stayed near 217 for 200-d codes (the prior's variance is 200): the pictures hardly
determine z, which suggests most directions of this generator's z change its chairs too little
to be seen in a photo.

Start (`--init-encoder DIR`, `--mu-radius R`): E starts from DIR's encoder (e.g. the known-z
pretraining of `python -m train known-z --out DIR`) or fresh, with its posterior mean put on
the sphere of radius R (`ModelConfig.e_mu_radius`; sqrt(z_dim) is where N(0, I) samples lie).
The shipped chair32 encoder was made this way (its model card, "Photo -> chair"): from a
random start this objective stalls as described above.

Modes (`--mode`): "frozen" (default) trains E alone against the GAN's generator and
discriminator, kept fixed in eval mode: the paper's "separately trained" variant, which did
better on IKEA in the paper, keeps the shipped generator exactly as released (samples and
sliders stay the same), costs the least per step, and the result is just an `encoder/` to put
beside the generator. "joint" also fine-tunes G (recon + adversarial) and D (real vs G(z)
and G(E(y))), for comparison; its checkpoint carries the changed G and D.

Photos: `--renders` (default `<out>/photos`) is made by `train.photos.build` from `--data` when
absent, or `--data` may itself be a renders folder. Chairs are held out for the monitor by
id (`val_chairs`), never single renders; random left/right mirroring of the photo together
with the voxels (array axis 1) doubles the chairs (a mirrored photo from azimuth a is the
mirrored chair seen from -a, and azimuths are uniform).

A run folder: config.json, state.pt (everything --resume needs, atomic), metrics.csv,
eval.csv (held-out IoU / AP, and IKEA AP as shipped and calibrated when --ikea is given;
selection never looks at IKEA), best/ (the pipeline with the best held-out IoU) and
checkpoint/ (the final pipeline). Both carry train_config.json, from which eval-photo
recovers the held-out chairs for its calibration.
"""

import copy
import dataclasses
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vaegan.config import ModelConfig
from vaegan.errors import CheckpointError, ConfigError
from vaegan.models import Discriminator, Generator, ImageEncoder, kl_divergence, to_channels_last
from vaegan.pipeline import ChairPipeline

from . import photos as photo_data
from .common import add_config_arguments, config_values
from .gan import CsvLog, atomic_torch_save, d_accuracy, load_resume_state, recalibrate_batchnorm, split_by_id

log = logging.getLogger(__name__)
MODES = ("frozen", "joint")
# Draws behind the monitor's predictive figures (an encoder started from one with
# e_predictive_std): fewer than reconstruct's 256, so a check stays a few seconds; the
# figures are for comparing steps, `eval-photo` gives the ones to quote.
MONITOR_SAMPLES = 32


@dataclass
class VaeganConfig:
    data: str = ""  # ModelNet chair folder (photos are rendered from it) or a renders folder
    generator: str = "checkpoints/chair32"  # pipeline folder with generator/ (and discriminator/)
    out: str = "runs/vaegan32"  # run folder
    renders: str = ""  # renders folder, made when absent; "" = <out>/photos
    views: int = 24  # renders per training chair
    test_views: int = 8  # renders per ModelNet test chair (held-out figure of eval-photo)
    render_workers: int = 2  # processes that render
    # --- objective
    mode: str = "frozen"  # "frozen" (G, D fixed: the paper's separately trained) or "joint"
    kl_weight: float = 1.0
    adv_weight: float = 10.0
    adv_every: int = 2  # adversarial term every N steps, weighted N x
    pos_weight: float = 2.0  # BCE weight of occupied voxels
    recon_temperature: float = 1.0  # BCE on G's logits / T: T > 1 softens the saturated logits of a GAN generator
    recon_weight: float = 1.0  # weight of the reconstruction term
    generated: str = ""  # renders of generated chairs with their z (`python -m train.photos --generator`)
    generated_fraction: float = 0.5  # share of each batch drawn from --generated
    latent_weight: float = 30.0  # weight of ||mu(y) - z||^2 on generated chairs, whose z is known
    # --- encoder
    init_encoder: str = ""  # start from this pipeline folder's encoder/ (e.g. python -m train known-z --out)
    mu_radius: float = 0.0  # a fresh encoder's e_mu_radius: 14.142 = sqrt(200) puts mu on the prior's shell
    # --- optimiser
    batch_size: int = 32
    lr: float = 3e-4  # encoder, Adam
    beta1: float = 0.9
    beta2: float = 0.999
    g_lr: float = 1e-4  # joint mode: generator
    d_lr: float = 1e-5  # joint mode: discriminator (the paper's D rate)
    d_acc_max: float = 0.8  # joint mode: update D only while its batch accuracy is <= this
    steps: int = 6000
    max_minutes: float = 100.0  # stop after this much training time (0 = no limit)
    lr_decay_start: float = 0.5  # fraction of the run (steps or minutes, whichever is further) ...
    lr_decay_final: float = 0.1  # ... after which the rates decay linearly to this fraction
    # --- data
    mirror: bool = True
    val_chairs: int = 48  # training chairs held out (by id) for the monitor and best/
    val_images: int = 384  # renders of those chairs scored at each eval
    ikea: str = ""  # optional IKEA photo folder scored at each eval (never used for selection)
    # --- bookkeeping
    seed: int = 0
    log_every: int = 50
    eval_every: int = 500
    ckpt_every_min: float = 5.0
    threads: int = 0  # torch threads; 0 keeps torch's default (all cores)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.data:
            raise ConfigError("--data is required: a ModelNet chair folder or a renders folder")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("steps must be >= 1 and batch_size >= 2 (BatchNorm needs a batch)")
        if self.adv_every < 1 or min(self.kl_weight, self.adv_weight, self.pos_weight, self.latent_weight, self.recon_weight) < 0:
            raise ConfigError("adv_every must be >= 1 and the loss weights >= 0")
        if self.generated and not 0 < self.generated_fraction < 1:
            raise ConfigError("--generated-fraction must be between 0 and 1 (exclusive)")
        if not self.recon_temperature > 0:
            raise ConfigError("--recon-temperature must be > 0")
        if self.mu_radius < 0:
            raise ConfigError("--mu-radius must be >= 0")
        if self.generated and self.mode == "joint":
            raise ConfigError("--generated needs --mode frozen: its chairs come from the generator being trained")

    def renders_folder(self) -> str:
        if photo_data.is_photo_folder(self.data):
            return self.data
        return self.renders or str(Path(self.out) / "photos")


RESUME_KEYS = ("mode", "batch_size", "generator", "kl_weight", "adv_weight", "adv_every", "pos_weight",
               "generated", "generated_fraction", "latent_weight", "recon_weight", "recon_temperature", "init_encoder", "mu_radius",
               "seed")


# ----------------------------------------------------------------------------- helpers
def lr_factor(cfg: VaeganConfig, step: int, elapsed: float) -> float:
    """Linear decay after lr_decay_start of the run; progress = the further of steps and time."""
    progress = step / cfg.steps
    if cfg.max_minutes > 0:
        progress = max(progress, elapsed / (60 * cfg.max_minutes))
    if progress < cfg.lr_decay_start:
        return 1.0
    frac = min(1.0, (progress - cfg.lr_decay_start) / max(1e-9, 1 - cfg.lr_decay_start))
    return 1.0 - (1.0 - cfg.lr_decay_final) * frac


def recon_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float, temperature: float = 1.0) -> torch.Tensor:
    """Weighted BCE of logits / temperature (B, 1, R, R, R) against {0, 1} targets: summed per
    chair, mean over B."""
    weight = torch.tensor(pos_weight, dtype=logits.dtype)
    per_voxel = F.binary_cross_entropy_with_logits(logits / temperature, target, pos_weight=weight, reduction="none")
    return per_voxel.flatten(1).sum(1).mean()


def latent_loss(mu: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Squared distance of posterior means (B, z_dim) to the true codes (B, z_dim): summed over z,
    mean over the batch."""
    return (mu - z).square().sum(1).mean()


class Cycler:
    """Endless shuffled passes over `indices`, `take(n)` at a time; `state()` resumes it exactly."""

    def __init__(self, indices: np.ndarray):
        self.indices = torch.from_numpy(np.asarray(indices))
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def take(self, n: int, rng: torch.Generator) -> np.ndarray:
        if self.perm is None or self.pos + n > len(self.perm):
            self.perm, self.pos = self.indices[torch.randperm(len(self.indices), generator=rng)], 0
        self.pos += n
        return self.perm[self.pos - n:self.pos].numpy()

    def state(self) -> dict:
        return {"perm": self.perm, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.perm, self.pos = state["perm"], state["pos"]


def load_generated(folder: str, mcfg: ModelConfig):
    """The renders of generated chairs (train.photos --generator), checked against the model."""
    generated = photo_data.PhotoSet(folder, "train")
    if generated.latents is None:
        raise ConfigError(f"{folder} holds renders without latent codes: make it with "
                          "python -m train.photos --generator CKPT --count N")
    if (generated.image_size, generated.resolution, generated.latents.shape[1]) != \
            (mcfg.image_size, mcfg.resolution, mcfg.z_dim):
        raise ConfigError(f"{folder} has {generated.image_size} px / {generated.resolution}^3 renders with "
                          f"{generated.latents.shape[1]}-d codes; this generator needs {mcfg.image_size} px / "
                          f"{mcfg.resolution}^3 / {mcfg.z_dim}-d")
    return generated


def encoder_of(folder: str) -> ImageEncoder:
    """The encoder of the pipeline at `folder` (an --init-encoder), or a CheckpointError."""
    encoder = ChairPipeline.from_pretrained(folder).encoder
    if encoder is None:
        raise CheckpointError(f"--init-encoder {folder} has no encoder/ folder")
    return encoder


def initial_encoder(cfg: VaeganConfig, mcfg: ModelConfig) -> ImageEncoder:
    """A fresh encoder (e_mu_radius = --mu-radius) or, with --init-encoder, a trainable copy of that
    pipeline's encoder, checked against the generator it will feed."""
    if not cfg.init_encoder:
        return ImageEncoder(dataclasses.replace(mcfg, e_mu_radius=cfg.mu_radius))
    start = encoder_of(cfg.init_encoder)
    ecfg = start.config
    if ecfg.e_bank_size:
        raise ConfigError(f"--init-encoder {cfg.init_encoder} has a bank encoder (python -m train bank-encoder); "
                          "this objective trains a Gaussian one: start from a Gaussian encoder or fresh")
    if (ecfg.z_dim, ecfg.image_size) != (mcfg.z_dim, mcfg.image_size):
        raise ConfigError(f"--init-encoder {cfg.init_encoder} takes {ecfg.image_size} px to {ecfg.z_dim}-d codes; "
                          f"the generator needs {mcfg.image_size} px and {mcfg.z_dim}-d")
    if cfg.mu_radius and cfg.mu_radius != ecfg.e_mu_radius:
        raise ConfigError(f"--mu-radius {cfg.mu_radius} contradicts --init-encoder's e_mu_radius {ecfg.e_mu_radius}")
    return start.train().requires_grad_(True)


def held_out_split(photos, val_chairs: int, val_images: int, seed: int):
    """Renders split by chair id: (training chairs, val chairs, training render indices, up to
    `val_images` evenly spaced render indices of the val chairs; 0 = all)."""
    train_chairs, val = split_by_id(photos.names, val_chairs, seed)
    is_val = np.isin(photos.chair, val)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if val_images and len(val_idx) > val_images:
        val_idx = val_idx[np.linspace(0, len(val_idx) - 1, val_images).round().astype(int)]
    return train_chairs, val, train_idx, val_idx


def batch(photos, index: np.ndarray, flip: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Image indices -> (float pictures (B, 3, S, S) in [0, 1], voxel targets (B, 1, R, R, R))."""
    order = np.sort(index)  # memory-mapped reads in file order
    x = photos.pictures(order)
    y = torch.from_numpy(photos.voxels[photos.chair[order]]).float()  # (B, R, R, R)
    if flip is not None and flip.any():
        x[flip] = x[flip].flip(3)  # picture left/right
        y[flip] = y[flip].flip(2)  # voxel axis 1 (left/right) is dim 2 of (B, R, R, R)
    return x, y[:, None].contiguous(memory_format=torch.channels_last_3d)


@torch.no_grad()
def monitor(encoder: ImageEncoder, gen: Generator, photos, val_idx: np.ndarray, ikea=None) -> dict:
    """Held-out IoU@0.5 / AP x100 on renders of held-out chairs, and on IKEA photos if given
    (as shipped and with the temperature fitted on those held-out renders, see train.eval_photo)."""
    from .eval_photo import calibrate, evaluate_ikea, evaluate_renders

    encoder.eval(), gen.eval()
    pipe = ChairPipeline(gen, None, encoder)
    r = evaluate_renders(pipe, photos, None, indices=val_idx, samples=MONITOR_SAMPLES)
    out = {"val_iou": r["iou"], "val_ap": r["ap"]}
    if ikea is not None:
        items, mean = ikea
        temperature = calibrate(pipe, photos, val_idx)
        k = evaluate_ikea(pipe, items, mean, temperature=temperature, samples=MONITOR_SAMPLES)
        out.update(ikea_ap=k["ap"], ikea_ap_cal=k.get("ap_cal", k["ap"]), temperature=temperature,
                   ikea_iou=k["iou"], ikea_mean_chair_ap=k["mean_chair_ap"])
    return out


def detached_copy(model):
    """A new model of the same class and config holding a CPU copy of `model`'s weights, so that
    saving it never sees channels-last layouts, autograd state or later training steps."""
    fresh = type(model)(model.config)
    fresh.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return fresh


def save_pipeline(gen: Generator, disc: Discriminator | None, encoder: ImageEncoder, folder: Path,
                  cfg: VaeganConfig, figures: dict | None = None) -> None:
    """Write a complete pipeline folder atomically (a temp folder renamed into place)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    parts = {name: detached_copy(model) for name, model in (("generator", gen), ("discriminator", disc),
                                                           ("encoder", encoder)) if model is not None}
    ChairPipeline(**parts).save_pretrained(tmp)
    (tmp / "train_config.json").write_text(json.dumps({**asdict(cfg), "figures": figures or {}}, indent=2))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- training
def train(cfg: VaeganConfig, resume: bool = False) -> Path:
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # sparse voxels: denormals make CPU kernels crawl
    out = Path(cfg.out)
    state_path = out / "state.pt"
    state = load_resume_state(state_path, cfg, RESUME_KEYS) if resume else None

    # The GAN whose generator turns E's latents into chairs.
    source = ChairPipeline.from_pretrained(cfg.generator)
    gen, disc = source.generator, source.discriminator
    if disc is None and (cfg.adv_weight > 0 or cfg.mode == "joint"):
        raise CheckpointError(f"{cfg.generator} has no discriminator/: the adversarial term and --mode joint "
                              "need it (or pass --adv-weight 0)")
    mcfg: ModelConfig = gen.config
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    # Photos: render once (minutes), then memory-map.
    folder = cfg.renders_folder()
    if folder != cfg.data:  # made here, or reused when it was made with these settings
        photo_data.ensure(photo_data.PhotoSetConfig(
            data=cfg.data, out=folder, image_size=mcfg.image_size, resolution=mcfg.resolution, views=cfg.views,
            test_views=cfg.test_views, seed=cfg.seed, workers=cfg.render_workers))
    photos = photo_data.PhotoSet(folder, "train")
    if photos.image_size != mcfg.image_size or photos.resolution != mcfg.resolution:
        raise ConfigError(f"renders in {folder} are {photos.image_size} px / {photos.resolution}^3, the generator "
                          f"needs {mcfg.image_size} px / {mcfg.resolution}^3: pass another --renders folder")
    train_chairs, val_chairs, train_idx, val_idx = held_out_split(photos, cfg.val_chairs, cfg.val_images, cfg.seed)
    if len(train_idx) < cfg.batch_size:
        raise ConfigError(f"only {len(train_idx)} training renders; batch_size {cfg.batch_size} needs more")
    log.info("photos: %d training renders of %d chairs, %d held-out renders of %d chairs, from %s",
             len(train_idx), len(train_chairs), len(val_idx), len(val_chairs), folder)
    generated = load_generated(cfg.generated, mcfg) if cfg.generated else None
    n_gen = round(cfg.batch_size * cfg.generated_fraction) if generated is not None else 0
    n_real = cfg.batch_size - n_gen
    if generated is not None:
        log.info("generated: %d renders of %d chairs with known z, %d of each batch of %d", len(generated),
                 len(generated.names), n_gen, cfg.batch_size)
    ikea = None
    if cfg.ikea:
        from .eval_photo import load_ikea, mean_chair

        mean = mean_chair(photos.voxels[train_chairs])
        ikea = (load_ikea(cfg.ikea, mean), mean)

    # Models.
    torch.manual_seed(cfg.seed)
    encoder = initial_encoder(cfg, mcfg)
    joint = cfg.mode == "joint"
    gen.requires_grad_(joint)
    if disc is not None:
        disc.requires_grad_(joint)
    to_channels_last(gen)
    if disc is not None:
        to_channels_last(disc)
    opt_e = torch.optim.Adam(encoder.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.g_lr, betas=(0.5, 0.999)) if joint else None
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999)) if joint else None
    rng = torch.Generator().manual_seed(cfg.seed)
    step, elapsed, best = 0, 0.0, -1.0
    real_draw = Cycler(train_idx)
    gen_draw = Cycler(np.arange(len(generated))) if generated is not None else None
    if state is not None:
        encoder.load_state_dict(state["encoder"])
        opt_e.load_state_dict(state["opt_e"])
        if joint:
            gen.load_state_dict(state["generator"])
            disc.load_state_dict(state["discriminator"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
        step, elapsed, best = state["step"], state["elapsed"], state["best"]
        rng.set_state(state["rng"])
        real_draw.load(state["real_draw"])
        if gen_draw is not None:
            gen_draw.load(state["gen_draw"])
        log.info("resumed %s at step %d (%.1f min trained)", out, step, elapsed / 60)

    def write_state() -> None:
        atomic_torch_save({
            "config": asdict(cfg), "step": step, "elapsed": elapsed, "best": best,
            "encoder": encoder.state_dict(), "opt_e": opt_e.state_dict(),
            "generator": gen.state_dict() if joint else None, "discriminator": disc.state_dict() if joint else None,
            "opt_g": opt_g.state_dict() if joint else None, "opt_d": opt_d.state_dict() if joint else None,
            "rng": rng.get_state(), "real_draw": real_draw.state(),
            "gen_draw": gen_draw.state() if gen_draw is not None else None,
        }, state_path)

    def eval_gen() -> Generator:
        """The generator as shipped: joint mode recalibrates a copy's BatchNorm statistics."""
        if not joint:
            return gen
        shipped = copy.deepcopy(gen)
        recalibrate_batchnorm(shipped, mcfg.z_dim)
        return shipped

    columns = ["step", "minutes", "loss", "recon", "kl", "adv", "latent", "sigma", "mu_norm", "lr_scale"]
    if joint:
        columns += ["d_loss", "d_acc", "d_updates"]
    metrics_log = CsvLog(out / "metrics.csv", columns)
    eval_log = CsvLog(out / "eval.csv", ["step", "minutes", "val_iou", "val_ap", "ikea_ap", "ikea_ap_cal",
                                         "temperature", "ikea_iou", "ikea_mean_chair_ap", "best"])
    sums: dict[str, float] = {}
    t_last = last_ckpt = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc=f"vaegan ({cfg.mode})", dynamic_ncols=True, mininterval=2)
    ones = torch.ones(cfg.batch_size)
    zeros = torch.zeros(cfg.batch_size)
    figures: dict = {}
    out_of_time = False
    while step < cfg.steps and not out_of_time:
        index = real_draw.take(n_real, rng)
        flip = torch.rand(n_real, generator=rng) < 0.5 if cfg.mirror else None
        eps = torch.randn(cfg.batch_size, mcfg.z_dim, generator=rng)
        z_prior = torch.randn(cfg.batch_size, mcfg.z_dim, generator=rng) if joint else None
        x, target = batch(photos, index, flip)  # rows 0 .. n_real - 1: rendered training chairs
        if gen_draw is not None:  # rows n_real ..: generated chairs, never mirrored (that would change z)
            gen_index = np.sort(gen_draw.take(n_gen, rng))
            x_gen, target_gen = batch(generated, gen_index, None)
            x, target = torch.cat([x, x_gen]), torch.cat([target, target_gen])
            z_true = torch.from_numpy(generated.latents[generated.chair[gen_index]])  # (n_gen, z_dim)
        scale = lr_factor(cfg, step, elapsed)
        for opt, lr in ((opt_e, cfg.lr), (opt_g, cfg.g_lr), (opt_d, cfg.d_lr)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr * scale
        use_adv = disc is not None and cfg.adv_weight > 0 and step % cfg.adv_every == 0
        adv_w = cfg.adv_weight * cfg.adv_every

        encoder.train()
        gen.train(joint)  # frozen: eval mode, BatchNorm running statistics as at inference
        if disc is not None:
            disc.train(joint)
        row = {}
        if joint:  # ---- D step: real chairs vs G(z_prior) and G(E(y)), as in the GAN
            with torch.no_grad():
                mu, logvar = encoder(x)
                fake = torch.cat([gen(z_prior), gen(mu + torch.exp(0.5 * logvar) * eps)])
            real_logit = disc(target)
            fake_logit = disc(fake)
            d_loss = F.binary_cross_entropy_with_logits(real_logit, ones) + \
                F.binary_cross_entropy_with_logits(fake_logit, torch.cat([zeros, zeros]))
            acc = d_accuracy(real_logit, fake_logit)
            opt_d.zero_grad(set_to_none=True)
            if acc <= cfg.d_acc_max:
                d_loss.backward()
                opt_d.step()
            row.update(d_loss=d_loss.item(), d_acc=acc.item(), d_updates=float(acc <= cfg.d_acc_max))
            disc.requires_grad_(False)
        # ---- E (and G) step
        mu, logvar = encoder(x)
        logvar = logvar.clamp(-12.0, 6.0)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = gen.logits(z)
        recon = recon_loss(logits, target, cfg.pos_weight, cfg.recon_temperature)
        kl = kl_divergence(mu, logvar)
        loss = cfg.recon_weight * recon + cfg.kl_weight * kl
        if gen_draw is not None:
            lat = latent_loss(mu[n_real:], z_true)
            loss = loss + cfg.latent_weight * lat
            row["latent"] = lat.item()
        adv = torch.zeros(())
        if use_adv:
            adv = F.binary_cross_entropy_with_logits(disc(torch.sigmoid(logits)), ones)
            if joint:
                adv = adv + F.binary_cross_entropy_with_logits(disc(gen(z_prior)), ones)
            loss = loss + adv_w * adv
        opt_e.zero_grad(set_to_none=True)
        if joint:
            opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_e.step()
        if joint:
            opt_g.step()
            disc.requires_grad_(True)
        step += 1

        # ---- bookkeeping
        now = time.perf_counter()
        elapsed += now - t_last
        t_last = now
        row.update(loss=loss.item(), recon=recon.item(), kl=kl.item(), sigma=torch.exp(0.5 * logvar).mean().item(),
                   mu_norm=mu.norm(dim=1).mean().item())
        if use_adv:
            row["adv"] = adv.item()
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v
            sums["n_" + k] = sums.get("n_" + k, 0) + 1
        bar.update(1)
        out_of_time = cfg.max_minutes > 0 and elapsed >= 60 * cfg.max_minutes
        last = step == cfg.steps or out_of_time
        if step % cfg.log_every == 0 or last:
            means = {k: round(sums[k] / sums["n_" + k], 4) for k in sums if not k.startswith("n_")}
            metrics_log.write({"step": step, "minutes": round(elapsed / 60, 2), "lr_scale": round(scale, 3), **means})
            bar.set_postfix(recon=means.get("recon"), kl=means.get("kl"), adv=means.get("adv"))
            sums = {}
        if (step % cfg.eval_every == 0 or last) and len(val_idx):
            shipped = eval_gen()
            figures = monitor(encoder, shipped, photos, val_idx, ikea)
            improved = figures["val_iou"] > best
            if improved:
                best = figures["val_iou"]
                save_pipeline(shipped, disc, encoder, out / "best", cfg, {"step": step, **figures})
            eval_log.write({"step": step, "minutes": round(elapsed / 60, 2), "best": int(improved),
                            **{k: round(v, 4) for k, v in figures.items()}})
            tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
                       + (" (best)" if improved else ""))
            t_last = time.perf_counter()  # evaluation time is not training time
        if time.perf_counter() - last_ckpt >= cfg.ckpt_every_min * 60 or last:
            write_state()
            last_ckpt = time.perf_counter()
    bar.close()
    final = out / "checkpoint"
    save_pipeline(eval_gen(), disc, encoder, final, cfg, {"step": step, **figures})
    log.info("finished %d steps in %.1f min; pipeline written to %s (best held-out IoU %.3f in %s)",
             step, elapsed / 60, final, best, out / "best")
    return final


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    """One flag per VaeganConfig field (`--kl-weight 1`, `--no-mirror`, ...)."""
    add_config_arguments(parser, VaeganConfig)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from state.pt")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def config_from_args(args) -> VaeganConfig:
    return VaeganConfig(**config_values(args, VaeganConfig))


def main(args) -> int:
    cfg = config_from_args(args)
    if args.dry_run:
        cfg.validate()
        print(json.dumps({**asdict(cfg), "renders": cfg.renders_folder()}, indent=2))
        return 0
    start = time.perf_counter()
    final = train(cfg, resume=args.resume)
    print(f"wall time {(time.perf_counter() - start) / 60:.1f} min -> {final} (best held-out: {Path(cfg.out) / 'best'})")
    return 0
