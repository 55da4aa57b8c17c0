"""vaegan: the 3D-VAE-GAN chair library (models, pipeline, voxel I/O, meshing, latent tools).

    from vaegan import ChairPipeline
    pipe = ChairPipeline.from_pretrained("checkpoints/chair32")
"""

from .config import ModelConfig
from .pipeline import ChairPipeline

__all__ = ["ChairPipeline", "ModelConfig"]
__version__ = "0.1.0"
