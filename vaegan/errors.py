"""The exceptions `vaegan` raises for bad input: one place, so callers (the app, the CLI,
`train/`) can catch them and show the message instead of a traceback.

Every class derives from ValueError (or FileNotFoundError) so generic callers still work.
"""


class VoxelError(ValueError):
    """A voxel grid or voxel file is unusable: wrong shape/dtype, NaN, truncated file, ..."""


class EmptyShapeError(ValueError):
    """A grid has no surface at the requested iso-level (nothing to mesh or export)."""


class CheckpointError(FileNotFoundError):
    """A checkpoint folder or Hub repo is missing, incomplete or incompatible."""


class ConfigError(ValueError):
    """A model or training config asks for something unsupported."""


class ImageError(ValueError):
    """An input image cannot be used (not an image, truncated, too large, empty, ...)."""


class LatentError(ValueError):
    """A latent vector or latent JSON is unusable: wrong length, NaN, not JSON, ..."""
