"""vaegan.photo_render (photo-like renders of voxel chairs) and the preprocessing every real photo
goes through (vaegan.images): shapes, determinism, visibility, viewpoints, the rasteriser,
offline backgrounds, and bad input with clear messages and bounded memory."""

import io
import socket
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from vaegan import photo_render as pr
from vaegan.errors import ImageError
from vaegan.images import CONTENT_MARGIN, prepare_image, preprocess
from vaegan.meshing import voxels_to_mesh


def box_chair(r: int = 32) -> np.ndarray:
    g = np.zeros((r, r, r), np.float32)
    g[6:26, 7:25, 12:14] = 1  # seat
    for x in (6, 24):
        for y in (7, 23):
            g[x:x + 2, y:y + 2, 4:12] = 1  # legs
    g[24:26, 7:25, 14:28] = 1  # backrest at high axis 0
    return g


@pytest.fixture(scope="module")
def mesh():
    return voxels_to_mesh(box_chair())


# ----------------------------------------------------------------------------- renderer
@pytest.mark.parametrize("size", [32, 128])
def test_render_photo_shape_dtype_and_determinism(mesh, size):
    a = pr.render_photo(box_chair(), 7, size=size)
    assert a.shape == (size, size, 3) and a.dtype == np.uint8
    assert np.array_equal(a, pr.render_photo(box_chair(), 7, size=size))  # same seed, same picture
    assert not np.array_equal(a, pr.render_photo(box_chair(), 8, size=size))
    assert np.array_equal(pr.render_photo(mesh, np.random.default_rng(3), size=size),
                          pr.render_photo(mesh, np.random.default_rng(3), size=size))


def test_render_views_are_reproducible_and_varied():
    images, params = pr.render_views(box_chair(), 6, seed=11, size=64)
    again, _ = pr.render_views(box_chair(), 6, seed=11, size=64)
    assert np.array_equal(images, again)
    assert len({p.azimuth for p in params}) == 6 and len({p.background for p in params}) > 1
    assert all(0 <= p.azimuth < 360 and 0 <= p.elevation <= 40 for p in params)



def test_render_views_redraws_a_view_the_preprocessing_refuses(monkeypatch):
    """A view that comes out blank (dark chair, dark background, tight framing) is drawn again,
    and a chair that never renders raises instead of looping (found building the training set)."""
    real, calls = pr.render_photo, {"n": 0}

    def blank_first(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ImageError("the image is blank (black): there is no chair to see")
        return real(*args, **kwargs)

    monkeypatch.setattr(pr, "render_photo", blank_first)
    images, params = pr.render_views(box_chair(), 3, seed=5, size=32)
    assert calls["n"] == 4 and len(params) == 3 and images.std() > 0

    def always_blank(*args, **kwargs):
        raise ImageError("the image is blank (black): there is no chair to see")

    monkeypatch.setattr(pr, "render_photo", always_blank)
    with pytest.raises(ImageError, match="blank"):
        pr.render_views(box_chair(), 1, seed=5, size=32)

def test_chair_is_visible_against_the_background(mesh):
    bg = np.full((128, 128, 3), 0.2, np.float32)
    params = pr.PhotoParams(color=(0.9, 0.7, 0.4), shadow=0.0)
    image, mask = pr.render_view(mesh, params, 128, bg)
    assert 0.05 < mask.mean() < 0.6
    fg = image[mask]
    assert np.abs(fg - 0.2).max(axis=1).mean() > 0.2  # the chair pixels differ from the background
    assert np.allclose(image[~mask], 0.2)  # no shadow asked: the background is untouched
    ys, xs = np.nonzero(mask)
    long_side = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    assert abs(long_side - params.chair_fraction * 128) <= 3  # framed as asked
    assert abs((xs.min() + xs.max()) / 2 - 63.5) <= 3  # offset (0.5, 0.5): centred


def test_viewpoint_changes_the_picture(mesh):
    def mask(az, el):
        return pr.render_view(mesh, pr.PhotoParams(azimuth=az, elevation=el, shadow=0.0), 96)[1]

    front, side, high = mask(0, 10), mask(90, 10), mask(0, 40)
    assert (front != side).mean() > 0.05 and (front != high).mean() > 0.05
    # Seen from the front the box chair is symmetric left/right; from the side it is not.
    assert (front != front[:, ::-1]).mean() < 0.03 and (side != side[:, ::-1]).mean() > 0.05


def test_front_view_shows_the_backrest_behind_the_seat(mesh):
    """Azimuth 0 looks at the chair's front (-x): the backrest (high axis 0) is farther away."""
    params = pr.PhotoParams(azimuth=0, elevation=10, distance=2.5, target=(0, 0, 0), shadow=0.0)
    rot, eye = pr.look_at(params.azimuth, params.elevation, params.distance)
    assert eye[0] < 0  # the camera stands in front of the chair
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-9)


