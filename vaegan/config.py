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
    # Photo encoder backbone: EfficientNet-Lite0 (vaegan.backbone) with its channels times
    # this width. 1.0 is the ImageNet-pretrained network the shipped encoder is fine-tuned
    # from; tests use 0.25 for speed.
    e_width: float = 1.0
    # > 0: the encoder's code is scaled to this norm. sqrt(z_dim) is the shell where samples
    # of N(0, I) lie (|z| = 14.1 +- 0.7 for 200-d) and where the shape encoder puts the codes
    # of real chairs that the photo encoder learns. 0 = unconstrained.
    e_mu_radius: float = 0.0
    # Training chairs stored with the encoder (their codes and the mean embedding of their
    # renders) for `ChairPipeline.candidates`: the photo's own code first, then the codes of
    # the stored chairs whose renders look most like the photo. 0 = candidates is the code alone.
    e_gallery: int = 0
    # `ChairPipeline.reconstruct` = sigmoid(G's logits / T) at the photo's code: the 0.5 level
    # is exactly the chair the app shows, T > 1 softens the generator's saturated logits into
    # a confidence (chosen for AP on renders of held-out training chairs).
    e_temperature: float = 1.0
    # What `generate` does to the decoder's output before returning it (what the user sees):
    # "" = nothing (v1, v2); "join" = each chair in one piece (`meshing.join_pieces`).
    g_clean: str = ""
    # The learned prior over codes that `sample_latents` draws from (vaegan.prior): "" = N(0, I)
    # (the GAN generators v1, v2), "gmm" = a mixture of Gaussians over an autoencoder's codes (v3).
    p_kind: str = ""
    p_components: int = 32  # mixture components

    def __post_init__(self):
        # JSON round trips turn tuples into lists; keep one type.
        self.g_widths = tuple(int(w) for w in self.g_widths)
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
        if self.e_mu_radius < 0 or self.e_gallery < 0 or not self.e_temperature > 0 or not self.e_width > 0:
            raise ConfigError(f"e_mu_radius and e_gallery must be >= 0 and e_temperature, e_width > 0, got "
                              f"{self.e_mu_radius}, {self.e_gallery}, {self.e_temperature}, {self.e_width}")
        if self.g_clean not in ("", "join"):
            raise ConfigError(f"g_clean must be '' or 'join', got {self.g_clean!r}")
        if self.p_kind not in ("", "gmm"):
            raise ConfigError(f"p_kind must be '' or 'gmm', got {self.p_kind!r}"
                              + (" (the latent GAN prior left the code with chair32 v3.1)" if self.p_kind == "gan" else ""))
        if self.p_components < 1:
            raise ConfigError(f"p_components must be >= 1, got {self.p_components}")
        if self.z_dim < 1 or min(self.g_widths + self.d_widths) < 1:
            raise ConfigError("z_dim and every channel width must be positive")
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"image_size {self.image_size} must be a multiple of 32 (the backbone halves it 5 times)")

    def to_dict(self) -> dict:
        return asdict(self)
