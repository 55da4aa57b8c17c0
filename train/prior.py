"""`python -m train prior`: stage 2 of generator v3, a learned prior over the autoencoder's codes.

    python -m train prior --autoencoder runs/autoencoder --data ../shared/data/modelnet10_chair_vol30 \\
        --out runs/prior
    python -m train eval-gen --checkpoint runs/prior --data ../shared/data/modelnet10_chair_vol30

The autoencoder's encoder (`train autoencoder`) gives the code of every training chair and of
its mirror image (eval mode, no noise): the prior's data. The prior (`vaegan.prior`) is a mixture
of ``components`` Gaussians with full covariances, fitted by EM (scikit-learn) in the normalised
code space; each covariance gets ``reg`` times the mean per-coordinate variance added to its
diagonal, which keeps a component of a few dozen 128-d codes from collapsing onto them (64
components start to copy training chairs: model card). The defaults are chair32 v3.1's recipe;
the fit takes seconds.

The output folder is a whole pipeline: the autoencoder's generator and shape encoder, and ``prior/``.
"""

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from vaegan.config import ModelConfig
from vaegan.datasets import load_chairs
from vaegan.errors import ConfigError
from vaegan.models import Generator
from vaegan.pipeline import ChairPipeline
from vaegan.prior import LatentPrior

from .common import add_config_arguments, config_values, print_config

log = logging.getLogger(__name__)


@dataclass
class PriorConfig:
    autoencoder: str = "runs/autoencoder"  # `train autoencoder`'s output folder
    data: str = ""  # the training chairs the autoencoder was trained on
    out: str = "runs/prior"  # pipeline folder: generator + shape_encoder + prior
    components: int = 32  # mixture components (model card: 16 / 32 / 64 compared on held-out chairs)
    reg: float = 1e-2  # added to each covariance's diagonal, times the mean coordinate variance
    iterations: int = 200  # EM iterations at most
    mirror: bool = True  # add each chair's mirror image's code
    clean: str = "join"  # the output pipeline's `ModelConfig.g_clean`: what generate does to a chair
    seed: int = 0  # EM's k-means initialisation
    threads: int = 1

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("--data is required: the training chairs")
        ModelConfig(g_clean=self.clean, p_components=self.components)  # a known cleaning, >= 1 component
        if self.reg <= 0 or self.iterations < 1:
            raise ConfigError("reg > 0 and iterations >= 1 are needed")


# ----------------------------------------------------------------------------- helpers
@torch.no_grad()
def training_codes(pipe: ChairPipeline, data: str, mirror: bool) -> torch.Tensor:
    """Codes of every training chair (and its mirror image): (N or 2N, z_dim)."""
    chairs, _ = load_chairs(data, "train", pipe.resolution)  # (N, R, R, R) uint8
    grids = np.concatenate([chairs, chairs[:, :, ::-1]]) if mirror else chairs  # axis 1: left/right
    return pipe.encode_shape(grids.astype(np.float32))


def fit_prior(codes: torch.Tensor, config: ModelConfig, reg: float, iterations: int, seed: int) -> LatentPrior:
    """EM fit of `config.p_components` full-covariance Gaussians to codes (N, d) -> LatentPrior."""
    if len(codes) < 2 * config.p_components:
        raise ConfigError(f"{len(codes)} codes are too few for {config.p_components} mixture components")
    prior = LatentPrior(config)
    prior.code_mean.copy_(codes.mean(0))
    prior.code_std.copy_(codes.std(0).clamp(min=1e-3))
    x = prior.normalise(codes).double().numpy()  # (N, d)
    gmm = GaussianMixture(config.p_components, covariance_type="full", reg_covar=reg * float(x.var(0).mean()),
                          max_iter=iterations, random_state=seed).fit(x)
    if not gmm.converged_:
        log.warning("EM did not converge in %d iterations", iterations)
    prior.weights.copy_(torch.from_numpy(gmm.weights_ / gmm.weights_.sum()))
    prior.means.copy_(torch.from_numpy(gmm.means_))
    prior.scale_tril.copy_(torch.from_numpy(np.linalg.cholesky(gmm.covariances_)))
    return prior.eval()


def train(cfg: PriorConfig) -> Path:
    cfg.validate()
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    ae = ChairPipeline.from_pretrained(cfg.autoencoder)
    if ae.shape_encoder is None:
        raise ConfigError(f"{cfg.autoencoder} has no shape_encoder/: give the output of train autoencoder")
    codes = training_codes(ae, cfg.data, cfg.mirror)  # (N, d)
    log.info("prior data: %d codes of %d dimensions from %s", len(codes), codes.shape[1], cfg.autoencoder)
    config = ModelConfig(**{**ae.config.to_dict(), "p_kind": "gmm", "p_components": cfg.components,
                            "g_clean": cfg.clean})
    prior = fit_prior(codes, config, cfg.reg, cfg.iterations, cfg.seed)

    out = Path(cfg.out)
    decoder = Generator(config)  # the autoencoder's decoder, with the cleaning in its config
    decoder.load_state_dict(ae.generator.state_dict())
    ChairPipeline(decoder, shape_encoder=ae.shape_encoder, prior=prior).save_pretrained(out)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    report = {"codes": len(codes), "components": cfg.components, "seconds": round(time.perf_counter() - started, 1)}
    (out / "prior.json").write_text(json.dumps(report, indent=2))
    log.info("prior: %d components on %d codes in %.0f s -> %s", cfg.components, len(codes), report["seconds"],
             out / "prior")
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
