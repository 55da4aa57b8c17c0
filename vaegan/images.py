"""Photo preprocessing for the image encoder: any PIL-readable input -> (3, S, S) float tensor.

Owns the rules for what a usable input photo is (size bounds, modes, EXIF orientation)
and the crop that centres the chair. Every refusal is an `ImageError` with a reason.
"""

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_PIXELS = 40_000_000  # ~6300^2: larger inputs are refused before decoding
MIN_SIDE = 8  # a chair cannot be recognised in fewer pixels than this
WORK_SIDE = 1024  # larger photos are downscaled to this before any analysis


def open_image(source) -> Image.Image:
    """A path, bytes, numpy array or PIL image -> a loaded PIL image, or ImageError."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise ImageError(f"image array has shape {source.shape}: expected (H, W) or (H, W, C)")
        array = source
        if array.dtype != np.uint8:
            array = np.clip(np.nan_to_num(array.astype(np.float32)), 0, 255 if array.max() > 1 else 1)
            array = (array * (255 if array.max() <= 1 else 1)).astype(np.uint8)
        image = Image.fromarray(array.squeeze())
    else:
        data = source if isinstance(source, (bytes, bytearray)) else None
        name = "image" if data is not None else str(source)
        try:
            fp = io.BytesIO(data) if data is not None else Path(source).open("rb")
        except OSError as err:
            raise ImageError(f"cannot open {name}: {err.strerror or err}") from err
        try:
            with Image.open(fp) as probe:
                w, h = probe.size
                if w * h > MAX_PIXELS:
                    raise ImageError(f"{name} is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
                # draft() lets JPEG decode at a reduced scale: bounded memory for big photos.
                probe.draft("RGB", (WORK_SIDE, WORK_SIDE))
                probe.load()
                image = probe.copy()
                image.info.update(probe.info)
                exif = probe.getexif()
        except ImageError:
            raise
        except UnidentifiedImageError as err:
            raise ImageError(f"{name} is not an image file PIL can read") from err
        except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
            raise ImageError(f"{name} is damaged or truncated: {err}") from err
        finally:
            fp.close()
        if exif:
            image.getexif().update(exif)
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"image is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"image is only {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF-rotate and convert any mode (RGBA, LA, P, L, I;16, CMYK, ...) to RGB on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(image, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
        image = Image.fromarray(a.astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("RGB")
    if max(image.size) > WORK_SIDE:
        image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    return image


def square_pad(image: Image.Image, fill=(255, 255, 255)) -> Image.Image:
    """Pad to a square around the centre, so resizing keeps the aspect ratio."""
    w, h = image.size
    side = max(w, h)
    out = Image.new("RGB", (side, side), fill)
    out.paste(image, ((side - w) // 2, (side - h) // 2))
    return out


def preprocess(source, size: int) -> tuple[torch.Tensor, Image.Image]:
    """Any supported input -> (float32 (3, size, size) in [0, 1], the PIL image the model sees)."""
    image = square_pad(to_rgb(open_image(source)))
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous(), image
