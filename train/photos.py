"""Rendered photos of the training chairs: the paired (photo, voxels) data of the image encoder.

    python -m train.photos --data ../shared/data/modelnet10_chair_vol30 --out runs/photos

`python -m train photo-encoder` calls `build` itself when its renders folder is missing. Every chair
(pose `_1`, so upright and facing -x) is rendered `views` times by `vaegan.photo_render`; the
renders of one chair depend only on (seed, split, chair index), never on the worker count.
The official ModelNet test split is rendered too (`test_views` per chair) for the held-out
figure of `python -m train eval-photo`; a folder without `test/` (e.g. ShapeNet binvox files)
gets no test split.

A renders folder:

    manifest.json          settings, counts and seconds; written last, so a folder without
                           it is incomplete and is rebuilt
    <split>_images.npy     uint8 (N, S, S, 3), the pictures the encoder sees (S = image_size)
    <split>_meta.npz       chair int32 (N,): index into names / voxels; azimuth, elevation
                           float32 (N,) in degrees; names (C,) str; voxels uint8 (C, R, R, R)
    sheet.png              a contact sheet of the first renders

Generated chairs (`--generator CKPT --count N` instead of `--data`): N samples of a checkpoint's
generator, each thresholded at 0.5 and cleaned to its largest piece as the app meshes it,
rendered the same way into a train split whose meta also holds `latents` float32 (C, z_dim),
the z of each chair. These are photos whose latent code is known exactly, the second data
source of `python -m train photo-encoder --generated` (see there).

    python -m train.photos --generator checkpoints/chair32 --count 2000 --views 8 --out runs/photos_gen

Part-mixed chairs (`--part-mix` with both `--data` and `--generator`, chair32 v3.4's second
source): `--count` new chairs made of two training chairs each, cut across the height or the
depth (`part_mixed_chairs`), coded by the checkpoint's one-pass shape encoder; the chairs that
`train photo-encoder` holds out are never mixed.

    python -m train.photos --data ../shared/data/modelnet10_chair_vol30 --generator checkpoints/chair32 \
        --part-mix --count 2000 --views 8 --test-views 0 --out runs/photos_mix
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vaegan.datasets import load_chairs
from vaegan.errors import ConfigError, VoxelError

from .common import add_config_arguments, config_values, part_cut_bounds

log = logging.getLogger(__name__)
FORMAT = "chair-photos/1"
SPLITS = ("train", "test")


@dataclass
class PhotoSetConfig:
    data: str = ""  # ModelNet chair folder (train/ and test/) or a folder of .binvox chairs
    out: str = "runs/photos"
    image_size: int = 128  # side of the stored pictures = the encoder's image_size
    resolution: int = 32  # voxel grids stored beside them
    views: int = 24  # renders per training chair
    test_views: int = 8  # renders per test chair
    seed: int = 0
    workers: int = 2  # render processes (1 = in this process)
    canvas: int = 0  # render canvas side; 0 = 2 x image_size
    generator: str = ""  # instead of data: render samples of this checkpoint's generator ...
    count: int = 0  # ... this many (seeded by seed), with their latent codes
    # With --data and --generator: render --count part-mixes of data's training chairs instead,
    # each coded by the generator checkpoint's one-pass shape encoder (`part_mixed_chairs`).
    part_mix: bool = False
    mix_hold_out: int = 48  # training chairs never mixed: the photo encoder's val chairs (its --val-chairs, split by --seed)
    mix_seed: int = 1234  # draws the mixes (pairs and cuts); --seed draws the renders

    def key(self) -> dict:
        """The settings a renders folder must match to be reused."""
        key = {k: getattr(self, k) for k in ("image_size", "resolution", "views", "test_views", "seed", "canvas")}
        if self.part_mix:
            return {"data": str(Path(self.data).resolve()), "generator": str(Path(self.generator).resolve()),
                    "count": self.count, "part_mix": True, "mix_hold_out": self.mix_hold_out,
                    "mix_seed": self.mix_seed, **key}
        if self.generator:
            return {"generator": str(Path(self.generator).resolve()), "count": self.count, **key}
        return {"data": str(Path(self.data).resolve()), **key}


def _chair_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SPLITS.index(split), index])


def _render_chair(task) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Worker: (index, grid, views, seed sequence, size, canvas) -> (index, images, azimuth, elevation)."""
    from vaegan.photo_render import render_views

    index, grid, views, seq, size, canvas = task
    images, params = render_views(grid.astype(np.float32), views, seq, size, canvas or None)
    az = np.array([p.azimuth for p in params], np.float32)
    el = np.array([p.elevation for p in params], np.float32)
    return index, images, az, el


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # the renderer is numpy; keep torch from spawning threads


