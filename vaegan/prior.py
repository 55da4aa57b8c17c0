"""`LatentPrior`: the learned distribution over the autoencoder's codes that `sample_latents` draws from.

Generator v3 is reconstruction first: an autoencoder's decoder is the generator, and new chairs
come from a small model of where its codes lie: a latent GAN, as in l-GAN (Achlioptas et al.
2018) and IM-GAN (Chen & Zhang 2019). An MLP maps seeded N(0, I) noise to a code; it is trained
as a WGAN-GP against the training chairs' codes (`python -m train prior`). A latent diffusion
prior (LION, Zeng et al. 2022) was tried too and copied training chairs (model card); it left
the code.

The MLP works in the normalised code space ((z - code_mean) / code_std, per coordinate; buffers
set by training) and its codes are put on the autoencoder's shell |z| = sqrt(z_dim). Sampling is
a pure function of (n, seed, truncation): the noise comes from one seeded `torch.Generator`.
"""

import torch
from torch import nn

from .config import ModelConfig
from .models import HubModule, to_radius


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of `sizes` with LeakyReLU 0.2 between them (the latent GAN's networks)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2, True))
    return nn.Sequential(*layers)


class LatentPrior(HubModule):
    """Seeded samples of autoencoder codes: `sample(n, seed)` -> float32 (n, z_dim) on the shell."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d, w = config.z_dim, config.p_width
        self.register_buffer("code_mean", torch.zeros(d))  # set by training
        self.register_buffer("code_std", torch.ones(d))
        self.net = mlp([d] + [w] * config.p_layers + [d])  # noise (B, d) -> normalised code (B, d)

    @torch.no_grad()
    def sample(self, n: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
        """n codes (n, z_dim) on the shell |z| = sqrt(z_dim); the input noise is scaled by
        `truncation` (< 1: more typical chairs, as the truncation trick)."""
        noise = torch.randn(n, self.config.z_dim, generator=torch.Generator().manual_seed(seed)) * truncation
        return self.to_code(self.net(noise))

    def to_code(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised codes (B, d) -> codes on the autoencoder's shell (B, d)."""
        return to_radius(x * self.code_std + self.code_mean, self.config.z_dim ** 0.5)

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, d) -> the prior's normalised space (B, d)."""
        return (z - self.code_mean) / self.code_std


__all__ = ["LatentPrior", "mlp"]
