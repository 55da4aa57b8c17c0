"""Photo-like renders of voxel chairs: the paired (photo, voxels) data the image encoder trains on.

`render_photo(grid, rng)` turns one voxel chair, through its marching-cubes mesh, into an RGB
picture that looks like a cropped photo of a chair in a room, ready for the encoder:

- camera: perspective pinhole looking at the chair from a random azimuth (0-360 deg), elevation
  (0-40 deg), distance (1.4-3.5 unit-cube sides, i.e. weak to strong perspective) and a little
  roll, the look-at point jittered; the chair is then placed at a random scale and offset in
  the canvas;
- shading: smooth (per-vertex normal) Lambert from a random key light, a sky-like ambient
  term and Blinn-Phong specular, computed in linear light and gamma-encoded; a random
  furniture colour (woods, white/black/grey paints, fabric colours), optionally solid wood
  grain or a fabric weave, optionally a second material (metal, dark wood) below a random
  height, as on swivel chairs and painted frames; sometimes an upholstered seat pad of a
  fabric colour (`seat_height` finds the seat);
- backgrounds: random crops of the colour photographs that scikit-image and scikit-learn
  ship inside their wheels (no download), tinted greyscale textures from the same packages,
  procedural rooms (wall + plank / carpet / tile floor with a horizon), gradients with
  low-frequency noise, plain colours, and white product-shot sweeps ("studio"); a soft
  contact and cast shadow on the ground;
- photography: occluding table edges, exposure / contrast / white-balance jitter, sensor
  noise, low resolution and JPEG compression;
- framing: most pictures are cut to the chair's box with a random margin (like the IKEA
  crops and like a user who crops the photo), some with one side of the frame cutting into
  the chair (`cut`), the rest keep the whole canvas (the chair at a random scale and
  offset); then `vaegan.images.prepare_image`, the same function every real
  photo goes through, makes the (S, S) picture. Training and use see one preprocessing.

Why a small numpy rasteriser: there is no GPU or display here, pyrender needs OSMesa/EGL
system libraries that the Space and CI images do not have, and a voxel ray caster would show
blocky cubes, not the smooth surfaces of real chairs. The mesh has only 2-3k triangles of a
few pixels each, so a vectorised per-triangle bounding-box rasteriser with a z-buffer
(`rasterize`) costs a few milliseconds; anti-aliasing comes from rendering the canvas at
about twice the output size and letting `prepare_image` downscale it (Pillow's
bilinear downscaling filters over the whole footprint).

Frames: world = the mesh frame of `vaegan.meshing` (unit cube, Z-up, the backrest toward
+x, so the chair faces -x). Azimuth 0 looks at the chair's front and positive azimuths turn
the camera toward +y, exactly as `vaegan.render.view_rotation`.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import trimesh
from PIL import Image
from scipy import ndimage

from .errors import ImageError
from .images import prepare_image
from .meshing import voxels_to_mesh
from .render import contact_sheet, view_rotation

__all__ = [
    "PhotoParams",
    "sample_params",
    "look_at",
    "rasterize",
    "render_view",
    "background",
    "render_photo",
    "render_views",
    "photo_sheet",
]

# --------------------------------------------------------------------------- colours
# sRGB 0-255 colours of real furniture, in three families (weights in `_FAMILIES`).
WOODS = [(222, 192, 150), (205, 160, 110), (180, 130, 80), (150, 100, 60), (110, 75, 45), (70, 45, 30),
         (45, 35, 30)]
NEUTRALS = [(238, 238, 232), (225, 220, 205), (200, 200, 198), (140, 140, 140), (80, 80, 82), (40, 40, 42),
            (25, 25, 27)]
FABRICS = [(170, 40, 40), (210, 40, 35), (40, 50, 90), (140, 170, 200), (200, 185, 160), (80, 110, 70),
           (200, 160, 50), (40, 110, 120), (220, 90, 150), (220, 110, 40), (160, 190, 50), (120, 60, 90)]
METALS = [(190, 192, 196), (215, 215, 220), (120, 120, 125), (40, 40, 42)]
_FAMILIES = (("wood", WOODS, 0.35), ("neutral", NEUTRALS, 0.35), ("fabric", FABRICS, 0.30))
# Room colours: walls are mostly light, floors wood or carpet.
WALLS = [(235, 232, 225), (225, 225, 225), (210, 200, 185), (190, 200, 205), (215, 205, 180), (160, 150, 140),
         (240, 235, 210), (200, 215, 200)]
BACKGROUND_KINDS = {"room": 0.32, "photo": 0.27, "texture": 0.09, "gradient": 0.10, "plain": 0.10, "studio": 0.12}


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.power(np.clip(c, 0.0, 1.0), 2.2)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    return np.power(np.clip(c, 0.0, 1.0), 1 / 2.2)


def _jitter_colour(rng: np.random.Generator, rgb, amount: float = 0.08) -> np.ndarray:
    """sRGB 0-255 -> float sRGB [0, 1] with a small brightness and per-channel jitter."""
    c = np.asarray(rgb, np.float64) / 255.0
    c = c * rng.uniform(1 - amount * 1.5, 1 + amount * 1.5) + rng.normal(0, amount / 3, 3)
    return np.clip(c, 0.02, 0.98)


# --------------------------------------------------------------------------- parameters
@dataclass
class PhotoParams:
    """Every random choice of one render (see `sample_params` for the distributions)."""

    azimuth: float = -35.0  # degrees; 0 looks at the chair's front
    elevation: float = 20.0  # degrees above the horizon
    distance: float = 2.5  # camera to look-at point, in unit-cube sides
    roll: float = 0.0  # degrees
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)  # look-at point
    smooth: float = 0.3  # Taubin smoothing of the mesh (vaegan.meshing)
    color: tuple[float, float, float] = (0.72, 0.55, 0.38)  # sRGB [0, 1]
    family: str = "wood"
    texture: str = "plain"  # "plain", "wood" or "fabric"
    second_color: tuple[float, float, float] | None = None  # material below `split_height`
    split_height: float = 0.0  # fraction of the chair's height (0 bottom, 1 top)
    cushion_color: tuple[float, float, float] | None = None  # a fabric pad on the seat (and back)
    specular: float = 0.15
    shininess: float = 24.0
    light_azimuth: float = 30.0  # degrees, world frame
    light_elevation: float = 55.0
    light_strength: float = 1.0
    ambient: float = 0.35
    background: str = "room"
    shadow: float = 0.5  # 0 = none
    framing: str = "tight"  # "tight" (cut to the chair + margin) or "loose" (whole canvas)
    cut: float = 0.0  # tight framing: the frame cuts this fraction off one side of the chair
    chair_fraction: float = 0.75  # the chair's long side / the canvas side
    offset: tuple[float, float] = (0.5, 0.5)  # where the chair's box sits in the free space (x, y)
    occluder: bool = False
    exposure: float = 1.0
    contrast: float = 1.0
    noise: float = 0.01
    low_res: float = 1.0  # <1: the crop is shrunk to this fraction before preprocessing
    jpeg_quality: int = 0  # 0 = no JPEG round trip


def sample_params(rng: np.random.Generator) -> PhotoParams:
    """One random draw of every rendering choice."""
    fam = rng.choice(len(_FAMILIES), p=[f[2] for f in _FAMILIES])
    family, colours, _ = _FAMILIES[fam]
    color = _jitter_colour(rng, colours[rng.integers(len(colours))])
    texture = "plain"
    if family == "wood" and rng.random() < 0.7:
        texture = "wood"
    elif family == "fabric" and rng.random() < 0.5:
        texture = "fabric"
    second, split = None, 0.0
    if rng.random() < 0.3:  # metal base / dark frame under a seat of another material
        second = _jitter_colour(rng, (METALS + WOODS[4:])[rng.integers(len(METALS) + 3)])
        split = float(rng.uniform(0.25, 0.55))
    glossy = family == "neutral" and rng.random() < 0.5  # painted or plastic
    cushion = None
    if rng.random() < 0.25:  # upholstered seat pad in a fabric colour
        cushion = _jitter_colour(rng, (FABRICS + NEUTRALS)[rng.integers(len(FABRICS) + len(NEUTRALS))])
    kinds, weights = zip(*BACKGROUND_KINDS.items())
    bg = str(rng.choice(kinds, p=np.asarray(weights) / sum(weights)))
    loose = bg == "plain" or rng.random() < 0.25
    return PhotoParams(
        azimuth=float(rng.uniform(0, 360)),
        elevation=float(rng.uniform(0, 40)),
        distance=float(rng.uniform(1.4, 3.5)),
        roll=float(rng.normal(0, 2.0)),
        target=tuple(float(v) for v in rng.normal(0, 0.03, 3)),
        smooth=float(rng.choice([0.0, 0.3, 0.6])),
        color=tuple(float(c) for c in color),
        family=family,
        texture=texture,
        second_color=None if second is None else tuple(float(c) for c in second),
        split_height=split,
        cushion_color=None if cushion is None else tuple(float(c) for c in cushion),
        specular=float(rng.uniform(0.25, 0.6) if glossy else rng.uniform(0.0, 0.2)),
        shininess=float(rng.uniform(20, 80) if glossy else rng.uniform(4, 20)),
        light_azimuth=float(rng.uniform(0, 360)),
        light_elevation=float(rng.uniform(25, 80)),
        light_strength=float(rng.uniform(0.6, 1.2)),
        ambient=float(rng.uniform(0.2, 0.5)),
        background=bg,
        shadow=float(rng.uniform(0.25, 0.7) if rng.random() < 0.7 else 0.0),
        framing="loose" if loose else "tight",
        cut=float(rng.uniform(0.05, 0.25)) if not loose and rng.random() < 0.15 else 0.0,
        chair_fraction=float(rng.uniform(0.35, 0.9) if loose else rng.uniform(0.6, 0.8)),
        offset=(float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.05, 0.95))),
        occluder=bool(not loose and rng.random() < 0.2),
        exposure=float(np.exp(rng.normal(0, 0.2))),
        contrast=float(rng.uniform(0.8, 1.15)),
        noise=float(rng.uniform(0.0, 0.03)),
        low_res=float(rng.uniform(0.35, 1.0) if rng.random() < 0.3 else 1.0),
        jpeg_quality=int(rng.integers(35, 95)) if rng.random() < 0.5 else 0,
    )


# --------------------------------------------------------------------------- camera
def look_at(azimuth: float, elevation: float, distance: float, target=(0.0, 0.0, 0.0),
            roll: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """-> (rotation (3, 3) with rows = camera right, up, backward in world coordinates, eye (3,))."""
    rot = view_rotation(azimuth, elevation).copy()
    if roll:
        c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
        right, up = rot[0].copy(), rot[1].copy()
        rot[0], rot[1] = c * right + s * up, -s * right + c * up
    eye = np.asarray(target, np.float64) + distance * rot[2]
    return rot, eye


def _project(points: np.ndarray, rot: np.ndarray, eye: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points (N, 3) -> image-plane u, v (right, up; focal length 1) and depth (N,)."""
    cam = (points - eye) @ rot.T  # (N, 3): x right, y up, z backward
    depth = -cam[:, 2]
    return cam[:, 0] / depth, cam[:, 1] / depth, depth