def _atomic_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def has_test_split(data: str | Path) -> bool:
    return (Path(data) / "test").is_dir()


def build(cfg: PhotoSetConfig, progress: bool = True) -> Path:
    """Render every split into cfg.out (see the module docstring) and return the folder."""
    from vaegan.photo_render import photo_sheet  # noqa: F401  (import errors surface early)

    if cfg.part_mix and not (cfg.data and cfg.generator and cfg.count >= 1 and cfg.mix_hold_out >= 0):
        raise ConfigError("--part-mix needs --data (the chairs to mix), --generator CKPT (its shape encoder codes "
                          "them), --count N >= 1 and --mix-hold-out >= 0")
    if not cfg.part_mix and bool(cfg.data) == bool(cfg.generator):
        raise ConfigError("pass either --data (a folder of voxel chairs) or --generator CKPT --count N")
    if cfg.generator and cfg.count < 1:
        raise ConfigError("--generator needs --count N >= 1: how many generated chairs to render")
    if cfg.views < 1 or cfg.test_views < 0 or cfg.image_size < 8:
        raise ConfigError("views must be >= 1, test_views >= 0 and image_size >= 8")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # incomplete until the end
    start = time.perf_counter()
    counts = {}
    splits = [("train", cfg.views)]
    if cfg.test_views and not cfg.generator and has_test_split(cfg.data):
        splits.append(("test", cfg.test_views))
    pool = None
    if cfg.workers > 1:
        pool = multiprocessing.get_context("spawn").Pool(cfg.workers, initializer=_init_worker)
    try:
        for split, views in splits:
            counts[split] = _build_split(cfg, out, split, views, pool, progress)
    except BaseException:
        if pool is not None:
            pool.terminate()  # do not render the queued chairs before the error shows
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    _write_sheet(out)
    seconds = time.perf_counter() - start
    manifest = {"format": FORMAT, **cfg.key(), "counts": counts, "seconds": round(seconds, 1),
                "images_per_second": round(sum(c["images"] for c in counts.values()) / max(seconds, 1e-9), 1),
                "workers": cfg.workers}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "manifest.json")
    return out


