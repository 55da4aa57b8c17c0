"""`ChairPipeline`: the public entry point that ties the networks to voxels, photos and meshes.

A checkpoint is a folder (local, or a Hub model repo) laid out like diffusers pipelines:

    <name>/generator/{config.json, model.safetensors}        required
    <name>/discriminator/{config.json, model.safetensors}    optional (realism score)
    <name>/encoder/{config.json, model.safetensors}          optional (photo -> chair)
    <name>/shape_encoder/{config.json, model.safetensors}    optional (voxels -> code)
    <name>/prior/{config.json, model.safetensors}            optional (learned prior over codes)
    <name>/README.md                                         the model card

CPU and float32 by default; all randomness comes from explicit seeds.
"""

import os
import re
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

from . import meshing
from .config import ModelConfig
from .errors import CheckpointError, ImageError, VoxelError
from .images import preprocess
from .models import Discriminator, Generator, HubModule, ImageEncoder, ShapeEncoder
from .prior import LatentPrior
from .voxels import check_grids

COMPONENTS: dict[str, type[HubModule]] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "encoder": ImageEncoder,
    "shape_encoder": ShapeEncoder,
    "prior": LatentPrior,
}
MAX_SAMPLES = 4096  # latents per sample_latents call
MAX_SHAPES = 4096  # grids per encode_shape call (~0.5 GB of float32 32^3 grids)
SHAPE_BATCH = 256  # grids per shape-encoder forward pass
MAX_CANDIDATES = 16  # codes per candidates() call
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve_checkpoint(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a Hub repo id downloaded (or found in the cache).

    Honours HF_HUB_OFFLINE=1 / HF_HUB_CACHE like every huggingface_hub download.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if not _REPO_ID.match(name):
        raise CheckpointError(f"checkpoint folder {name} does not exist (and it is not a Hub repo id)")
    try:
        return Path(snapshot_download(repo_id=name, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.md"]))
    except (HFValidationError, RepositoryNotFoundError, LocalEntryNotFoundError, OSError) as err:
        raise CheckpointError(
            f"{name} is not a local checkpoint folder, and the Hub repo could not be loaded "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no details'})"
        ) from err


class ChairPipeline:
    """Sample, generate, encode photos, reconstruct and mesh chairs. See DEVELOPERS.md."""

    def __init__(self, generator: Generator, discriminator: Discriminator | None = None,
                 encoder: ImageEncoder | None = None, shape_encoder: ShapeEncoder | None = None,
                 prior: LatentPrior | None = None):
        self.generator = generator.eval()
        self.discriminator = discriminator.eval() if discriminator is not None else None
        self.encoder = encoder.eval() if encoder is not None else None
        self.shape_encoder = shape_encoder.eval() if shape_encoder is not None else None
        self.prior = prior.eval() if prior is not None else None
        self.config: ModelConfig = generator.config
        for part in (discriminator, encoder, shape_encoder, prior):
            # The discriminator reads grids only, so it may come from a generator with another z_dim
            # (chair32 v3 keeps v2's discriminator for the realism score and the classify table).
            if part is None:
                continue
            z_dim = self.z_dim if part is discriminator else part.config.z_dim
            if (part.config.resolution, z_dim) != (self.resolution, self.z_dim):
                raise CheckpointError(
                    f"{type(part).__name__} was built for resolution {part.config.resolution}, "
                    f"z_dim {part.config.z_dim}; the generator has {self.resolution}, {self.z_dim}"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, revision: str | None = None) -> "ChairPipeline":
        """Load from a local checkpoint folder or a Hub repo id (see the module docstring)."""
        root = resolve_checkpoint(name_or_path, revision)
        if not (root / "generator" / "config.json").is_file():
            raise CheckpointError(f"incomplete checkpoint {root}: generator/config.json is missing")
        parts = {}
        for name, model_cls in COMPONENTS.items():
            folder = root / name
            if (folder / "config.json").is_file():
                parts[name] = model_cls.from_pretrained(folder)
            elif folder.exists():
                raise CheckpointError(f"incomplete checkpoint {root}: {name}/config.json is missing")
        pipe = cls(**parts)
        pipe.root = root
        return pipe

    @classmethod
    def from_config(cls, config: ModelConfig | None = None, seed: int = 0) -> "ChairPipeline":
        """A randomly initialised pipeline (every network): works end to end untrained."""
        config = config or ModelConfig()
        torch.manual_seed(seed)
        return cls(Generator(config), Discriminator(config), ImageEncoder(config), ShapeEncoder(config))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write each present component to `folder/<component>/` (config.json + safetensors)."""
        folder = Path(folder)
        for name in COMPONENTS:
            part = getattr(self, name)
            if part is not None:
                part.save_pretrained(folder / name)
        return folder

    # ------------------------------------------------------------------ properties
    @property
    def resolution(self) -> int:
        return int(self.config.resolution)

    @property
    def z_dim(self) -> int:
        return int(self.config.z_dim)

    # ------------------------------------------------------------------ latents -> voxels
    def sample_latents(self, n: int, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
        """n latents from the shipped prior, float32 (n, z_dim), a pure function of (n, seed,
        truncation): the learned prior when the checkpoint has one (prior/), else N(0, I);
        `truncation` scales the prior's input noise (< 1: more typical chairs)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SAMPLES:
            raise ValueError(f"n must be an integer from 1 to {MAX_SAMPLES}, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not 0.0 <= truncation <= 3.0:
            raise ValueError(f"truncation must be in [0, 3], got {truncation}")
        if self.prior is not None:
            return self.prior.sample(int(n), int(seed), float(truncation))
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn(int(n), self.z_dim, generator=gen) * float(truncation)

    def check_latents(self, z) -> torch.Tensor:
        """Any (z_dim,) or (n, z_dim) array-like -> float32 tensor (n, z_dim), or ValueError."""
        z = torch.as_tensor(np.asarray(z, dtype=np.float32) if not torch.is_tensor(z) else z).float()
        if z.ndim == 1:
            z = z[None]
        if z.ndim != 2 or z.shape[1] != self.z_dim or len(z) == 0:
            raise ValueError(f"latents have shape {tuple(z.shape)}: expected (n, {self.z_dim})")
        if not torch.isfinite(z).all():
            raise ValueError("latents contain NaN or infinite values")
        return z

    @torch.inference_mode()
    def generate(self, z, batch_size: int = 64) -> np.ndarray:
        """Latents (n, z_dim) -> occupancy probabilities, np.float32 (n, R, R, R) in [0, 1]: the
        decoder's output after the checkpoint's cleaning (`ModelConfig.g_clean`), i.e. the chair
        the app shows."""
        return self.soft_occupancy(z, temperature=1.0, batch_size=batch_size)

    def _clean(self, logits: torch.Tensor, temperature: float) -> np.ndarray:
        """Logits (b, R, R, R) -> sigmoid(logits / temperature), np.float32, whose 0.5 level is
        exactly that of `generate`: the voxels that `join_pieces` changes in sigmoid(logits) take
        its values, and so do the few where float32 rounding moves a tiny logit across 0.5."""
        out = torch.sigmoid(logits / temperature).numpy().astype(np.float32, copy=False)
        sharp = out if temperature == 1.0 else torch.sigmoid(logits).numpy()
        if self.config.g_clean == "join":
            for i, grid in enumerate(sharp):
                joined = meshing.join_pieces(grid)
                changed = joined != grid
                out[i][changed] = joined[changed]
                sharp[i] = joined
        if temperature != 1.0:
            crossed = (out >= 0.5) != (sharp >= 0.5)
            out[crossed] = sharp[crossed]
        return out

    # ------------------------------------------------------------------ photos -> latents
    def _require_encoder(self) -> ImageEncoder:
        if self.encoder is None:
            raise CheckpointError("this checkpoint has no image encoder (no encoder/ folder)")
        return self.encoder

    def preprocess(self, image):
        """One input image -> (float32 (3, S, S), the PIL image the encoder sees)."""
        return preprocess(image, self.config.image_size)

    def _pictures(self, image) -> torch.Tensor:
        """One image or a list of them -> preprocessed pictures float32 (n, 3, S, S)."""
        images = image if isinstance(image, (list, tuple)) else [image]
        if not images:
            raise ImageError("no image given")
        return torch.stack([self.preprocess(im)[0] for im in images])

    @torch.inference_mode()
    def encode(self, image) -> torch.Tensor:
        """A PIL image (or path/bytes/array) or a list of them -> codes float32 (n, z_dim):
        `generate(encode(photo))[0]` is the chair the app shows for the photo."""
        return self._require_encoder()(self._pictures(image))

    @torch.inference_mode()
    def candidates(self, image, k: int = 4) -> torch.Tensor:
        """One photo -> k codes float32 (k, z_dim), best first: `encode(photo)` and then the
        codes of the stored training chairs whose renders look most like it. ValueError for k
        outside 1-MAX_CANDIDATES or beyond the encoder's gallery."""
        encoder = self._require_encoder()
        if isinstance(image, (list, tuple)):
            raise ImageError("candidates takes one image")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_CANDIDATES:
            raise ValueError(f"k must be an integer from 1 to {MAX_CANDIDATES}, got {k!r}")
        return encoder.candidates(self._pictures(image), int(k))[0]

    @torch.inference_mode()
    def reconstruct(self, image) -> np.ndarray:
        """One photo -> its chair as soft occupancy, np.float32 (R, R, R): sigmoid(G's logits / T)
        at `encode(photo)`, T = the encoder's e_temperature, so its 0.5 level is exactly the
        chair `generate(encode(photo))` shows, and the values below 1 say where it is unsure."""
        if isinstance(image, (list, tuple)):
            raise ImageError("reconstruct takes one image; use soft_occupancy(encode(images)) for a batch")
        return self.soft_occupancy(self.encode(image))[0]

    @torch.inference_mode()
    def soft_occupancy(self, z, temperature: float | None = None, batch_size: int = 64) -> np.ndarray:
        """Codes (n, z_dim) -> sigmoid(G's logits / temperature), np.float32 (n, R, R, R), cleaned
        as `generate`; the temperature defaults to the encoder's e_temperature (1 = `generate`)."""
        z = self.check_latents(z)
        if temperature is None:
            temperature = self.encoder.config.e_temperature if self.encoder is not None else 1.0
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return np.concatenate([self._clean(self.generator.logits(chunk)[:, 0], temperature) for chunk in z.split(batch_size)])

    # ------------------------------------------------------------------ voxels -> latents
    @torch.inference_mode()
    def encode_shape(self, grids) -> torch.Tensor:
        """Occupancy grids (R, R, R) or (n, R, R, R), float in [0, 1] or bool -> their codes,
        torch.float32 (n, z_dim), one shape-encoder pass each: G(code) reconstructs the grid.
        VoxelError for a wrong shape or resolution, NaN, an empty grid or more than
        MAX_SHAPES grids; CheckpointError without a shape encoder."""
        if self.shape_encoder is None:
            raise CheckpointError("this checkpoint has no shape encoder (no shape_encoder/ folder)")
        grids = check_grids(grids, self.resolution, what="shape grids", max_count=MAX_SHAPES)  # (n, R, R, R)
        empty = np.flatnonzero(grids.reshape(len(grids), -1).max(1) < 0.5)
        if len(empty):
            raise VoxelError(f"shape grid {int(empty[0])} is empty (no voxel >= 0.5): there is no chair to encode"
                             + (f" ({len(empty)} empty grids)" if len(empty) > 1 else ""))
        batch = torch.from_numpy(grids)[:, None]  # (n, 1, R, R, R)
        return torch.cat([self.shape_encoder(chunk) for chunk in batch.split(SHAPE_BATCH)])

    # ------------------------------------------------------------------ voxels -> outputs
    def mesh(self, vox, level: float = 0.5, smooth: float = 0.0, clean: bool = True, min_size: int = 0):
        """One grid (R, R, R) -> trimesh.Trimesh by marching cubes, Z-up, unit-cube frame."""
        return meshing.voxels_to_mesh(vox, level=level, smooth=smooth, clean=clean, min_size=min_size)

    @torch.inference_mode()
    def realism(self, vox) -> np.ndarray:
        """Grids (R, R, R) or (n, R, R, R) -> the discriminator's P(real), float32 (n,)."""
        if self.discriminator is None:
            raise CheckpointError("this checkpoint has no discriminator (no discriminator/ folder)")
        batch = torch.from_numpy(check_grids(vox, self.resolution))  # (n, R, R, R)
        return torch.sigmoid(self.discriminator(batch[:, None])).numpy()

    def __repr__(self) -> str:
        parts = [n for n in COMPONENTS if getattr(self, n) is not None]
        return f"ChairPipeline(resolution={self.resolution}, z_dim={self.z_dim}, components={parts})"
