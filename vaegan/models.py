"""The three networks of the 3D-VAE-GAN (Wu et al. 2016) and their Hub-style save/load.

- `Generator`:      z (B, z_dim) -> occupancy (B, 1, R, R, R), ConvTranspose3d k4 s2.
- `Discriminator`:  grid (B, 1, R, R, R) -> realism logit (B,), the generator's mirror.
- `ImageEncoder`:   photo (B, 3, S, S) -> code (B, z_dim): an ImageNet-pretrained
                    EfficientNet-Lite0 fine-tuned on renders, plus a gallery of training
                    chairs for alternative candidates.
- `ShapeEncoder`:   grid (B, 1, R, R, R) -> code (B, z_dim) in one pass: the generator's
                    inverse, so that a given chair (a file, a training chair) gets a code.

Each is an `nn.Module` + `PyTorchModelHubMixin` that saves `config.json` (a ModelConfig)
and `model.safetensors`. Loading reads safetensors only, strictly: it never unpickles.
"""

import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from safetensors import SafetensorError
from safetensors.torch import load_model
import torch.nn.functional as F
from torch import nn

from .backbone import IMAGENET_MEAN, IMAGENET_STD, LITE0, EfficientNetLite
from .config import ModelConfig
from .errors import CheckpointError


class HubModule(nn.Module, PyTorchModelHubMixin):
    """Shared loading rule: `model.safetensors` only, every tensor must match."""

    config: ModelConfig

    @classmethod
    def _from_pretrained(cls, *, model_id, revision, cache_dir, force_download, local_files_only,
                         token, map_location="cpu", strict=True, **model_kwargs):
        if not isinstance(model_kwargs.get("config"), ModelConfig):
            raise CheckpointError(f"{model_id}: missing or unreadable config.json for {cls.__name__}")
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = Path(model_id) / constants.SAFETENSORS_SINGLE_FILE
            if not weights.is_file():
                raise CheckpointError(f"incomplete checkpoint: {weights} is missing")
        else:
            weights = hf_hub_download(
                repo_id=model_id, filename=constants.SAFETENSORS_SINGLE_FILE, revision=revision,
                cache_dir=cache_dir, force_download=force_download, token=token,
                local_files_only=local_files_only,
            )
        try:
            load_model(model, str(weights), strict=True, device=map_location)
        except (RuntimeError, OSError, SafetensorError) as err:  # shape mismatch, missing keys, corrupt file
            raise CheckpointError(f"{weights} does not match its config.json: {err}") from err
        return model.eval()