def generated_chairs(checkpoint: str, count: int, seed: int, resolution: int,
                     batch_size: int = 50) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`count` samples of a checkpoint's generator -> (uint8 (C, R, R, R), names, z float32 (C, z_dim)).

    Each grid is thresholded at 0.5 and cut to its largest piece (what the app meshes); empty
    samples are dropped, so C <= count. Names are `gen<i>_1`: one id per chair for split_by_id."""
    from vaegan.meshing import keep_largest_component
    from vaegan.pipeline import ChairPipeline

    pipe = ChairPipeline.from_pretrained(checkpoint)
    if pipe.resolution != resolution:
        raise ConfigError(f"{checkpoint} makes {pipe.resolution}^3 chairs; --resolution is {resolution}")
    z = pipe.sample_latents(count, seed=seed)  # (count, z_dim)
    # Thresholded a batch at a time: float grids of all samples would hold 2.6 GB at count 20000.
    grids = np.stack([keep_largest_component(v >= 0.5) for part in z.split(batch_size)
                      for v in pipe.generate(part)]).astype(np.uint8)  # (count, R, R, R)
    keep = grids.reshape(count, -1).any(1)
    names = [f"gen{i}_1" for i in np.flatnonzero(keep)]
    return grids[keep], names, z.numpy()[keep]


def part_mixed_chairs(data: str, checkpoint: str, count: int, hold_out: int, split_seed: int, mix_seed: int,
                      resolution: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`count` part-mixes of the training chairs of `data` -> (uint8 (C, R, R, R), names, z float32 (C, z_dim)).

    Each mix takes one chair below (or in front of) a cut across the height (or the depth) at
    30-70 % of the grid and another chair beyond it (as `train.common.part_mix` does to batches),
    keeps its largest piece, and is dropped when that has 50 voxels or fewer. Its code is the
    checkpoint's one-pass shape encoder's. The `hold_out` chairs that `train photo-encoder`
    holds out with the same seed (`split_by_id`) are never mixed, so its held-out figure stays
    held out. Names are `mix<i>_1`: one id per chair for split_by_id."""
    from vaegan.meshing import keep_largest_component
    from vaegan.pipeline import MAX_SHAPES, ChairPipeline

    from .gan import split_by_id

    pipe = ChairPipeline.from_pretrained(checkpoint)
    if pipe.resolution != resolution:
        raise ConfigError(f"{checkpoint} makes {pipe.resolution}^3 chairs; --resolution is {resolution}")
    chairs, names = load_chairs(data, "train", resolution)
    mixable = chairs[split_by_id(names, hold_out, split_seed)[0]]  # (M, R, R, R) uint8
    if len(mixable) < 2:
        raise ConfigError(f"{data} leaves {len(mixable)} chairs to mix after holding out {hold_out}")
    rng = np.random.default_rng(mix_seed)
    lo, hi = part_cut_bounds(resolution)
    grids = []
    while len(grids) < count:
        a, b = rng.choice(len(mixable), 2, replace=False)
        cut = int(rng.integers(lo, hi))
        mix = mixable[a].copy()
        if rng.integers(2):
            mix[:, :, cut:] = mixable[b][:, :, cut:]  # above the cut (axis 2 is up)
        else:
            mix[cut:] = mixable[b][cut:]  # behind the cut (axis 0)
        mix = keep_largest_component(mix >= 1).astype(np.uint8)
        if mix.sum() > 50:
            grids.append(mix)
    grids = np.stack(grids)  # (count, R, R, R)
    # encode_shape batches inside but takes at most MAX_SHAPES grids per call
    codes = np.concatenate([pipe.encode_shape(grids[i:i + MAX_SHAPES]).numpy() for i in range(0, count, MAX_SHAPES)])
    return grids, [f"mix{i}_1" for i in range(count)], codes


def _build_split(cfg: PhotoSetConfig, out: Path, split: str, views: int, pool, progress: bool) -> dict:
    """Render one split into out/<split>_images.npy + <split>_meta.npz -> its counts."""
    extra = {}
    if cfg.part_mix:
        grids, names, extra["latents"] = part_mixed_chairs(cfg.data, cfg.generator, cfg.count, cfg.mix_hold_out,
                                                           cfg.seed, cfg.mix_seed, cfg.resolution)
    elif cfg.generator:
        grids, names, extra["latents"] = generated_chairs(cfg.generator, cfg.count, cfg.seed, cfg.resolution)
    else:
        grids, names = load_chairs(cfg.data, split, cfg.resolution)
    n = len(grids) * views
    size = cfg.image_size
    tmp = out / f".{split}_images.npy.tmp"
    images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    azimuth = np.zeros(n, np.float32)
    elevation = np.zeros(n, np.float32)
    tasks = ((i, grids[i], views, _chair_seed(cfg.seed, split, i), size, cfg.canvas) for i in range(len(grids)))
    results = pool.imap_unordered(_render_chair, tasks, chunksize=2) if pool is not None else map(_render_chair, tasks)
    with tqdm(total=n, desc=f"render {split}", disable=not progress, dynamic_ncols=True, mininterval=2) as bar:
        for i, imgs, az, el in results:
            rows = slice(i * views, (i + 1) * views)
            images[rows], azimuth[rows], elevation[rows] = imgs, az, el
            bar.update(views)
    images.flush()
    del images
    os.replace(tmp, out / f"{split}_images.npy")
    _atomic_npz(out / f"{split}_meta.npz", chair=np.repeat(np.arange(len(grids), dtype=np.int32), views),
                azimuth=azimuth, elevation=elevation, names=np.array(names), voxels=grids.astype(np.uint8), **extra)
    log.info("%s: %d chairs x %d views rendered", split, len(grids), views)
    return {"chairs": len(grids), "images": n}