def test_rasterize_covers_pixels_and_keeps_the_nearest():
    # A right triangle covering the lower-left half of a 10 x 10 image, depth 2.
    px = np.array([0.0, 10.0, 0.0, 0.0, 10.0, 0.0])
    py = np.array([0.0, 10.0, 10.0, 0.0, 10.0, 10.0])
    depth = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    face, bary, z = pr.rasterize(px, py, depth, np.array([[0, 1, 2]]), 10, 10)
    covered = face == 0
    assert covered.sum() == 55  # pixel centres on or below the diagonal
    assert np.allclose(bary[covered].sum(1), 1, atol=1e-5) and np.allclose(z[covered], 2)
    assert (face[~covered] == -1).all()
    # A second, nearer triangle over the same pixels wins the z-buffer.
    face, _, z = pr.rasterize(px, py, depth, np.array([[0, 1, 2], [3, 4, 5]]), 10, 10)
    assert (face[covered] == 1).all() and np.allclose(z[covered], 1)


@pytest.mark.parametrize("kind", list(pr.BACKGROUND_KINDS))
def test_backgrounds(kind):
    rng = np.random.default_rng(0)
    bg = pr.background(rng, 48, 64, kind, chair_box=(10, 5, 40, 45))
    assert bg.shape == (48, 64, 3) and bg.dtype == np.float32 and 0 <= bg.min() and bg.max() <= 1


def test_studio_background_is_a_white_product_shot():
    bg = pr.background(np.random.default_rng(0), 48, 64, "studio")
    assert bg.min() > 0.85 and bg[24, 32].min() > 0.94


def test_cushion_colours_the_seat_and_nothing_else(mesh):
    """A seat pad changes the colour around the seat height only: legs and backrest top keep
    the chair's own colour."""
    assert abs(pr.seat_height(mesh) - mesh.vertices[mesh.faces].mean(1)[:, 2][
        np.argmax(mesh.area_faces * (mesh.face_normals[:, 2] > 0.8))]) < 0.1
    base = pr.PhotoParams(azimuth=-30, elevation=25, color=(0.3, 0.3, 0.3), background="plain", shadow=0.0,
                          noise=0.0)
    padded = pr.PhotoParams(**{**base.__dict__, "cushion_color": (0.9, 0.1, 0.1)})
    plain, mask = pr.render_view(mesh, base, 96)
    red, _ = pr.render_view(mesh, padded, 96)
    changed = (np.abs(red - plain).max(-1) > 0.1) & mask
    assert 0.05 < changed.sum() / mask.sum() < 0.6
    rows = np.flatnonzero(changed.any(1))
    chair_rows = np.flatnonzero(mask.any(1))
    assert rows.min() > chair_rows.min() and rows.max() < chair_rows.max()  # not the top, not the feet


def test_cut_framing_crops_into_the_chair(mesh):
    """With `cut` the frame takes part of the chair off one side: what is left is scaled up to
    fill the picture, so the chair covers more of it (prepare_image keeps its margin)."""
    params = pr.sample_params(np.random.default_rng(1))
    params.framing, params.cut, params.background, params.occluder = "tight", 0.25, "plain", False
    params.color, params.texture, params.second_color, params.cushion_color = (0.2, 0.2, 0.2), "plain", None, None

    def chair_cover(cut: float) -> float:
        params.cut = cut
        image = pr.render_photo(mesh, np.random.default_rng(2), size=64, params=params)
        return float((image.astype(int).sum(-1) < 3 * 120).mean())  # the dark chair on a light background

    assert chair_cover(0.25) > 1.15 * chair_cover(0.0)


def test_background_photos_ship_with_the_packages(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    pr._photo_library.cache_clear()
    colour, grey = pr._photo_library()
    assert len(colour) >= 6 and len(grey) >= 5
    assert all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in colour)


