"""`LatentPrior`: the learned distribution over the autoencoder's codes that `sample_latents` draws from.

Generator v3 is reconstruction first: an autoencoder's decoder is the generator, and new chairs
come from a model of where its codes lie. The shipped model is a mixture of Gaussians with full
covariances over the training chairs' codes (and their mirror images'), fitted by EM in seconds
(`python -m train prior`). It is the simplest of the priors the v3 study compared (model card):
l-GAN / IM-GAN's latent GAN (Achlioptas et al. 2018, Chen & Zhang 2019), trained for 60 minutes,
was level with it on 1-NNA-CD and covered 5 points fewer test chairs, and a latent diffusion model
(LION, Zeng et al. 2022) copied training chairs; both left the code.

The mixture lives in the normalised code space ((z - code_mean) / code_std, per coordinate;
buffers set by the fit) and its draws are put on the autoencoder's shell |z| = sqrt(z_dim).
Sampling is a pure function of (n, seed, truncation): component choice and noise come from one
seeded `torch.Generator`.
"""

import torch

from .config import ModelConfig
from .models import HubModule, to_radius

# Draws per batched product in `sample`: each draw's (d, d) Cholesky factor is gathered, 64 KB at
# d = 128, so 4,096 draws at once would hold 270 MB.
SAMPLE_CHUNK = 256


class LatentPrior(HubModule):
    """Seeded samples of autoencoder codes: `sample(n, seed)` -> float32 (n, z_dim) on the shell."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d, k = config.z_dim, config.p_components
        self.register_buffer("code_mean", torch.zeros(d))  # set by the fit
        self.register_buffer("code_std", torch.ones(d))
        # The mixture, in the normalised space: weights (k,), means (k, d) and the Cholesky factors
        # (k, d, d) of the covariances. An untrained prior is one standard normal per component.
        self.register_buffer("weights", torch.full((k,), 1.0 / k))
        self.register_buffer("means", torch.zeros(k, d))
        self.register_buffer("scale_tril", torch.eye(d).repeat(k, 1, 1))

    @torch.no_grad()
    def sample(self, n: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
        """n codes (n, z_dim) on the shell |z| = sqrt(z_dim). `truncation` scales each draw's
        spread around its component's mean (< 1: more typical chairs, as the truncation trick)."""
        gen = torch.Generator().manual_seed(seed)
        component = torch.multinomial(self.weights, n, replacement=True, generator=gen)  # (n,)
        noise = torch.randn(n, self.config.z_dim, 1, generator=gen) * truncation  # (n, d, 1)
        # Parts of near-equal size, never a lone draw: a one-row product takes another kernel and
        # rounds differently, and the codes must not depend on n's remainder.
        parts = -(-n // SAMPLE_CHUNK)
        spread = torch.cat([(self.scale_tril[c] @ e)[..., 0]  # (part, d)
                            for c, e in zip(component.tensor_split(parts), noise.tensor_split(parts))])
        return self.to_code(self.means[component] + spread)

    def to_code(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised codes (B, d) -> codes on the autoencoder's shell (B, d)."""
        return to_radius(x * self.code_std + self.code_mean, self.config.z_dim ** 0.5)

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, d) -> the prior's normalised space (B, d)."""
        return (z - self.code_mean) / self.code_std


__all__ = ["LatentPrior"]