# --------------------------------------------------------------------------- rasteriser
def rasterize(px: np.ndarray, py: np.ndarray, depth: np.ndarray, faces: np.ndarray, height: int, width: int,
              keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffered triangle rasterisation, vectorised over the pixels of all triangles' boxes.

    px, py: vertex pixel coordinates (V,) (x right, y down; pixel (i, j) has its centre at
    (j + 0.5, i + 0.5)); depth (V,) > 0; faces (F, 3); keep: optional bool (F,) of faces to
    draw. -> face index (H, W) int64 (-1 = empty), perspective-correct barycentric
    coordinates (H, W, 3) float32 and depth (H, W) float32 (inf = empty).
    """
    faces = np.asarray(faces)
    x, y, z = px[faces], py[faces], depth[faces]  # (F, 3) each
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    x0 = np.clip(np.ceil(x.min(1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(x.max(1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(y.min(1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(y.max(1) - 0.5), -1, height - 1).astype(np.int64)
    ok = (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-9) & (z.min(1) > 1e-6)
    if keep is not None:
        ok &= keep
    idx = np.flatnonzero(ok)
    face_buf = np.full(height * width, -1, np.int64)
    bary_buf = np.zeros((height * width, 3), np.float32)
    z_buf = np.full(height * width, np.inf, np.float64)
    if len(idx) == 0:
        return face_buf.reshape(height, width), bary_buf.reshape(height, width, 3), \
            z_buf.reshape(height, width).astype(np.float32)
    nx, ny = x1[idx] - x0[idx] + 1, y1[idx] - y0[idx] + 1
    counts = nx * ny
    slot = np.repeat(np.arange(len(idx)), counts)  # (N,) candidate fragments: position in idx
    tri = idx[slot]
    local = np.arange(len(tri)) - np.repeat(np.cumsum(counts) - counts, counts)
    row_len = np.repeat(nx, counts)
    cx = np.repeat(x0[idx], counts) + local % row_len
    cy = np.repeat(y0[idx], counts) + local // row_len
    sx, sy = cx + 0.5, cy + 0.5
    # Barycentric coordinate k is an affine function a_k x + b_k y + c_k of the pixel centre
    # (the edge function opposite vertex k over the signed area): 3 x 3 coefficients per face.
    xs, ys, inv_area = x[idx], y[idx], 1.0 / area[idx]
    coef = []
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3
        a = -(ys[:, j] - ys[:, i]) * inv_area
        b = (xs[:, j] - xs[:, i]) * inv_area
        c = -(a * xs[:, i] + b * ys[:, i])
        coef.append((a[slot], b[slot], c[slot]))
    b0, b1, b2 = (a * sx + b * sy + c for a, b, c in coef)
    inside = (b0 >= -1e-7) & (b1 >= -1e-7) & (b2 >= -1e-7)
    tri, cx, cy = tri[inside], cx[inside], cy[inside]
    bary = np.stack([b0[inside], b1[inside], b2[inside]], 1)  # (M, 3), screen space
    bz = bary / z[tri]  # perspective-correct interpolation through 1/z
    inv = bz.sum(1)
    frag_z = 1.0 / inv
    pix = cy * width + cx
    np.minimum.at(z_buf, pix, frag_z)
    win = frag_z <= z_buf[pix]
    face_buf[pix[win]] = tri[win]
    bary_buf[pix[win]] = (bz[win] / inv[win, None]).astype(np.float32)
    return face_buf.reshape(height, width), bary_buf.reshape(height, width, 3), \
        z_buf.reshape(height, width).astype(np.float32)


# --------------------------------------------------------------------------- materials
def _wave_noise(points: np.ndarray, rng_seed: int, octaves: int = 4, base: float = 3.0) -> np.ndarray:
    """Smooth solid noise in [-1, 1] from a few random 3-D sinusoids: (N, 3) -> (N,)."""
    rng = np.random.default_rng(rng_seed)
    out = np.zeros(len(points))
    total = 0.0
    for o in range(octaves):
        freq = base * 2 ** o
        amp = 0.5 ** o
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out += amp * np.sin(freq * points @ d * 2 * np.pi + rng.uniform(0, 2 * np.pi))
        total += amp
    return out / total


def _albedo(points: np.ndarray, params: PhotoParams, z_range: tuple[float, float], seed: int,
            seat_z: float | None = None) -> np.ndarray:
    """Surface points (N, 3) -> linear-light albedo (N, 3); `seat_z` is where a cushion lies."""
    base = np.asarray(params.color)
    albedo = np.tile(base, (len(points), 1))
    rng = np.random.default_rng(seed)
    if params.texture == "wood":
        axis = np.array([0.0, 0.0, 1.0]) if rng.random() < 0.5 else np.array([1.0, 0.0, 0.0])
        axis = axis + rng.normal(0, 0.15, 3)
        axis /= np.linalg.norm(axis)
        centre = rng.normal(0, 0.5, 3)
        rel = points - centre
        radial = np.linalg.norm(rel - np.outer(rel @ axis, axis), axis=1)
        rings = radial * rng.uniform(10, 35) + 1.5 * _wave_noise(points, seed + 1, base=2.0)
        grain = 0.5 + 0.5 * np.sin(2 * np.pi * rings)
        grain = grain ** rng.uniform(1.5, 4)
        dark = base * rng.uniform(0.65, 0.85)
        albedo = dark + (base - dark) * (1 - grain)[:, None]
    elif params.texture == "fabric":
        f = rng.uniform(120, 220)
        u = np.sin(f * (points[:, 0] + points[:, 2]))
        v = np.sin(f * (points[:, 1] - points[:, 2]))
        weave = 0.9 + 0.08 * u * v + 0.05 * _wave_noise(points, seed + 2, base=8.0)
        albedo = albedo * weave[:, None]
    if params.second_color is not None:
        lo, hi = z_range
        below = points[:, 2] < lo + params.split_height * (hi - lo)
        albedo[below] = np.asarray(params.second_color)
    if params.cushion_color is not None and seat_z is not None:
        # A pad from a little below the seat surface to a little above it, weave-textured.
        lo, hi = z_range
        pad = (points[:, 2] > seat_z - 0.06 * (hi - lo)) & (points[:, 2] < seat_z + 0.03 * (hi - lo))
        f = rng.uniform(150, 250)
        weave = 0.9 + 0.08 * np.sin(f * points[pad, 0]) * np.sin(f * points[pad, 1])
        albedo[pad] = np.asarray(params.cushion_color) * weave[:, None]
    return _srgb_to_linear(albedo)


def seat_height(mesh: trimesh.Trimesh) -> float:
    """z of the seat: the height with the most upward-facing surface area in the middle of the
    chair's height (where a cushion goes)."""
    z = mesh.triangles_center[:, 2]
    lo, hi = float(z.min()), float(z.max())
    up = (mesh.face_normals[:, 2] > 0.8) & (z > lo + 0.15 * (hi - lo)) & (z < lo + 0.75 * (hi - lo))
    if not up.any():
        return lo + 0.45 * (hi - lo)
    hist, edges = np.histogram(z[up], bins=16, range=(lo, hi), weights=mesh.area_faces[up])
    return float(edges[hist.argmax()] + 0.5 * (edges[1] - edges[0]))


def _light_dir(params: PhotoParams) -> np.ndarray:
    a, e = math.radians(params.light_azimuth), math.radians(params.light_elevation)
    return np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])


