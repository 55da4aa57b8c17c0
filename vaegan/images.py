"""Photo preprocessing for the image encoder: any PIL-readable input -> (3, S, S) float tensor.

Owns the rules for what a usable input photo is (size bounds, modes, EXIF orientation)
and the crop that centres the chair. Every refusal is an `ImageError` with a reason.

Framing (`frame_chair`): when the photo's border is (nearly) one colour, as in product shots
on white or a chair against a plain wall, the chair is cut out by that colour: the picture is
cropped to a square around the content with a margin of `CONTENT_MARGIN`, filled with the
border colour. A photo whose border is busy (a room, the IKEA crops) is assumed to be framed
by its owner already and is only padded to a square (white), so nothing of the chair can be
cut off by a wrong guess. A blank photo (all black or all white) is refused.
No background is removed: the encoder is trained on renders over cluttered backgrounds that
go through this very function (`vaegan.photo_render`), and a wrong segmentation (chair and
floor of one colour) would cut legs off, which costs more than a visible background.
The framing is idempotent: a preprocessed picture preprocesses to itself.
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
BORDER_TOLERANCE = 24  # max per-channel difference (0-255) from the border colour: "background"
UNIFORM_BORDER = 0.9  # share of border pixels within tolerance for a "plain background" photo
CONTENT_MARGIN = 0.06  # margin around the content of a plain-background photo, per side
MIN_CONTENT = 0.002  # content below this share of the picture: nothing to see


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
        except Image.DecompressionBombError as err:  # > ~179 MP: PIL refuses before decoding
            raise ImageError(f"{name} is far too large: {err}") from err
        except UnidentifiedImageError as err:
            raise ImageError(f"{name} is not an image file (JPEG, PNG, WebP, ...)") from err
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


def _border_colour(array: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 (H, W, 3) -> (median colour of the 1-pixel border (3,), share of border pixels
    within BORDER_TOLERANCE of it)."""
    border = np.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]]).astype(np.int16)
    colour = np.median(border, axis=0)
    near = (np.abs(border - colour).max(axis=1) <= BORDER_TOLERANCE).mean()
    return colour, float(near)


def content_box(image: Image.Image) -> tuple[tuple[int, int, int], tuple[int, int, int, int]] | None:
    """The box (x0, y0, x1, y1) of what differs from a plain border, with the border colour.

    None when the border is busy (the photo is taken as framed) or the picture is one flat
    mid-tone colour. ImageError when the picture is blank black or white.
    """
    array = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    colour, near = _border_colour(array)
    if near < UNIFORM_BORDER:
        return None
    content = np.abs(array.astype(np.int16) - colour).max(axis=2) > BORDER_TOLERANCE  # (H, W)
    # Rows/columns count as content only with a few content pixels: JPEG specks do not.
    h, w = content.shape
    rows = np.flatnonzero(content.sum(1) >= max(2, 0.005 * w))
    cols = np.flatnonzero(content.sum(0) >= max(2, 0.005 * h))
    if content.mean() < MIN_CONTENT or len(rows) == 0 or len(cols) == 0:
        # Black (lens cap, failed capture) and white (empty page) pictures are refused; another
        # flat colour is passed on unframed (callers use such swatches as stand-in photos).
        shade = "black" if colour.max() < 40 else "white" if colour.min() > 215 else None
        if shade is None:
            return None
        raise ImageError(f"the image is blank ({shade}): there is no chair to see")
    return tuple(int(c) for c in colour), (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def frame_chair(image: Image.Image) -> Image.Image:
    """RGB photo -> square picture centred on the chair (see the module docstring)."""
    found = content_box(image)
    if found is None:
        return square_pad(image)
    colour, (x0, y0, x1, y1) = found
    w, h = image.size
    side = max(x1 - x0, y1 - y0) * (1 + 2 * CONTENT_MARGIN)
    if side >= 0.95 * max(w, h):  # already framed (e.g. preprocessed before): just square it
        return square_pad(image, fill=colour)
    side = int(round(side))
    left = int(round((x0 + x1 - side) / 2))
    top = int(round((y0 + y1 - side) / 2))
    out = Image.new("RGB", (side, side), colour)
    out.paste(image.crop((left, top, left + side, top + side)), (0, 0))
    # crop() fills outside the photo with black: paint those parts with the border colour.
    inside = Image.new("L", (side, side), 0)
    inside.paste(255, (max(0, -left), max(0, -top), min(side, w - left), min(side, h - top)))
    return Image.composite(out, Image.new("RGB", (side, side), colour), inside)


def prepare_image(source, size: int) -> Image.Image:
    """Any supported input -> the RGB (size, size) PIL picture the encoder sees."""
    image = frame_chair(to_rgb(open_image(source)))
    return image.resize((size, size), Image.Resampling.BILINEAR)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL picture -> float32 (3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def preprocess(source, size: int) -> tuple[torch.Tensor, Image.Image]:
    """Any supported input -> (float32 (3, size, size) in [0, 1], the PIL image the model sees)."""
    image = prepare_image(source, size)
    return to_tensor(image), image
