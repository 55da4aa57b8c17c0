"""Make the example photos for the "Photo → chair" tab and the browser test.

No third-party photos: every picture is rendered by the project's own renderer
(`vaegan.render.render_mesh`) from a chair the project made.

    .venv/bin/python examples/make_examples.py                       # box-modelled chairs
    .venv/bin/python examples/make_examples.py --checkpoint checkpoints/chair32 --seeds 3 7 11

Without --checkpoint the chairs are modelled from boxes in the voxel frame (seat, legs,
backrest, arms), because an untrained generator makes noise. With a trained checkpoint it
renders generated chairs instead (seeds chosen with --seeds).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaegan import meshing, render  # noqa: E402

R = 32  # the voxel frame: axis 0 front (low) -> back (high), axis 1 left/right, axis 2 up


def box(grid, x0, x1, y0, y1, z0, z1):
    grid[x0:x1, y0:y1, z0:z1] = 1.0


def legs(grid, xs, ys, z0, z1):
    """Four 2x2 legs at the corners (x, y) for x in xs, y in ys, from z0 up to z1."""
    for x in xs:
        for y in ys:
            box(grid, x, x + 2, y, y + 2, z0, z1)


def dining_chair():
    g = np.zeros((R, R, R), np.float32)
    box(g, 6, 26, 7, 25, 12, 14)  # seat
    legs(g, (6, 24), (7, 23), 4, 12)
    box(g, 24, 26, 7, 25, 14, 28)  # backrest
    return g


def armchair():
    g = np.zeros((R, R, R), np.float32)
    box(g, 5, 27, 5, 27, 9, 14)  # thick seat
    legs(g, (5, 25), (5, 25), 4, 9)  # short
    box(g, 23, 27, 5, 27, 14, 27)  # backrest
    for y in (5, 24):
        box(g, 7, 23, y, y + 3, 14, 19)  # arms
    return g


def slat_chair():
    g = np.zeros((R, R, R), np.float32)
    box(g, 7, 25, 8, 24, 13, 15)  # seat
    legs(g, (7, 23), (8, 22), 4, 13)
    box(g, 10, 22, 8, 10, 7, 8)  # side stretchers
    box(g, 10, 22, 22, 24, 7, 8)
    for y in (8, 12, 16, 20, 22):
        box(g, 23, 25, y, y + 2, 15, 26)  # back slats
    box(g, 23, 25, 8, 24, 26, 28)  # top rail
    return g


CHAIRS = {"dining_chair": (dining_chair, (0.72, 0.52, 0.33), -35.0),
          "armchair": (armchair, (0.35, 0.47, 0.62), -50.0),
          "slat_chair": (slat_chair, (0.55, 0.62, 0.40), -20.0)}


def save(mesh, path: Path, color, azimuth: float, size: int) -> None:
    pixels = render.render_mesh(mesh, size=size, azimuth=azimuth, elevation=20.0, color=color, points=120_000)
    Image.fromarray(pixels).save(path, optimize=True)
    print(path, f"{path.stat().st_size // 1024} KB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="render generated chairs from this checkpoint instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.checkpoint:
        from vaegan import ChairPipeline

        pipe = ChairPipeline.from_pretrained(args.checkpoint)
        colors = [color for _, color, _ in CHAIRS.values()]
        for i, seed in enumerate(args.seeds):
            vox = pipe.generate(pipe.sample_latents(1, seed=seed, truncation=0.7))[0]
            save(pipe.mesh(vox, smooth=0.3), out / f"generated_seed{seed}.png", colors[i % len(colors)], -35.0, args.size)
        return 0
    for name, (make, color, azimuth) in CHAIRS.items():
        save(meshing.voxels_to_mesh(make(), smooth=0.3), out / f"{name}.png", color, azimuth, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