def _shade(mesh: trimesh.Trimesh, face: np.ndarray, bary: np.ndarray, eye: np.ndarray, params: PhotoParams,
           seed: int) -> np.ndarray:
    """Covered pixels' face ids (P,) and barycentrics (P, 3) -> linear RGB (P, 3)."""
    tri = mesh.faces[face]  # (P, 3)
    points = np.einsum("pk,pkd->pd", bary, mesh.vertices[tri])  # (P, 3)
    normals = np.einsum("pk,pkd->pd", bary, mesh.vertex_normals[tri])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    view = eye - points
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    flip = (normals * view).sum(1) < 0  # silhouette pixels of smooth normals: face the camera
    normals[flip] *= -1
    light = _light_dir(params)
    lambert = np.clip(normals @ light, 0, None)
    sky = 0.75 + 0.25 * normals[:, 2]  # more light from above than from the floor
    half = light + view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    spec = np.clip((normals * half).sum(1), 0, None) ** params.shininess
    zr = (float(mesh.vertices[:, 2].min()), float(mesh.vertices[:, 2].max()))
    seat = seat_height(mesh) if params.cushion_color is not None else None
    albedo = _albedo(points, params, zr, seed, seat)
    lit = albedo * (params.ambient * sky + params.light_strength * lambert)[:, None]
    return lit + (params.specular * params.light_strength * spec)[:, None]


