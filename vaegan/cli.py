"""`python -m vaegan`: batch generation from the command line.

    python -m vaegan sample --n 8 --seed 0 --format glb --out DIR
    python -m vaegan sample --n 4 --seed 7 --truncation 0.7 --format glb,stl,json --out DIR
    python -m vaegan photo chair1.png chair2.jpg --format obj --out DIR
    python -m vaegan latent DIR/*.json --format vox,binvox --out DIR2
    python -m vaegan interpolate --from-seed 1 --to-seed 2 --steps 6 --format glb --out DIR

The checkpoint is ``--checkpoint`` (a folder or Hub repo id), else $CHAIR_CHECKPOINT, else
``checkpoints/chair32``. ``--random-init`` uses an untrained 32^3 network instead (for smoke
tests; its output is noise, not chairs). Formats: glb obj stl ply (meshes), binvox vox npy
(voxels), json (the latent, loadable in the app and by ``latent``). Bad input exits with
status 2 and a one-line message, never a traceback.

This module also holds `load_pipeline`, the checkpoint-or-fallback rule the app shares.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from . import latents, meshing, voxels
from .config import ModelConfig
from .errors import CheckpointError, EmptyShapeError
from .pipeline import ChairPipeline

DEFAULT_CHECKPOINT = "checkpoints/chair32"
CHECKPOINT_ENV = "CHAIR_CHECKPOINT"
# The untrained stand-in: the architecture the shipped 32^3 checkpoint uses.
FALLBACK_CONFIG = dict(resolution=32, g_widths=(128, 64, 32))  # the shipped architecture
MESH_FORMATS = meshing.SUPPORTED_FORMATS  # glb obj stl ply
VOXEL_FORMATS = ("binvox", "vox", "npy")
FORMATS = (*MESH_FORMATS, *VOXEL_FORMATS, "json")


def load_pipeline(checkpoint: str | os.PathLike | None = None, fallback: bool = True,
                  default: str | os.PathLike = DEFAULT_CHECKPOINT) -> tuple[ChairPipeline, str]:
    """-> (pipeline, notice). ``checkpoint`` None means $CHAIR_CHECKPOINT, else ``default``.
    Only the *default* folder may be missing: then, with ``fallback``, a random-init pipeline
    is returned with a notice saying so. An explicitly named checkpoint (folder or Hub repo id)
    that cannot be loaded raises CheckpointError."""
    explicit = checkpoint if checkpoint is not None else os.environ.get(CHECKPOINT_ENV) or None
    name = str(explicit or default)
    if explicit is None and not Path(name).is_dir():
        if not fallback:
            raise CheckpointError(
                f"no checkpoint at {name}: pass --checkpoint DIR_OR_REPO_ID (or set {CHECKPOINT_ENV}), "
                "or --random-init for an untrained network"
            )
        shown = Path(*Path(name).parts[-2:])  # "checkpoints/chair32", not the server's full path
        return random_pipeline(), (
            f"No trained checkpoint at `{shown}` yet: this is a **randomly initialised** network, "
            "so the shapes are noise, not chairs. Pass `--checkpoint DIR_OR_REPO_ID` or set "
            f"`{CHECKPOINT_ENV}` once one is trained."
        )
    return ChairPipeline.from_pretrained(name), ""


def random_pipeline(seed: int = 0) -> ChairPipeline:
    """The untrained stand-in pipeline (all three networks, seeded)."""
    return ChairPipeline.from_config(ModelConfig(**FALLBACK_CONFIG), seed=seed)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (None keeps torch's default); returns the count used."""
    import torch

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


# glibc's mallopt parameter for the number of malloc arenas (malloc.h: M_ARENA_MAX).
M_ARENA_MAX, SERVING_ARENAS = -8, 2


def limit_malloc_arenas(arenas: int = SERVING_ARENAS) -> bool:
    """Cap glibc's malloc arenas for a server process; True when applied.

    glibc gives each new thread that allocates its own arena, up to 8 per core. A web
    server runs handlers in a pool of worker threads, so torch's and numpy's buffers end up
    scattered over many arenas whose freed pages are rarely returned: under sustained load
    the app's RSS crept up by ~25 MB per 1,600 requests (bench/load.py), with 2 arenas by 8.
    A no-op (False) where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False


def prepare_for_serving(pipe: ChairPipeline, threads: int | None = None) -> ChairPipeline:
    """Inference settings for a long-running server: torch threads, the channels_last_3d
    memory format for the 3-D conv nets (about 1.2x faster on this CPU, identical output) and
    few malloc arenas (`limit_malloc_arenas`)."""
    from .models import to_channels_last

    limit_malloc_arenas()
    set_threads(threads)
    to_channels_last(pipe.generator)
    if pipe.discriminator is not None:
        to_channels_last(pipe.discriminator)
    return pipe


def parse_formats(text: str) -> list[str]:
    """"glb,stl" -> ["glb", "stl"]; unknown names raise ValueError listing the valid ones."""
    names = [part.strip().lower().lstrip(".") for part in str(text).split(",") if part.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ValueError(f"unknown format {', '.join(bad) or repr(text)}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def write_chair(pipe: ChairPipeline, z, vox: np.ndarray, stem: Path, formats: list[str],
                level: float = 0.5, smooth: float = 0.0, **meta) -> list[Path]:
    """Write one chair (latent ``z``, grid ``vox``) as ``stem.<fmt>`` for each format.

    Raises EmptyShapeError before writing anything if a mesh format is asked for and nothing
    reaches ``level``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    mesh = pipe.mesh(vox, level=level, smooth=smooth) if any(f in MESH_FORMATS for f in formats) else None
    out = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt in MESH_FORMATS:
            meshing.export_mesh(mesh, path)
        elif fmt == "binvox":
            voxels.write_binvox(path, vox, threshold=level)
        elif fmt == "vox":
            voxels.write_vox(path, vox, threshold=level)
        elif fmt == "npy":
            voxels.save_npy(path, vox)
        elif fmt == "json":
            latents.save_latent(path, z, resolution=pipe.resolution, level=level, smooth=smooth, **meta)
        out.append(path)
    return out