def _write_sheet(out: Path, n: int = 32) -> None:
    from vaegan.render import contact_sheet

    images = np.load(out / "train_images.npy", mmap_mode="r")
    meta = np.load(out / "train_meta.npz")
    # One render of each of the first chairs, so the sheet shows many chairs and settings.
    views = max(1, len(images) // max(1, len(meta["names"])))
    picks = [i * views for i in range(min(n, len(meta["names"])))]
    contact_sheet([np.asarray(images[i]) for i in picks], cols=8).save(out / "sheet.png")


# ----------------------------------------------------------------------------- reading
class PhotoSet:
    """One split of a renders folder: images (memory-mapped), their chairs and voxels."""

    def __init__(self, folder: str | Path, split: str = "train"):
        folder = Path(folder)
        manifest = read_manifest(folder)
        if split not in manifest["counts"]:
            raise VoxelError(f"renders folder {folder} has no {split} split (it has {sorted(manifest['counts'])})")
        self.folder, self.split, self.manifest = folder, split, manifest
        self.images = np.load(folder / f"{split}_images.npy", mmap_mode="r")  # (N, S, S, 3) uint8
        meta = np.load(folder / f"{split}_meta.npz")
        self.chair = meta["chair"].astype(np.int64)  # (N,)
        self.azimuth, self.elevation = meta["azimuth"], meta["elevation"]
        self.names = [str(n) for n in meta["names"]]  # (C,)
        self.voxels = meta["voxels"]  # (C, R, R, R) uint8
        self.latents = meta["latents"] if "latents" in meta.files else None  # (C, z_dim) float32: generated chairs
        if len(self.chair) != len(self.images) or self.chair.max(initial=-1) >= len(self.names):
            raise VoxelError(f"renders folder {folder}: {split}_meta.npz does not match {split}_images.npy")

    def __len__(self) -> int:
        return len(self.images)

    def pictures(self, index: np.ndarray):
        """Sorted render indices -> float pictures (B, 3, S, S) in [0, 1], as the encoder takes them."""
        import torch

        return torch.from_numpy(np.asarray(self.images[index])).permute(0, 3, 1, 2).float().div_(255)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.voxels.shape[1])


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise VoxelError(f"{folder} is not a complete renders folder (no manifest.json); "
                         "make one with python -m train.photos")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise VoxelError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def is_photo_folder(folder: str | Path) -> bool:
    return (Path(folder) / "manifest.json").is_file()


def ensure(cfg: PhotoSetConfig, progress: bool = True) -> Path:
    """Reuse cfg.out when it was built with the same settings, build it when absent/incomplete,
    and refuse (ConfigError) to overwrite a complete folder built with other settings."""
    out = Path(cfg.out)
    if is_photo_folder(out):
        manifest = read_manifest(out)
        want = cfg.key()
        differ = {k: (manifest.get(k), v) for k, v in want.items() if manifest.get(k) != v}
        if differ:
            detail = ", ".join(f"{k}={old!r} (asked {new!r})" for k, (old, new) in differ.items())
            raise ConfigError(f"renders folder {out} was built with {detail}; pass another --renders folder "
                              f"or delete it")
        return out
    log.info("rendering the training photos into %s (%d views per chair, %d workers)", out, cfg.views, cfg.workers)
    return build(cfg, progress)


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    add_config_arguments(parser, PhotoSetConfig)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def main(args) -> int:
    cfg = PhotoSetConfig(**config_values(args, PhotoSetConfig))
    if args.dry_run:
        print(json.dumps(asdict(cfg), indent=2))
        return 0
    out = build(cfg)
    manifest = read_manifest(out)
    print(f"{sum(c['images'] for c in manifest['counts'].values())} renders in {manifest['seconds']:.0f} s "
          f"({manifest['images_per_second']} images/s, {cfg.workers} workers) -> {out}")
    return 0


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m train.photos", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        sys.exit(main(parser.parse_args()))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
