"""`ModelConfig`: the one typed config every model of a checkpoint is built from.

It is saved as `config.json` beside each model's weights (PyTorchModelHubMixin), so a
checkpoint always carries the exact architecture it was trained with.
"""

import math
from dataclasses import asdict, dataclass

from .errors import ConfigError

MIN_RESOLUTION, MAX_RESOLUTION = 8, 128  # 8 and 16 exist for tests; 32 and 64 ship


@dataclass
class ModelConfig:
    resolution: int = 32  # side R of the generated (R, R, R) grid; a power of two
    z_dim: int = 200  # latent size (the paper's 200)
    # Generator channels from 4^3 upwards, one per resolution 4, 8, ..., R/2.
    # The paper's 64^3 model is (512, 256, 128, 64). The shipped 32^3 model uses
    # (128, 64, 32): 80 training samples/s here against 23 for (256, 128, 64).
    g_widths: tuple[int, ...] = (128, 64, 32)
    # Discriminator channels from R/2 downwards to 4^3; None mirrors the generator.
    d_widths: tuple[int, ...] | None = None
    d_norm: str = "batch"  # "batch" (paper) or "spectral" (the original project's variant)
    image_size: int = 128  # encoder input side, square RGB
    # Encoder conv channels, each a stride-2 conv: 128 -> 4 px in five layers like the
    # paper's five conv layers (which took 256 px; 128 px trains 4x cheaper on a CPU).
    e_widths: tuple[int, ...] = (32, 64, 128, 256, 256)
    # > 0: the encoder's posterior mean is scaled to this norm. sqrt(z_dim) is the shell
    # where samples of N(0, I) lie (|z| = 14.1 +- 0.7 for 200-d). Used because G(0) of the
    # shipped generator is an empty grid: an encoder that hedges towards the mean code
    # decodes to nothing, one on the shell always decodes to a chair. 0 = unconstrained.
    e_mu_radius: float = 0.0
    # > 0: `ChairPipeline.reconstruct` returns the predictive occupancy E[G(z)] over
    # z = mu + s * eps, eps ~ N(0, I) (put back on the e_mu_radius shell when that is set),
    # s = e_predictive_std, instead of G(mu) alone: the generator's logits are huge, so G(mu)
    # is a 0/1 grid, and averaging over nearby chairs says which voxels are certain and
    # which only likely. Fitted by `python -m train photo-spread` (the shipped value on the
    # IKEA development photos, `--ikea`). 0 = G(mu).
    e_predictive_std: float = 0.0
    # > 0: the encoder's posterior is a mixture over this many fixed codes, a bank of the
    # generator's own prior samples stored with the encoder's weights, and the encoder
    # classifies a photo among them (`python -m train bank-encoder`). Regressing z, or
    # descending through the frozen generator, stalls in this generator's rugged latent
    # space (the model card, "Photo -> chair"); picking among chairs it can make does not.
    # 0 = the paper's Gaussian posterior N(mu, sigma^2).
    e_bank_size: int = 0
    # Components of the bank mixture behind `reconstruct` (the most probable ones, their
    # weights renormalised): the predictive occupancy sum_k p_k G(z_k).
    e_bank_top: int = 32

    def __post_init__(self):
        # JSON round trips turn tuples into lists; keep one type.
        self.g_widths = tuple(int(w) for w in self.g_widths)
        self.e_widths = tuple(int(w) for w in self.e_widths)
        if self.d_widths is None:
            self.d_widths = tuple(reversed(self.g_widths))
        self.d_widths = tuple(int(w) for w in self.d_widths)
        self.validate()

    @property
    def num_up(self) -> int:
        """Number of stride-2 upsamplings from 4^3 to R^3."""
        return int(math.log2(self.resolution)) - 2

    def validate(self) -> None:
        r = self.resolution
        if not isinstance(r, int) or r < MIN_RESOLUTION or r > MAX_RESOLUTION or r & (r - 1):
            raise ConfigError(
                f"unsupported resolution {r!r}: use a power of two from {MIN_RESOLUTION} to "
                f"{MAX_RESOLUTION} (the shipped models use 32 or 64)"
            )
        for name, widths in (("g_widths", self.g_widths), ("d_widths", self.d_widths)):
            if len(widths) != self.num_up:
                raise ConfigError(
                    f"{name} has {len(widths)} entries but resolution {r} needs {self.num_up} "
                    f"(one per level from 4^3 to {r // 2}^3)"
                )
        if self.d_norm not in ("batch", "spectral"):
            raise ConfigError(f"d_norm must be 'batch' or 'spectral', got {self.d_norm!r}")
        if self.e_mu_radius < 0 or self.e_predictive_std < 0:
            raise ConfigError(f"e_mu_radius and e_predictive_std must be >= 0, got {self.e_mu_radius}, "
                              f"{self.e_predictive_std}")
        if self.e_bank_size < 0 or not 1 <= self.e_bank_top <= 1024:
            raise ConfigError(f"e_bank_size must be >= 0 and e_bank_top in [1, 1024], got {self.e_bank_size}, "
                              f"{self.e_bank_top}")
        if self.z_dim < 1 or min(self.g_widths + self.d_widths + self.e_widths) < 1:
            raise ConfigError("z_dim and every channel width must be positive")
        if self.image_size % 2 ** len(self.e_widths) or self.image_size < 2 ** len(self.e_widths):
            raise ConfigError(
                f"image_size {self.image_size} must be a multiple of 2^{len(self.e_widths)} "
                f"(one halving per encoder layer)"
            )

    def to_dict(self) -> dict:
        return asdict(self)