def _emit(pipe, zs, labels, args, meta) -> int:
    formats = parse_formats(args.format)
    out = Path(args.out)
    vox = pipe.generate(np.asarray(zs, dtype=np.float32))
    written, skipped = 0, 0
    for z, grid, label in zip(zs, vox, labels):
        try:
            paths = write_chair(pipe, z, grid, out / label, formats, args.level, args.smooth, source=label, **meta)
        except EmptyShapeError as err:
            print(f"skipped {label}: {err}", file=sys.stderr)
            skipped += 1
            continue
        written += 1
        if not args.quiet:
            print("  ".join(str(p) for p in paths))
    if not args.quiet:
        print(f"{written} chair(s) written to {out}" + (f", {skipped} empty skipped" if skipped else ""), file=sys.stderr)
    return 0 if written else 1


def cmd_sample(pipe, args) -> int:
    z = np.asarray(pipe.sample_latents(args.n, seed=args.seed, truncation=args.truncation), dtype=np.float32)
    labels = [f"seed{args.seed}_{i:03d}" for i in range(len(z))]
    return _emit(pipe, z, labels, args, {"seed": args.seed, "truncation": args.truncation})


def cmd_photo(pipe, args) -> int:
    zs = [latents.as_latent(pipe.encode(path)[0]) for path in args.images]
    labels = [Path(p).stem for p in args.images]
    return _emit(pipe, zs, labels, args, {})


def cmd_latent(pipe, args) -> int:
    zs = [latents.load_latent(path, pipe.z_dim)[0] for path in args.files]
    labels = [Path(p).stem for p in args.files]
    return _emit(pipe, zs, labels, args, {})


def cmd_interpolate(pipe, args) -> int:
    a, b = (np.asarray(pipe.sample_latents(1, seed=s, truncation=args.truncation), dtype=np.float32)[0]
            for s in (args.from_seed, args.to_seed))
    zs = latents.interpolate(a, b, args.steps, args.method)
    labels = [f"interp{args.from_seed}-{args.to_seed}_{i:02d}" for i in range(len(zs))]
    return _emit(pipe, zs, labels, args, {})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vaegan", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", default=None,
                        help=f"checkpoint folder or Hub repo id (default: ${CHECKPOINT_ENV} or {DEFAULT_CHECKPOINT})")
    common.add_argument("--random-init", action="store_true", help="use an untrained network (smoke tests)")
    common.add_argument("--format", default="glb", help=f"comma-separated, from: {', '.join(FORMATS)} (default glb)")
    common.add_argument("--out", required=True, help="output folder (created)")
    common.add_argument("--level", type=float, default=0.5, help="iso-level in (0, 1) (default 0.5)")
    common.add_argument("--smooth", type=float, default=0.0, help="mesh smoothing in [0, 1] (default 0)")
    common.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    common.add_argument("--quiet", action="store_true", help="print nothing on success")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sample", parents=[common], help="N chairs from the prior")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0, help="latent scale in [0, 3] (default 1)")
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("photo", parents=[common], help="chairs from photos (needs an encoder)")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_photo)
    p = sub.add_parser("latent", parents=[common], help="chairs from latent JSON files")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_latent)
    p = sub.add_parser("interpolate", parents=[common], help="steps between two seeds")
    p.add_argument("--from-seed", type=int, required=True)
    p.add_argument("--to-seed", type=int, required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--method", choices=("slerp", "lerp"), default="slerp")
    p.add_argument("--truncation", type=float, default=1.0)
    p.set_defaults(func=cmd_interpolate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        parse_formats(args.format)  # fail before loading anything
        set_threads(args.threads)
        pipe = random_pipeline() if args.random_init else load_pipeline(args.checkpoint, fallback=False)[0]
        return args.func(pipe, args)
    except (ValueError, FileNotFoundError) as err:  # every vaegan error, with its message
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # PIL's DecompressionBombError for > ~179 MP photos is not a ValueError
        if type(err).__name__ != "DecompressionBombError":
            raise
        print(f"error: the image is far too large: {err}", file=sys.stderr)
        return 2
