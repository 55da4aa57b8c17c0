"""`python -m train autoencoder`: stage 1 of generator v3, a voxel autoencoder on the training chairs.

    python -m train autoencoder --data ../shared/data/modelnet10_chair_vol30 --out runs/ae
    python -m train autoencoder ... --resume          # continue after a kill
    python -m train autoencoder ... --dry-run         # print the resolved config

The encoder is `vaegan.models.ShapeEncoder` (conv trunk -> linear -> a code on the shell
|z| = sqrt(z_dim)); the decoder is `vaegan.models.Generator`. Both are trained together on one
loss, BCE of the decoder's logits against the chair with occupied voxels weighted by
``pos_weight`` (`train.gan.reconstruction_loss`), so that `encode_shape` is one exact pass
and the decoder is the generator the app draws with (reconstruction first, as l-GAN and
IM-GAN: Achlioptas et al. 2018, Chen & Zhang 2019).

Two things keep the decoder clean *between* training codes, where a prior's samples land:
- Gaussian noise of std ``code_noise`` (per coordinate; codes have unit RMS) is added to every
  code before decoding and the result is put back on the shell: the decoder must map a whole
  neighbourhood of a code to that chair;
- random left/right mirroring and +-``shift`` voxel translations in the floor plane enlarge
  the 888 chairs.

Every ``eval_every`` steps the one-pass IoU of held-out training chairs (by id, as `train gan`
holds them out) is measured and the best model is kept as a pipeline folder in ``out/``
(``generator/`` + ``shape_encoder/``, loadable with `ChairPipeline.from_pretrained`). At the
end the test split's one-pass IoU goes to ``out/autoencoder.json``.
"""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from vaegan.config import ModelConfig
from vaegan.datasets import load_chairs
from vaegan.errors import ConfigError
from vaegan.models import Generator, ShapeEncoder, to_channels_last, to_radius
from vaegan.pipeline import ChairPipeline
from vaegan.voxels import chair_ious

from .common import (TrainingClock, add_run_arguments, augment, optimizer_step, restore_run, run_command, save_run,
                     start_run)
from .gan import keep_best_one_pass, reconstruction_loss, split_by_id
from .photo_encoder import detached_copy

log = logging.getLogger(__name__)


@dataclass
class AutoencoderConfig:
    data: str = ""  # training chairs (`--data` of train gan); its test split is scored at the end
    out: str = "runs/autoencoder"  # run folder; the best model is a pipeline folder here
    resolution: int = 32
    z_dim: int = 128  # code size (the prototype's; 200 gained nothing there)
    g_widths: tuple[int, ...] = (128, 64, 32)  # decoder = the v2 generator network (3-4 ms a chair)
    minutes: float = 60.0  # training time; the run stops at `steps` or here, whichever is first
    steps: int = 1_000_000
    batch_size: int = 32
    lr: float = 1e-3  # Adam, cosine decay over the time budget to lr * lr_final
    lr_final: float = 0.01
    pos_weight: float = 1.5  # BCE weight of occupied voxels
    code_noise: float = 0.2  # std of the Gaussian added to each code coordinate before decoding
    mirror: bool = True  # random left/right flips
    shift: int = 1  # random translations of up to this many voxels along axes 0 and 1
    val_chairs: int = 48  # held out by id for model selection
    eval_every: int = 500
    seed: int = 0
    threads: int = 2

    def model_config(self) -> ModelConfig:
        return ModelConfig(resolution=self.resolution, z_dim=self.z_dim, g_widths=self.g_widths)

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("--data is required: the training chairs")
        if self.minutes <= 0 or self.steps < 1 or self.batch_size < 2:
            raise ConfigError("minutes > 0, steps >= 1 and batch_size >= 2 are needed")
        if min(self.lr, self.pos_weight) <= 0 or self.code_noise < 0 or self.shift < 0:
            raise ConfigError("lr and pos_weight must be > 0, code_noise and shift >= 0")
        self.model_config()  # resolution, z_dim and widths


# ----------------------------------------------------------------------------- helpers
def noisy(code: torch.Tensor, std: float, radius: float) -> torch.Tensor:
    """Codes (B, z_dim) plus N(0, std^2) per coordinate, back on the shell of `radius`."""
    return to_radius(code + std * torch.randn_like(code), radius) if std > 0 else code


def train(cfg: AutoencoderConfig, resume: bool = False) -> Path:
    out, state_path, state = start_run(cfg, resume, ("z_dim", "g_widths", "resolution"), "train_config.json")

    chairs, names = load_chairs(cfg.data, "train", cfg.resolution)
    train_idx, val_idx = split_by_id(names, cfg.val_chairs, cfg.seed)
    data, val = torch.from_numpy(chairs[train_idx]), chairs[val_idx]  # (N, R, R, R) uint8
    log.info("data: %d training chairs, %d held out", len(data), len(val))

    torch.manual_seed(cfg.seed)
    config = cfg.model_config()
    encoder, decoder = to_channels_last(ShapeEncoder(config)).train(), to_channels_last(Generator(config)).train()
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed)
    modules = {"encoder": encoder, "decoder": decoder}
    step, elapsed, best = restore_run(state, modules, opt, rng, out)

    def save_state() -> None:
        save_run(state_path, cfg, step, elapsed, best, modules, opt, rng)

    radius = config.z_dim ** 0.5
    clock = TrainingClock("autoencoder", cfg.steps, 60 * cfg.minutes, step, elapsed)
    while clock.going:
        for group in opt.param_groups:  # cosine decay over the time budget
            group["lr"] = cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * clock.progress)))
        x = data[torch.randint(len(data), (cfg.batch_size,), generator=rng)].float()  # (B, R, R, R)
        x = augment(x, cfg.mirror, cfg.shift, rng)[:, None].contiguous(memory_format=torch.channels_last_3d)
        code = noisy(encoder(x), cfg.code_noise, radius)  # (B, z_dim)
        loss = reconstruction_loss(decoder.logits(code), x, cfg.pos_weight)
        optimizer_step(opt, loss)
        clock.tick(loss.item(), best=f"{best:.3f}")
        step, elapsed = clock.step, clock.elapsed
        if clock.due(cfg.eval_every):
            best = keep_best_one_pass(clock, encoder, decoder, val, best, lambda: ChairPipeline(
                detached_copy(decoder), shape_encoder=detached_copy(encoder)).save_pretrained(out))
        if clock.save_due():
            save_state()
    clock.close()
    save_state()
    report = {"steps": step, "minutes": round(elapsed / 60, 2), "held_out_iou": round(best, 4)}
    report.update(test_report(out, cfg.data))
    (out / "autoencoder.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return out


def test_report(folder: Path, data: str) -> dict:
    """The best autoencoder in `folder` on the data's test split: one-pass IoU of G(E(x)) >= 0.5."""
    if not (Path(data) / "test").is_dir():
        log.warning("no test split scored: %s has no test/ folder", data)
        return {}
    pipe = ChairPipeline.from_pretrained(folder)
    tests, _ = load_chairs(data, "test", pipe.resolution)
    ious = chair_ious(pipe.generate(pipe.encode_shape(tests)) >= 0.5, tests > 0)
    return {"test_chairs": len(tests), "test_one_pass_iou": round(float(ious.mean()), 4)}


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    add_run_arguments(parser, AutoencoderConfig)


def main(args) -> int:
    return run_command(args, AutoencoderConfig, train)