# --------------------------------------------------------------------------- backgrounds
@lru_cache(maxsize=1)
def _photo_library() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(colour photos, greyscale textures) that ship inside the scikit-image / scikit-learn
    wheels: loading them never touches the network."""
    import skimage.data as sk

    colour, grey = [], []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        colour.append(np.asarray(getattr(sk, name)())[..., :3])
    left, right, _ = sk.stereo_motorcycle()
    colour += [np.asarray(left), np.asarray(right)]
    try:
        from sklearn.datasets import load_sample_images

        colour += [np.asarray(im) for im in load_sample_images().images]  # china, flower
    except Exception:  # noqa: BLE001 - optional extra photos
        pass
    for name in ("brick", "grass", "gravel", "camera", "clock", "coins", "moon"):
        grey.append(np.asarray(getattr(sk, name)()))
    return colour, grey


def _random_crop(rng: np.random.Generator, image: np.ndarray, h: int, w: int) -> np.ndarray:
    """A random crop of `image` with the aspect of (h, w), resized to it: float sRGB."""
    H, W = image.shape[:2]
    scale = rng.uniform(0.3, 1.0)
    ch = int(min(H, W * h / w) * scale)
    cw = max(2, int(ch * w / h))
    ch = max(2, ch)
    top, left = rng.integers(0, H - ch + 1), rng.integers(0, W - cw + 1)
    crop = Image.fromarray(np.ascontiguousarray(image[top:top + ch, left:left + cw]))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR), np.float32) / 255.0
    return out if out.ndim == 3 else out[..., None].repeat(3, axis=2)


def _low_freq_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Smooth noise (h, w) in about [-1, 1]: a small random grid upsampled bicubically."""
    grid = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC), np.float32) / 127.5 - 1