def _init_weights(module: nn.Module) -> None:
    """DCGAN / 3D-GAN initialisation: N(0, 0.02) convs, N(1, 0.02) norm scales."""
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d, nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm3d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(HubModule):
    """z -> 4^3 x w0 -> 8^3 x w1 -> ... -> R^3 x 1, BatchNorm + ReLU, sigmoid output."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.g_widths
        # The first layer turns z (as a 1^3 volume) into a 4^3 volume; no bias before a BN.
        layers = [nn.ConvTranspose3d(config.z_dim, w[0], 4, 1, 0, bias=False), nn.BatchNorm3d(w[0]), nn.ReLU(True)]
        for c_in, c_out in zip(w[:-1], w[1:]):
            layers += [nn.ConvTranspose3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(True)]
        layers.append(nn.ConvTranspose3d(w[-1], 1, 4, 2, 1, bias=True))
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> pre-sigmoid logits (B, 1, R, R, R); training uses these for stability."""
        return self.net(z.reshape(len(z), -1, 1, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> occupancy probabilities (B, 1, R, R, R)."""
        return torch.sigmoid(self.logits(z))


class Discriminator(HubModule):
    """R^3 x 1 -> R/2 ... -> 4^3 -> logit, LeakyReLU 0.2; BatchNorm or spectral norm.

    `forward(x, return_features=True)` also returns each conv block's activations (after the
    nonlinearity) for feature extraction (the paper's ModelNet classifier experiment).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.d_widths
        spectral = config.d_norm == "spectral"
        blocks, c_in = [], 1
        for i, c_out in enumerate(w):
            conv = nn.Conv3d(c_in, c_out, 4, 2, 1, bias=spectral or i == 0)
            if spectral:
                blocks.append(nn.Sequential(nn.utils.parametrizations.spectral_norm(conv), nn.LeakyReLU(0.2, True)))
            else:
                # No normalisation on the first layer (DCGAN): it sees raw occupancies.
                norm = nn.Identity() if i == 0 else nn.BatchNorm3d(c_out)
                blocks.append(nn.Sequential(conv, norm, nn.LeakyReLU(0.2, True)))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        head = nn.Conv3d(c_in, 1, 4, 1, 0)  # 4^3 -> 1^3
        self.head = nn.utils.parametrizations.spectral_norm(head) if spectral else head
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """x (B, 1, R, R, R) in [0, 1] -> logit (B,) [, list of (B, C_i, R/2^i, ...)]."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        logit = self.head(x).reshape(-1)
        return (logit, feats) if return_features else logit


class ImageEncoder(HubModule):
    """RGB photo (B, 3, S, S) in [0, 1] -> the code of its chair (B, z_dim).

    An ImageNet-pretrained EfficientNet-Lite0 (`vaegan.backbone`, width `config.e_width`),
    its pooled features (B, F) -> a linear layer -> z, scaled onto the shell of radius
    `config.e_mu_radius` when that is set. Fine-tuned on renders by `python -m train
    photo-encoder`; the weights, backbone included, are this module's safetensors.

    With `config.e_gallery` = N > 0 it also stores N training chairs: their codes
    (`gallery_codes`, (N, z_dim)) and the unit-norm mean embedding of their renders
    (`gallery_embeddings`, (N, F)), for `candidates`.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = EfficientNetLite(LITE0 if config.e_width == 1.0 else LITE0.scaled(config.e_width))
        features = self.backbone.out_features
        self.head = nn.Linear(features, config.z_dim)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("gallery_codes", torch.zeros(config.e_gallery, config.z_dim))  # set by training
        self.register_buffer("gallery_embeddings", torch.zeros(config.e_gallery, features))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> pooled backbone features (B, F)."""
        return self.backbone.features((images - self.mean) / self.std)

    def code(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, F) -> codes (B, z_dim), on the e_mu_radius shell when set."""
        z = self.head(features)
        return to_radius(z, self.config.e_mu_radius) if self.config.e_mu_radius > 0 else z

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.code(self.embed(images))

    def candidates(self, images: torch.Tensor, k: int) -> torch.Tensor:
        """(B, 3, S, S) -> (B, k, z_dim): the photo's own code, then the codes of the k - 1
        gallery chairs whose renders' embedding is nearest by cosine, most similar first."""
        h = self.embed(images)  # (B, F)
        own = self.code(h)[:, None]  # (B, 1, z_dim)
        if k == 1:
            return own
        if len(self.gallery_codes) < k - 1:
            raise ValueError(f"k = {k} needs {k - 1} stored gallery chairs; this encoder has "
                             f"{len(self.gallery_codes)}")
        sim = F.normalize(h, dim=1) @ self.gallery_embeddings.T  # (B, N)
        nearest = sim.topk(k - 1, dim=1).indices  # (B, k - 1), most similar first
        return torch.cat([own, self.gallery_codes[nearest]], 1)


class ShapeEncoder(HubModule):
    """Occupancy grid (B, 1, R, R, R) in [0, 1] -> latent code (B, z_dim), one forward pass.

    The discriminator's conv trunk (stride-2 Conv3d, BatchNorm after the first, LeakyReLU
    0.2; widths `config.d_widths`) down to 4^3, then one linear layer to z, scaled onto the
    prior's shell |z| = sqrt(z_dim) where the generator's training codes lie: trained freely,
    reconstruction through G pushed the codes far outside it (|z| ~ 30 sqrt(z_dim)), where G
    was never trained. Trained by `python -m train shape-encoder` so that G(E(x))
    reconstructs x (`ChairPipeline.encode_shape`).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        layers, c_in = [], 1
        for i, c_out in enumerate(config.d_widths):
            layers += [nn.Conv3d(c_in, c_out, 4, 2, 1, bias=i == 0),
                       nn.Identity() if i == 0 else nn.BatchNorm3d(c_out), nn.LeakyReLU(0.2, True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 4 ** 3, config.z_dim)  # (B, C * 4^3) -> (B, z_dim)
        self.apply(_init_weights)

    def forward(self, grids: torch.Tensor) -> torch.Tensor:
        """(B, 1, R, R, R) -> (B, z_dim), each of norm sqrt(z_dim)."""
        return to_radius(self.head(self.net(grids).flatten(1)), self.config.z_dim ** 0.5)


def to_radius(z: torch.Tensor, radius: float) -> torch.Tensor:
    """Codes (..., z_dim) scaled to norm `radius` (the encoder's e_mu_radius shell)."""
    return z * (radius / z.norm(dim=-1, keepdim=True).clamp(min=1e-6))


def to_channels_last(model: nn.Module) -> nn.Module:
    """channels_last_3d: 1.2-1.7x faster 3-D convs on this CPU (notes/cpu-measurements.md)."""
    return model.to(memory_format=torch.channels_last_3d)


__all__ = ["Generator", "Discriminator", "ImageEncoder", "ShapeEncoder", "to_channels_last",
           "to_radius"]
