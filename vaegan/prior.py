"""`LatentPrior`: the learned distribution over the autoencoder's codes that `sample_latents` draws from.

Generator v3 is reconstruction first: an autoencoder's decoder is the generator, and new chairs
come from a small model of where its codes lie (l-GAN, Achlioptas et al. 2018; IM-GAN, Chen &
Zhang 2019; latent diffusion over shape codes as in LION, Zeng et al. 2022). Two kinds, chosen by
`ModelConfig.p_kind`:

- ``"diffusion"``: a DDPM (Ho et al. 2020) on the normalised codes with a cosine noise schedule
  (Nichol & Dhariwal 2021) and a residual-MLP noise predictor; sampling is deterministic DDIM
  (Song et al. 2021) from seeded Gaussian noise, ``p_sample_steps`` steps.
- ``"gan"``: an MLP that maps N(0, I) noise to a code, trained as a WGAN-GP against the codes
  (IM-GAN's latent GAN).

Both work in the normalised code space ((z - code_mean) / code_std, per coordinate; buffers set
by training) and return codes on the autoencoder's shell |z| = sqrt(z_dim). Sampling is a pure
function of (n, seed, truncation): all noise comes from one seeded `torch.Generator`.
"""

import math

import torch
from torch import nn

from .config import ModelConfig
from .models import HubModule, to_radius


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Diffusion times t (B,) in [0, 1] -> sinusoidal features (B, dim) (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)  # (half,)
    angles = 1000.0 * t[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], 1)


def cosine_alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Signal fraction alpha_bar(t) of the cosine schedule for t in [0, 1] (Nichol & Dhariwal)."""
    s = 0.008
    return (torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2).clamp(1e-5, 1.0)


class ResidualBlock(nn.Module):
    """h + MLP(LayerNorm(h) + time features): the denoiser's unit, (B, W) -> (B, W)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.time = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(self.norm(h) + self.time(temb))


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
        if config.p_kind == "diffusion":
            self.inp = nn.Linear(d, w)
            self.temb = nn.Sequential(nn.Linear(w, w), nn.SiLU())
            self.blocks = nn.ModuleList(ResidualBlock(w) for _ in range(config.p_layers))
            self.out = nn.Sequential(nn.LayerNorm(w), nn.Linear(w, d))
            nn.init.zeros_(self.out[1].weight)  # start by predicting zero noise
            nn.init.zeros_(self.out[1].bias)
        else:  # "gan": noise (B, d) -> normalised code (B, d)
            self.net = mlp([d] + [w] * config.p_layers + [d])

    # ------------------------------------------------------------------ diffusion
    def predict_noise(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Noisy normalised codes x (B, d) at times t (B,) in [0, 1] -> predicted noise (B, d)."""
        temb = self.temb(timestep_embedding(t, self.config.p_width))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h)

    def ddim(self, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """Deterministic DDIM from x_1 = noise (B, d) to x_0 in `steps` steps -> (B, d)."""
        x = noise
        times = torch.linspace(1.0, 0.0, steps + 1)
        for t, t_next in zip(times[:-1], times[1:]):
            a, a_next = cosine_alpha_bar(t), cosine_alpha_bar(t_next)
            eps = self.predict_noise(x, t.expand(len(x)))
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-6, 6)  # keep rare outliers in the data range
            x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        return x

    # ------------------------------------------------------------------ both
    @torch.no_grad()
    def sample(self, n: int, seed: int, truncation: float = 1.0) -> torch.Tensor:
        """n codes (n, z_dim) on the shell |z| = sqrt(z_dim); the starting noise is scaled by
        `truncation` (< 1: more typical chairs, as the truncation trick)."""
        noise = torch.randn(n, self.config.z_dim, generator=torch.Generator().manual_seed(seed)) * truncation
        if self.config.p_kind == "diffusion":
            x = self.ddim(noise, self.config.p_sample_steps)
        else:
            x = self.net(noise)
        return self.to_code(x)

    def to_code(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised codes (B, d) -> codes on the autoencoder's shell (B, d)."""
        return to_radius(x * self.code_std + self.code_mean, self.config.z_dim ** 0.5)

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, d) -> the prior's normalised space (B, d)."""
        return (z - self.code_mean) / self.code_std


__all__ = ["LatentPrior", "cosine_alpha_bar", "timestep_embedding"]