def test_photo_sheet(tmp_path):
    sheet = pr.photo_sheet([box_chair(), box_chair()[:, ::-1].copy()], per_chair=4, size=48, cols=4)
    assert sheet.size == (4 * 50 + 2, 2 * 50 + 2)


# ----------------------------------------------------------------------------- preprocessing
def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def _header_only_png(side: int) -> bytes:
    """A valid 16x16 PNG whose header claims side x side pixels (never decoded)."""
    data = bytearray(_png(Image.new("RGB", (16, 16))))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", side, side)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def photo(size=(90, 60)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("source, reason", [
    (b"just some text, not a picture", "not an image"),
    (_png(photo())[:300], "damaged or truncated"),
    (_header_only_png(12000), "megapixels"),
    (_header_only_png(20000), "far too large"),
    (_png(Image.new("RGB", (1, 1))), "at least"),
    (_png(Image.new("RGB", (300, 200))), "blank \\(black\\)"),
    (_png(Image.new("L", (300, 200), 255)), "blank \\(white\\)"),
    (np.zeros((0, 5, 3), np.uint8), "shape"),
])
def test_bad_photos_get_a_clear_message(source, reason):
    with pytest.raises(ImageError, match=reason):
        preprocess(source, 32)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(mode):
    image = photo((80, 50))
    image = image.convert("L").convert(mode) if mode in ("I;16", "I", "F", "1") else image.convert(mode)
    tensor, seen = preprocess(image, 32)
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32 and seen.mode == "RGB"
    assert 0 <= float(tensor.min()) and float(tensor.max()) <= 1


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 30), (255, 0, 0))
    image.paste((0, 0, 255), (30, 0, 60, 30))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 deg clockwise
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    seen = np.asarray(preprocess(buf.getvalue(), 30)[1]).astype(int)
    # Upright, the red half is on top and the blue half at the bottom.
    assert seen[5, 15, 0] > 200 and seen[5, 15, 2] < 60
    assert seen[25, 15, 2] > 200 and seen[25, 15, 0] < 60


def test_plain_background_photo_is_cropped_to_the_chair():
    image = Image.new("RGB", (800, 500), (250, 250, 250))
    image.paste((120, 60, 30), (560, 100, 640, 400))  # a narrow 'chair' far right
    seen = prepare_image(image, 100)
    dark = np.asarray(seen).min(axis=2) < 200
    ys, xs = np.nonzero(dark)
    assert abs((ys.max() - ys.min() + 1) - 100 / (1 + 2 * CONTENT_MARGIN)) <= 2  # fills the height
    assert abs((xs.min() + xs.max()) / 2 - 49.5) <= 1.5  # centred
    assert np.array_equal(np.asarray(prepare_image(seen, 100)), np.asarray(seen))  # idempotent


def test_busy_photo_is_only_padded_and_preprocessing_is_idempotent():
    image = photo((60, 90))  # portrait noise: a busy border, so it is taken as framed
    seen = prepare_image(image, 64)
    assert seen.size == (64, 64)
    padded = np.asarray(seen)
    assert (padded[:, :5] == 255).all() and (padded[:, -5:] == 255).all()  # white bars left and right
    assert np.array_equal(np.asarray(prepare_image(seen, 64)), padded)


def test_large_photo_is_decoded_small():
    big = Image.new("RGB", (6000, 4000), (200, 190, 180))
    big.paste((40, 30, 20), (2000, 1000, 3500, 3600))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=80)
    del big
    with Image.open(io.BytesIO(buf.getvalue())) as probe:
        probe.draft("RGB", (1024, 1024))
        assert probe.size == (3000, 2000)  # JPEG draft decoding at 1/2 scale: 1/4 of the memory
    tensor, _ = preprocess(buf.getvalue(), 64)
    assert tensor.shape == (3, 64, 64)


def test_photo_without_a_chair_still_gives_a_picture():
    """No detector decides 'chair or not': a busy photo of something else is accepted (the
    app shows what the encoder saw); only flat pictures are refused."""
    import skimage.data

    tensor, seen = preprocess(skimage.data.coffee(), 32)
    assert tensor.shape == (3, 32, 32) and seen.size == (32, 32)
    # A flat mid-tone swatch is passed on (padded), unlike blank black or white pictures.
    swatch = np.asarray(preprocess(Image.new("RGB", (48, 40), (200, 120, 80)), 32)[1])
    assert (swatch[8:24, 8:24] == (200, 120, 80)).all()
