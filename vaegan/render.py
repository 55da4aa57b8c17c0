"""Pictures of chairs without OpenGL: a point-splat rasteriser for meshes, and contact sheets.

Used for training sample sheets and model-card figures. Orthographic camera, Z-up world
(our voxel frame), Lambert + ambient shading, a z-buffer done with one numpy sort.
"""

import math

import numpy as np
import trimesh
from PIL import Image, ImageDraw


def view_rotation(azimuth: float, elevation: float) -> np.ndarray:
    """World -> camera rotation (3, 3): camera x right, y up, z toward the viewer.

    azimuth 0 looks at the chair's front (our chairs face -x); positive turns left.
    """
    a, e = math.radians(azimuth), math.radians(elevation)
    # Direction from the object toward the camera, in world coordinates.
    to_cam = np.array([-math.cos(e) * math.cos(a), -math.cos(e) * math.sin(a), math.sin(e)])
    right = np.cross([0.0, 0.0, 1.0], to_cam)
    right /= np.linalg.norm(right)
    up = np.cross(to_cam, right)
    return np.stack([right, up, to_cam])  # rows: camera axes in world coordinates


def render_mesh(
    mesh: trimesh.Trimesh,
    size: int = 128,
    azimuth: float = -35.0,
    elevation: float = 20.0,
    color=(0.72, 0.55, 0.38),
    background=(1.0, 1.0, 1.0),
    light=(0.4, -0.3, 0.9),
    points: int = 60_000,
    seed: int = 0,
    scale: float = 1.35,
) -> np.ndarray:
    """Mesh in the unit-cube frame -> uint8 image (size, size, 3).

    The mesh surface is sampled densely; each sample is splatted as a 2x2 pixel, nearest
    first via a sort by depth, shaded by its face normal (two-sided).
    """
    image = np.empty((size, size, 3), np.float32)
    image[:] = background
    if len(mesh.faces) == 0:
        return (image * 255).astype(np.uint8)
    pts, face_idx = trimesh.sample.sample_surface(mesh, points, seed=seed)
    normals = mesh.face_normals[face_idx]
    rot = view_rotation(azimuth, elevation)
    cam = pts @ rot.T  # (P, 3): x right, y up, z toward viewer
    n_cam = normals @ rot.T
    # Two-sided Lambert with the light fixed in camera space, plus ambient.
    light_dir = np.asarray(light, np.float64) / np.linalg.norm(light)
    lambert = np.abs(n_cam @ light_dir)
    facing = np.clip(n_cam[:, 2], 0, 1)
    shade = 0.35 + 0.5 * lambert + 0.15 * facing
    rgb = np.clip(np.asarray(color)[None] * shade[:, None], 0, 1)
    px = ((cam[:, 0] / scale + 0.5) * (size - 1)).round().astype(int)
    py = ((0.5 - cam[:, 1] / scale) * (size - 1)).round().astype(int)
    order = np.argsort(cam[:, 2])  # far first, so nearer splats overwrite them
    px, py, rgb = px[order], py[order], rgb[order]
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = px + dx, py + dy
            ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
            image[y[ok], x[ok]] = rgb[ok]
    return (image * 255).astype(np.uint8)


def contact_sheet(images: list[np.ndarray], cols: int = 8, labels: list[str] | None = None,
                  pad: int = 2) -> Image.Image:
    """Equal-size uint8 images (H, W, 3) -> one grid image with optional labels."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    h, w = images[0].shape[:2]
    rows = math.ceil(len(images) / cols)
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), (235, 235, 235))
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        x, y = pad + (i % cols) * (w + pad), pad + (i // cols) * (h + pad)
        sheet.paste(Image.fromarray(img), (x, y))
        if labels:
            draw.text((x + 3, y + 2), labels[i], fill=(60, 60, 60))
    return sheet


def render_grids(vox: np.ndarray, size: int = 128, level: float = 0.5, clean: bool = True,
                 **view) -> list[np.ndarray]:
    """Grids (n, R, R, R) -> n tiles (size, size, 3); an empty grid becomes a blank tile."""
    from .errors import EmptyShapeError
    from .meshing import voxels_to_mesh

    tiles = []
    for grid in vox:
        try:
            tiles.append(render_mesh(voxels_to_mesh(grid, level=level, clean=clean), size=size, **view))
        except EmptyShapeError:
            tiles.append(np.full((size, size, 3), 255, np.uint8))
    return tiles
