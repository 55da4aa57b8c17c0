"""`python -m train prior`: stage 2 of generator v3, a learned prior over the autoencoder's codes.

    python -m train prior --autoencoder runs/autoencoder --data ../shared/data/modelnet10_chair_vol30 \\
        --out runs/prior
    python -m train eval-gen --checkpoint runs/prior --data ../shared/data/modelnet10_chair_vol30

The autoencoder's encoder (`train autoencoder`) gives the code of every training chair and of
its mirror image (eval mode, no noise): the prior's data. The prior (`vaegan.prior`) is IM-GAN's
latent GAN: WGAN-GP (Gulrajani et al. 2017) between the MLP's codes and the training codes,
``critic_steps`` critic updates per generator update, Adam (0.5, 0.9) at a constant rate.
The defaults are chair32 v3's recipe.

An exponential moving average of the weights is what ships (decay ``ema``). The output folder
is a whole pipeline: the autoencoder's generator and shape encoder, and ``prior/``.
"""

import copy
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaegan.config import ModelConfig
from vaegan.datasets import load_chairs
from vaegan.errors import ConfigError
from vaegan.models import Generator
from vaegan.pipeline import ChairPipeline
from vaegan.prior import LatentPrior, mlp

from .common import TrainingClock, add_config_arguments, config_values, optimizer_step, print_config
from .gan import ema_update
from .photo_encoder import detached_copy

log = logging.getLogger(__name__)


@dataclass
class PriorConfig:
    autoencoder: str = "runs/autoencoder"  # `train autoencoder`'s output folder
    data: str = ""  # the training chairs the autoencoder was trained on
    out: str = "runs/prior"  # pipeline folder: generator + shape_encoder + prior
    width: int = 512  # MLP width (the prior's and the critic's)
    layers: int = 3  # hidden layers
    minutes: float = 60.0  # training time; longer helps (model card: 20 vs 45 vs 60 min)
    steps: int = 1_000_000
    batch_size: int = 128
    lr: float = 1e-4  # Adam, constant, for both networks
    ema: float = 0.999
    critic_steps: int = 5  # critic updates per generator update
    gp_weight: float = 10.0  # gradient penalty
    mirror: bool = True  # add each chair's mirror image's code
    clean: str = "join"  # the output pipeline's `ModelConfig.g_clean`: what generate does to a chair
    seed: int = 0
    threads: int = 1

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("--data is required: the training chairs")
        ModelConfig(g_clean=self.clean)  # a known cleaning
        if self.minutes <= 0 or self.steps < 1 or self.batch_size < 2 or not 0 <= self.ema < 1:
            raise ConfigError("minutes > 0, steps >= 1, batch_size >= 2 and 0 <= ema < 1 are needed")


# ----------------------------------------------------------------------------- losses
def critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp_weight: float,
                gen: torch.Generator) -> torch.Tensor:
    """WGAN-GP critic loss: E[D(fake)] - E[D(real)] + gp_weight * (|grad D(mix)| - 1)^2."""
    mix = torch.lerp(real, fake, torch.rand(len(real), 1, generator=gen)).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return critic(fake).mean() - critic(real).mean() + gp_weight * (grad.norm(dim=1) - 1).pow(2).mean()


def generator_loss(critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    return -critic(fake).mean()


# ----------------------------------------------------------------------------- helpers
@torch.no_grad()
def training_codes(pipe: ChairPipeline, data: str, mirror: bool) -> torch.Tensor:
    """Codes of every training chair (and its mirror image): (N or 2N, z_dim)."""
    chairs, _ = load_chairs(data, "train", pipe.resolution)  # (N, R, R, R) uint8
    grids = np.concatenate([chairs, chairs[:, :, ::-1]]) if mirror else chairs  # axis 1: left/right
    return pipe.encode_shape(grids.astype(np.float32))


def train(cfg: PriorConfig) -> Path:
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    ae = ChairPipeline.from_pretrained(cfg.autoencoder)
    if ae.shape_encoder is None:
        raise ConfigError(f"{cfg.autoencoder} has no shape_encoder/: give the output of train autoencoder")
    codes = training_codes(ae, cfg.data, cfg.mirror)  # (N, d)
    config = ModelConfig(**{**ae.config.to_dict(), "p_kind": "gan", "p_width": cfg.width,
                            "p_layers": cfg.layers, "g_clean": cfg.clean})
    torch.manual_seed(cfg.seed)
    prior = LatentPrior(config).train()
    prior.code_mean.copy_(codes.mean(0))
    prior.code_std.copy_(codes.std(0).clamp(min=1e-3))
    x = prior.normalise(codes)  # (N, d)
    log.info("prior data: %d codes of %d dimensions from %s", len(x), x.shape[1], cfg.autoencoder)

    ema = copy.deepcopy(prior).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    critic = mlp([config.z_dim] + [cfg.width] * cfg.layers + [1])
    opt_g = torch.optim.Adam(prior.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))

    def batch() -> torch.Tensor:
        return x[torch.randint(len(x), (cfg.batch_size,), generator=gen)]

    def noise() -> torch.Tensor:
        return torch.randn(cfg.batch_size, config.z_dim, generator=gen)

    clock = TrainingClock("prior", cfg.steps, 60 * cfg.minutes)
    while clock.going:
        for _ in range(cfg.critic_steps):
            with torch.no_grad():
                fake = prior.net(noise())
            loss = critic_loss(critic, batch(), fake, cfg.gp_weight, gen)
            optimizer_step(opt_d, loss)
        critic.requires_grad_(False)
        optimizer_step(opt_g, generator_loss(critic, prior.net(noise())))
        critic.requires_grad_(True)
        ema_update(ema, prior, cfg.ema)
        clock.tick(loss.item())
    clock.close()
    out = Path(cfg.out)
    decoder = Generator(config)  # the autoencoder's decoder, with the cleaning in its config
    decoder.load_state_dict(ae.generator.state_dict())
    ChairPipeline(decoder, shape_encoder=ae.shape_encoder, prior=detached_copy(ema)).save_pretrained(out)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    report = {"steps": clock.step, "minutes": round(clock.elapsed / 60, 2), "codes": len(x),
              "final_loss": round(clock.running, 5)}
    (out / "prior.json").write_text(json.dumps(report, indent=2))
    log.info("prior: %d steps in %.1f min -> %s", clock.step, clock.elapsed / 60, out / "prior")
    return out


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    add_config_arguments(parser, PriorConfig)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def main(args) -> int:
    cfg = PriorConfig(**config_values(args, PriorConfig))
    if args.dry_run:
        return print_config(cfg)
    train(cfg)
    return 0