def _floor(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A floor texture (h, w, 3) in sRGB: planks, carpet or tiles."""
    kind = rng.choice(["planks", "carpet", "tiles"], p=[0.55, 0.3, 0.15])
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if kind == "planks":
        base = _jitter_colour(rng, WOODS[rng.integers(len(WOODS))], 0.1)
        # Planks run toward the horizon: rows of boards get thinner with distance.
        persp = (yy + 0.3 * h) / (1.3 * h)
        board = np.floor((xx - w / 2) / (rng.uniform(12, 40) * persp) + 0.5 * (yy / h)).astype(np.int64)
        shade = 1 + 0.12 * np.sin(board * 12.9898) * np.cos(board * 4.1414)
        grain = 1 + 0.06 * np.sin(yy / rng.uniform(1.5, 4) + 3 * np.sin(board * 7.0))
        out = base[None, None] * (shade * grain)[..., None]
    elif kind == "carpet":
        base = _jitter_colour(rng, (WALLS + FABRICS)[rng.integers(len(WALLS) + len(FABRICS))], 0.1)
        out = base[None, None] * (1 + 0.08 * rng.normal(size=(h, w, 1)) + 0.1 * _low_freq_noise(rng, h, w)[..., None])
    else:
        a = _jitter_colour(rng, WALLS[rng.integers(len(WALLS))], 0.1)
        b = a * rng.uniform(0.6, 0.95)
        size = rng.uniform(10, 30)
        check = ((np.floor(xx / size) + np.floor(yy / size)) % 2).astype(np.float32)
        out = a[None, None] * (1 - check[..., None]) + b[None, None] * check[..., None]
    return np.clip(out, 0, 1).astype(np.float32)


def background(rng: np.random.Generator, h: int, w: int, kind: str = "room",
               chair_box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """A background picture float32 (h, w, 3) in sRGB [0, 1]; chair_box (x0, y0, x1, y1) puts a
    room's horizon behind the chair, above its feet."""
    if kind == "photo":
        colour, _ = _photo_library()
        out = _random_crop(rng, colour[rng.integers(len(colour))], h, w)
        out = out * rng.uniform(0.7, 1.15) + rng.normal(0, 0.04, 3)
        if rng.random() < 0.5:  # shallow depth of field
            out = ndimage.gaussian_filter(out, (rng.uniform(0.5, 3), rng.uniform(0.5, 3), 0))
    elif kind == "texture":
        _, grey = _photo_library()
        g = _random_crop(rng, grey[rng.integers(len(grey))], h, w)
        tint = _jitter_colour(rng, (WALLS + WOODS + FABRICS)[rng.integers(len(WALLS) + len(WOODS) + len(FABRICS))])
        out = g * tint * 1.4
    elif kind == "gradient":
        a = rng.uniform(0, 1, 3)
        b = rng.uniform(0, 1, 3)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle)) + 0.5
        out = a + (b - a) * np.clip(t, 0, 1)[..., None]
        out = out + 0.15 * _low_freq_noise(rng, h, w, int(rng.integers(3, 10)))[..., None]
    elif kind == "studio":  # a product shot: white sweep, a faint vignette
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2)
        out = np.ones((h, w, 3), np.float32) * rng.uniform(0.95, 1.0) - rng.uniform(0, 0.08) * r2[..., None]
    elif kind == "plain":
        colours = WALLS + NEUTRALS + [(255, 255, 255)] * 4
        out = np.ones((h, w, 3), np.float32) * _jitter_colour(rng, colours[rng.integers(len(colours))], 0.03)
    else:  # room: wall over floor, the horizon behind the chair
        if chair_box is None:
            horizon = int(h * rng.uniform(0.3, 0.7))
        else:
            x0, y0, x1, y1 = chair_box
            horizon = int(y0 + (y1 - y0) * rng.uniform(0.15, 0.75))
        horizon = int(np.clip(horizon, 1, h - 1))
        wall = _jitter_colour(rng, WALLS[rng.integers(len(WALLS))], 0.08)
        yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        out = np.ones((h, w, 3), np.float32) * wall * (1 + rng.uniform(-0.15, 0.15) * (yy - 0.5))
        if rng.random() < 0.25:  # striped wallpaper or panels
            period = rng.uniform(6, 40)
            stripes = 1 + 0.06 * np.sign(np.sin(np.arange(w) / period * 2 * np.pi))
            out *= stripes[None, :, None]
        out[horizon:] = _floor(rng, h - horizon, w)
        if rng.random() < 0.6:  # skirting board
            board = max(1, int(rng.uniform(0.01, 0.04) * h))
            out[max(0, horizon - board):horizon] = _jitter_colour(rng, NEUTRALS[rng.integers(3)], 0.05)
        out = out + 0.08 * _low_freq_noise(rng, h, w, 4)[..., None]
    return np.clip(out, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- one view
def _frame(u: np.ndarray, v: np.ndarray, canvas: int, params: PhotoParams) -> tuple[float, float, float]:
    """(scale, x offset, y offset) that map image-plane (u, v) to pixels: the chair's long side
    spans params.chair_fraction of the canvas, its box placed at params.offset of the free space."""
    du, dv = float(u.max() - u.min()), float(v.max() - v.min())
    scale = params.chair_fraction * canvas / max(du, dv, 1e-9)
    free_x, free_y = canvas - du * scale, canvas - dv * scale
    ox = free_x * params.offset[0] - float(u.min()) * scale
    oy = free_y * params.offset[1] + float(v.max()) * scale
    return scale, ox, oy


def render_view(mesh: trimesh.Trimesh, params: PhotoParams | None = None, size: int = 256,
                background_rgb: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render `mesh` (mesh frame) with `params` onto a (size, size) canvas.

    -> (float32 sRGB (size, size, 3) in [0, 1], bool chair mask (size, size)). The chair's long
    side spans params.chair_fraction of the canvas, placed at params.offset. `background_rgb`
    (size, size, 3) is drawn behind (white without it); the ground shadow darkens it. `seed`
    drives the procedural wood / fabric textures.
    """
    params = params or PhotoParams()
    rot, eye = look_at(params.azimuth, params.elevation, params.distance, params.target, params.roll)
    verts = np.asarray(mesh.vertices, np.float64)
    u, v, depth = _project(verts, rot, eye)
    scale, ox, oy = _frame(u, v, size, params)
    px, py = ox + u * scale, oy - v * scale
    # Back faces cannot be visible on a closed mesh: skip them (about half the work).
    centres = verts[mesh.faces].mean(1)
    front = (mesh.face_normals * (eye - centres)).sum(1) > 0
    face, bary, _ = rasterize(px, py, depth, mesh.faces, size, size, keep=front)
    mask = face >= 0
    bg = np.ones((size, size, 3), np.float32) if background_rgb is None else background_rgb.astype(np.float32)
    if params.shadow > 0:
        bg = bg * (1 - params.shadow * _shadow(verts, mesh.faces, params, rot, eye, scale, ox, oy, size))[..., None]
    image = bg.copy()
    if mask.any():
        lit = _shade(mesh, face[mask], bary[mask], eye, params, seed)
        image[mask] = _linear_to_srgb(lit * params.exposure)
    return image, mask


def _shadow(verts, faces, params: PhotoParams, rot, eye, scale, ox, oy, size) -> np.ndarray:
    """A soft shadow on the ground plane under the chair, (size, size) in [0, 1].

    Two shadows, cast along the key light and straight down (contact shadow), rasterised at
    a quarter of the resolution (they are blurred anyway: 4x cheaper) and upsampled.
    """
    low = max(8, size // 4)
    f = low / size
    ground = verts[:, 2].min()
    out = np.zeros((low, low), np.float32)
    light = _light_dir(params)
    light[2] = max(light[2], 0.35)
    for direction, weight, blur in ((light, 0.6, 0.02), (np.array([0.0, 0.0, 1.0]), 0.6, 0.035)):
        # Points slide along the light direction down to the ground plane.
        flat = verts - direction[None] * ((verts[:, 2] - ground) / direction[2])[:, None]
        u, v, depth = _project(flat, rot, eye)
        face, _, _ = rasterize((ox + u * scale) * f, (oy - v * scale) * f, depth, faces, low, low)
        soft = ndimage.gaussian_filter((face >= 0).astype(np.float32), blur * low)
        out = np.maximum(out, weight * np.clip(soft * 1.5, 0, 1))
    return np.asarray(Image.fromarray(out).resize((size, size), Image.Resampling.BILINEAR))


def _occlude(rng: np.random.Generator, image: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Paint a table edge or a post over part of the chair box (x0, y0, x1, y1), in place."""
    x0, y0, x1, y1 = box
    colour = _jitter_colour(rng, (WOODS + NEUTRALS)[rng.integers(len(WOODS) + len(NEUTRALS))]).astype(np.float32)
    side = int(rng.integers(4))
    frac = rng.uniform(0.1, 0.3)
    if side == 0:  # a table top in front of the chair's lower part
        rows = image[int(y1 - frac * (y1 - y0)):y1 + 4]
        rows[:] = colour * np.linspace(1.05, 0.85, len(rows), dtype=np.float32)[:, None, None]
    elif side == 1:  # a table edge over the upper part (the chair stands behind a table)
        image[max(0, y0 - 4):int(y0 + frac * (y1 - y0))] = colour
    else:  # a post or another chair's leg at one side
        width = max(2, int(frac * 0.5 * (x1 - x0)))
        left = x0 if side == 2 else x1 - width
        image[:, left:left + width] = colour * rng.uniform(0.6, 1.0)


def render_photo(grid_or_mesh, rng: np.random.Generator | int, size: int = 128, canvas: int | None = None,
                 params: PhotoParams | None = None, return_params: bool = False):
    """One voxel chair (R, R, R) or mesh -> a photo-like uint8 picture (size, size, 3).

    `rng` (a numpy Generator or a seed) draws every choice (`sample_params`) unless `params`
    is given. The canvas (default 2 x size) is rendered, framed (see the module docstring)
    and passed through `vaegan.images.prepare_image`, exactly like a real photo.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    params = params or sample_params(rng)
    canvas = canvas or 2 * size
    mesh = grid_or_mesh if isinstance(grid_or_mesh, trimesh.Trimesh) else voxels_to_mesh(grid_or_mesh,
                                                                                           smooth=params.smooth)
    # First place the chair, then make a background that knows where it stands.
    rot, eye = look_at(params.azimuth, params.elevation, params.distance, params.target, params.roll)
    u, v, _ = _project(np.asarray(mesh.vertices), rot, eye)
    scale, ox, oy = _frame(u, v, canvas, params)
    box = (ox + u.min() * scale, oy - v.max() * scale, ox + u.max() * scale, oy - v.min() * scale)
    bg = background(rng, canvas, canvas, params.background, box)
    image, mask = render_view(mesh, params, canvas, bg, seed=int(rng.integers(2**31)))
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:  # cannot happen for a non-empty mesh in view; keep the picture usable
        ys, xs = np.array([0, canvas - 1]), np.array([0, canvas - 1])
    cbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    if params.occluder:
        _occlude(rng, image, cbox)
    image = (image - 0.5) * params.contrast + 0.5
    image = image * _jitter_colour(rng, (255, 255, 255), 0.04) / 0.98
    image = image + params.noise * rng.standard_normal(image.shape, dtype=np.float32)
    pil = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
    if params.framing == "tight":
        x0, y0, x1, y1 = cbox
        bw, bh = x1 - x0, y1 - y0
        m = rng.uniform(-0.03, 0.12, 4)
        if params.cut > 0:  # the photographer's frame cuts into the chair on one side
            m[int(rng.integers(4))] = -params.cut
        crop = (int(round(x0 - m[0] * bw)), int(round(y0 - m[1] * bh)),
                int(round(x1 + m[2] * bw)), int(round(y1 + m[3] * bh)))
        crop = (max(0, crop[0]), max(0, crop[1]), min(canvas, crop[2]), min(canvas, crop[3]))
        pil = pil.crop(crop)
    if params.low_res < 1.0:
        w, h = pil.size
        pil = pil.resize((max(8, int(w * params.low_res)), max(8, int(h * params.low_res))),
                         Image.Resampling.BILINEAR)
    if params.jpeg_quality:
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=params.jpeg_quality)
        pil = Image.open(io.BytesIO(buf.getvalue()))
    out = np.asarray(prepare_image(pil, size), np.uint8)
    return (out, params) if return_params else out


MAX_REDRAWS = 8  # draws of a view's settings before a chair counts as unrenderable


def render_views(grid, n: int, seed: int, size: int = 128, canvas: int | None = None,
                 ) -> tuple[np.ndarray, list[PhotoParams]]:
    """n photo-like pictures of one chair -> (uint8 (n, size, size, 3), their parameters).

    Deterministic in (grid, n, seed, size, canvas); the mesh is made once per smoothing level.
    """
    rng = np.random.default_rng(seed)
    meshes: dict[float, trimesh.Trimesh] = {}
    images, params = np.empty((n, size, size, 3), np.uint8), []
    for i in range(n):
        for attempt in range(MAX_REDRAWS):
            p = sample_params(rng)
            if p.smooth not in meshes:
                meshes[p.smooth] = voxels_to_mesh(grid, smooth=p.smooth)
            try:
                images[i] = render_photo(meshes[p.smooth], rng, size, canvas, params=p)
                break
            except ImageError:
                # A dark chair on a dark background, framed tight, can come out as a picture
                # the photo preprocessing refuses as blank, as it would a real one: draw again.
                if attempt == MAX_REDRAWS - 1:
                    raise
        params.append(p)
    return images, params


def photo_sheet(grids, per_chair: int = 4, seed: int = 0, size: int = 128, cols: int = 8) -> Image.Image:
    """A contact sheet of `per_chair` renders of each grid (the model card's figure)."""
    tiles = []
    for i, grid in enumerate(grids):
        tiles += list(render_views(grid, per_chair, seed + i, size)[0])
    return contact_sheet(tiles, cols=cols)


def params_dict(params: PhotoParams) -> dict:
    """JSON-ready dict of one render's parameters."""
    return asdict(params)


def _main(argv=None) -> int:
    """`python -m vaegan.photo_render --data DIR [--sheet PNG] [--bench N]`: a contact sheet
    and the renderer's speed, on ModelNet `chair_*_1.mat` files."""
    import argparse
    import glob
    import os
    import time

    from .voxels import load_voxels

    parser = argparse.ArgumentParser(prog="python -m vaegan.photo_render", description=_main.__doc__)
    parser.add_argument("--data", required=True, help="folder of chair_<id>_1.mat (or train/ inside)")
    parser.add_argument("--sheet", default="", help="write a contact sheet PNG here")
    parser.add_argument("--chairs", type=int, default=16, help="chairs on the sheet / in the benchmark")
    parser.add_argument("--per-chair", type=int, default=4, help="renders per chair")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench", type=int, default=0, help="time this many renders (one process)")
    args = parser.parse_args(argv)
    folder = os.path.join(args.data, "train") if os.path.isdir(os.path.join(args.data, "train")) else args.data
    files = sorted(glob.glob(os.path.join(folder, "*_1.mat")))
    if not files:
        parser.error(f"no chair_*_1.mat files in {folder}")
    rng = np.random.default_rng(args.seed)
    picks = sorted(rng.choice(len(files), size=min(args.chairs, len(files)), replace=False))
    grids = [load_voxels(files[i]) for i in picks]
    if args.sheet:
        photo_sheet(grids, args.per_chair, args.seed, args.size).save(args.sheet)
        print(f"{len(grids)} chairs x {args.per_chair} renders -> {args.sheet}")
    if args.bench:
        per = max(1, args.bench // len(grids))
        render_views(grids[0], 1, 0, args.size)  # warm caches (background photos)
        start, cpu = time.perf_counter(), time.process_time()
        done = 0
        for i, grid in enumerate(grids):
            done += len(render_views(grid, per, 1000 + i, args.size)[0])
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{done} renders of {args.size}x{args.size} in {took:.1f} s: {done / took:.1f} images/s wall, "
              f"{1000 * cpu / done:.1f} ms CPU per image ({done / cpu:.1f} images/s per free core; "
              f"one process, meshing included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
