"""`python -m train eval-gen`: score a generator against the ModelNet10 test chairs.

    python -m train eval-gen --checkpoint checkpoints/chair32 \\
        --data ../shared/data/modelnet10_chair_vol30 [--out runs/eval_gen.json] \\
        [--seeds 0 1 2] [--n 100] [--points 2048] [--level 0.5] [--clean | --no-clean] [--truncation 1]

What is measured (definitions in `train.metrics`):
* Reference set: the 100 official ModelNet10 test chairs, pose _1, at the model resolution.
* For each seed: n latents `pipe.sample_latents(n, seed)` (with --truncation t != 1 the draws
  `sample_latents(n, seed, truncation=t)` that the app's truncation slider makes; it opens at 1)
  -> `pipe.generate` -> occupancy
  probabilities. Occupied = probability >= level. With --clean (the default, because the
  app shows cleaned meshes) every sample keeps only its largest 18-connected piece
  (`vaegan.meshing.keep_largest_component`) before the distance metrics; validity is
  always reported both raw and cleaned.
* Two distances:
  - IoU distance 1 - IoU of the occupied voxels at the model resolution (an empty sample is
    at distance 1 from every chair: no special case);
  - Chamfer distance (Achlioptas et al. 2018; squared, unit-cube frame where a chair spans
    0.75) on `--points` points sampled uniformly by area on the marching-cubes surface
    (`voxels_to_mesh` + `surface_points`, point seed = shape index). A sample is meshed
    from its probabilities at `level`, exactly as the app shows it (`clean` as above);
    the reference chairs and the baselines, which are binary, are meshed at 0.5. A sample
    with no surface (nothing >= level) counts as invalid and is at distance +inf from every
    shape with a surface (0 from another empty sample); COV ignores it, MMD is +inf only
    if every sample is empty, and in 1-NNA it is "correctly" told apart.
  For each: COV, MMD, 1-NNA (PointFlow definitions), then mean and sample std (ddof=1)
  over the seeds.
* "coverage-IoU" (earlier notes): mean over test chairs of the best IoU to any sample
  (= 1 - MMD under the IoU distance).
* Validity: one 18-connected piece and occupancy within `occupancy_range_from(train)`.
* Mesh pieces: the separate solids of each sample's marching-cubes mesh (what the viewer
  shows; a soft grid in one 18-connected piece can still mesh as several).
* Novelty: mean IoU of each sample to its nearest training chair and the fraction of
  near-copies (nearest IoU > 0.9).
* Baselines in the same run:
  - "train-<n>": n distinct training chairs (seeded) in place of the generator: about the
    best a generator that reproduces the training distribution can score. Their novelty is
    measured against the OTHER training chairs (self excluded), which shows how often real
    chairs are near-copies of one another (ModelNet has near-duplicates).
  - "mean-chair": the voxel-wise mean of the training chairs, thresholded so that it fills
    the mean training occupancy (top-k voxels of the mean), repeated n times. Thresholding
    the mean at 0.5 keeps only the voxels most chairs share (0.47% of the grid at 32^3,
    below the thinnest training chair at 0.91%: a seat fragment); the mean-occupancy
    threshold gives a typical-volume "average chair", a fairer strawman.

Everything is written to --out as JSON (settings, versions, timings, per-seed and summary
figures, baselines); non-finite numbers are written as null.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from train import metrics
from vaegan.fileio import atomic_write
from vaegan.errors import ConfigError, EmptyShapeError, VoxelError

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/eval_gen.json"
NEAR_COPY_THRESHOLD = 0.9
REFERENCE_LEVEL = 0.5  # binary grids (test chairs, baselines) are meshed at 0.5

# Columns of the printed table: (header, metrics key, scale, decimals).
_COLUMNS = [
    ("valid raw", "validity_raw", 1.0, 2),
    ("valid clean", "validity_clean", 1.0, 2),
    ("COV-IoU", "iou_cov", 1.0, 2),
    ("MMD-IoU", "iou_mmd", 1.0, 3),
    ("1NNA-IoU", "iou_nna", 1.0, 2),
    ("COV-CD", "cd_cov", 1.0, 2),
    ("MMD-CD e3", "cd_mmd", 1e3, 2),
    ("1NNA-CD", "cd_nna", 1.0, 2),
    ("cov-IoU", "coverage_iou", 1.0, 3),
    ("nearest IoU", "nearest_train_iou_mean", 1.0, 2),
    ("copies>0.9", "near_copy_fraction", 1.0, 2),
    ("mesh pieces", "mesh_pieces_mean", 1.0, 2),
]


# --------------------------------------------------------------------------- helpers


def _progress(iterable, progress: bool, **kwargs):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, leave=False, file=sys.stderr, **kwargs)


def _binary(grids: np.ndarray, name: str, resolution: int) -> np.ndarray:
    """Data grids (N, R, R, R) -> bool, checking the shape against the model resolution."""
    grids = np.asarray(grids)
    if grids.ndim != 4 or grids.shape[1:] != (resolution,) * 3 or len(grids) == 0:
        raise VoxelError(
            f"{name} grids have shape {grids.shape}; expected (N, {resolution}, {resolution}, "
            f"{resolution}) with N >= 1 to match the model resolution"
        )
    return grids >= 0.5


def mean_chair(train: np.ndarray) -> tuple[np.ndarray, float]:
    """The voxel-wise mean of the training chairs, thresholded at the level that makes it
    fill the mean training occupancy -> (bool (R, R, R), threshold)."""
    train = np.asarray(train) >= 0.5  # (T, R, R, R)
    mean = train.mean(axis=0, dtype=np.float64)  # (R, R, R)
    k = int(round(train.mean() * mean.size))  # voxels to keep
    if k == 0:
        return np.zeros(mean.shape, dtype=bool), 1.0
    threshold = float(np.sort(mean.ravel())[-k])
    return mean >= threshold, threshold


def surface_clouds(grids, level: float, clean: bool, n_points: int, progress: bool = False,
                   desc: str = "meshing") -> tuple[list[np.ndarray | None], np.ndarray]:
    """Marching-cubes surface points of each grid -> (list of float32 (n_points, 3) or None
    (no surface at `level`), int (n,) pieces of each mesh, 0 when empty). Shape i uses point
    seed i. The pieces are the separate solids the viewer shows (`vaegan.meshing.count_solids`),
    which on a soft grid can outnumber the grid's 18-connected pieces."""
    from vaegan.meshing import count_solids, surface_points, voxels_to_mesh

    clouds: list[np.ndarray | None] = []
    pieces = np.zeros(len(grids), dtype=np.int64)
    for i, grid in enumerate(_progress(grids, progress, desc=desc)):
        try:
            mesh = voxels_to_mesh(np.asarray(grid, dtype=np.float32), level=level, clean=clean)
            clouds.append(surface_points(mesh, n=n_points, seed=i))
            pieces[i] = count_solids(mesh)
        except EmptyShapeError:
            clouds.append(None)
    return clouds, pieces


def _distance_metrics(prefix: str, d_sr, d_ss, d_rr) -> dict[str, float]:
    out = metrics.coverage_mmd_1nna(d_sr, d_ss, d_rr)
    return {f"{prefix}_{k}": v for k, v in out.items()}


def _score_set(grids: np.ndarray, *, reference: dict, train_bool: np.ndarray, level: float,
               clean: bool, occupancy_range: tuple[float, float], n_points: int, workers: int,
               near_copy_threshold: float, exclude: np.ndarray | None, progress: bool,
               name: str) -> dict:
    """Score one set of shapes (probabilities or binary grids, (n, R, R, R)) -> result dict."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    from vaegan.meshing import keep_largest_component

    grids = np.asarray(grids, dtype=np.float32)  # (n, R, R, R)
    raw = grids >= np.float32(level)  # (n, R, R, R) bool
    cleaned = np.stack([keep_largest_component(g) for g in raw])  # (n, R, R, R) bool
    used = cleaned if clean else raw
    valid_raw = metrics.validity(raw, level, occupancy_range)  # (n,)
    valid_clean = metrics.validity(cleaned, level, occupancy_range)  # (n,)
    occ_raw = metrics.occupancy(raw)  # (n,)
    occ_used = metrics.occupancy(used)  # (n,)
    comps = metrics.n_components(raw)  # (n,)
    times["validity"] = time.perf_counter() - t

    t = time.perf_counter()
    iou_sr = metrics.iou_matrix(used, reference["bool"])  # (n, R_ref)
    iou_ss = metrics.iou_matrix(used, used)  # (n, n)
    result = _distance_metrics("iou", 1.0 - iou_sr, 1.0 - iou_ss, reference["iou_dist"])
    result["coverage_iou"] = metrics.coverage_iou(iou_sr)
    nearest = metrics.nearest_iou(used, train_bool, exclude=exclude)  # (n,)
    times["iou"] = time.perf_counter() - t

    t = time.perf_counter()
    clouds, mesh_pieces = surface_clouds(grids, level, clean, n_points, progress, desc=f"{name}: meshing")
    times["meshing"] = time.perf_counter() - t
    t = time.perf_counter()
    cd_sr = metrics.chamfer_matrix(clouds, reference["clouds"], workers=workers)  # (n, R_ref)
    cd_ss = metrics.chamfer_matrix(clouds, workers=workers)  # (n, n)
    result.update(_distance_metrics("cd", cd_sr, cd_ss, reference["cd_dist"]))
    times["chamfer"] = time.perf_counter() - t

    result.update({
        "validity_raw": float(valid_raw.mean()),
        "validity_clean": float(valid_clean.mean()),
        "components_raw_mean": float(comps.mean()),
        "one_piece_raw": float((comps == 1).mean()),
        "mesh_pieces_mean": float(mesh_pieces.mean()),  # separate solids the viewer shows per chair
        "one_mesh_piece": float((mesh_pieces == 1).mean()),
        "occupancy_raw_mean": float(occ_raw.mean()),
        "occupancy_mean": float(occ_used.mean()),
        "occupancy_min": float(occ_used.min()),
        "occupancy_max": float(occ_used.max()),
        "below_occupancy_range": float((occ_used < occupancy_range[0]).mean()),
        "above_occupancy_range": float((occ_used > occupancy_range[1]).mean()),
        "empty_fraction": float(np.mean([c is None for c in clouds])),
        "nearest_train_iou_mean": float(nearest.mean()),
        "near_copy_fraction": metrics.near_copy_fraction(nearest, near_copy_threshold),
    })
    log.info("%s: validity raw %.2f / clean %.2f, 1-NNA IoU %.3f / CD %.3f (%.0f s)", name,
             result["validity_raw"], result["validity_clean"], result["iou_nna"], result["cd_nna"],
             sum(times.values()))
    return {"metrics": result, "timings_s": times}


def _summary(per_seed: list[dict]) -> tuple[dict, dict]:
    """Mean and sample std (ddof=1; 0 for one seed) of every metric over seeds."""
    keys = per_seed[0]["metrics"].keys()
    mean, std = {}, {}
    for key in keys:
        values = np.array([r["metrics"][key] for r in per_seed], dtype=np.float64)
        mean[key] = float(values.mean())
        std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, std


# --------------------------------------------------------------------------- evaluation


def evaluate(pipe, train: np.ndarray, test: np.ndarray, seeds=(0, 1, 2), n: int = 100, *,
             n_points: int = 2048, level: float = 0.5, clean: bool = True,
             occupancy_range: tuple[float, float] | None = None, baselines: bool = True,
             baseline_seed: int = 0, near_copy_threshold: float = NEAR_COPY_THRESHOLD,
             batch_size: int = 32, workers: int = -1, progress: bool = False, truncation: float = 1.0) -> dict:
    """Score `pipe`'s samples against `test` (reference) with `train` for validity/novelty.

    pipe: anything with `resolution`, `sample_latents(n, seed)` and `generate(z, batch_size=)`
    (float32 (n, R, R, R) probabilities). train (T, R, R, R), test (R_ref, R, R, R): {0, 1}
    grids at the model resolution. Returns a JSON-ready dict (see the module docstring).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("give at least one seed")
    if n < 1 or n_points < 1:
        raise ConfigError(f"n and n_points must be >= 1, got n={n}, n_points={n_points}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    res = int(pipe.resolution)
    train_bool = _binary(train, "training", res)  # (T, R, R, R)
    test_bool = _binary(test, "test", res)  # (R_ref, R, R, R)
    if baselines and n > len(train_bool):
        raise ConfigError(f"the train-{n} baseline needs {n} distinct training chairs, have {len(train_bool)}")
    if occupancy_range is None:
        occupancy_range = metrics.occupancy_range_from(train_bool)
    occupancy_range = (float(occupancy_range[0]), float(occupancy_range[1]))
    timings: dict[str, float] = {}
    common = dict(train_bool=train_bool, level=level, clean=clean, occupancy_range=occupancy_range,
                  n_points=n_points, workers=workers, near_copy_threshold=near_copy_threshold,
                  progress=progress)

    t = time.perf_counter()
    log.info("reference: %d test chairs (IoU and Chamfer distances among them)", len(test_bool))
    ref_clouds, _ = surface_clouds(test_bool, REFERENCE_LEVEL, False, n_points, progress, "test chairs: meshing")
    reference = {
        "bool": test_bool,
        "iou_dist": 1.0 - metrics.iou_matrix(test_bool, test_bool),  # (R_ref, R_ref)
        "clouds": ref_clouds,
        "cd_dist": metrics.chamfer_matrix(ref_clouds, workers=workers),  # (R_ref, R_ref)
    }
    ref_occ = metrics.occupancy(test_bool)
    timings["reference"] = time.perf_counter() - t

    per_seed = {}
    for seed in seeds:
        t = time.perf_counter()
        z = prior_draws(pipe, n, seed, truncation)
        samples = np.asarray(pipe.generate(z, batch_size=batch_size), dtype=np.float32)
        if samples.shape != (n, res, res, res):
            raise VoxelError(f"generate returned shape {samples.shape}, expected {(n, res, res, res)}")
        gen_time = time.perf_counter() - t
        log.info("seed %d: generated %d samples in %.1f s", seed, n, gen_time)
        per_seed[str(seed)] = _score_set(samples, reference=reference, exclude=None,
                                         name=f"generator seed {seed}", **common)
        per_seed[str(seed)]["timings_s"]["generate"] = gen_time
    mean, std = _summary(list(per_seed.values()))
    result = {
        "settings": {
            "seeds": seeds, "n": n, "n_points": n_points, "level": level, "clean": clean, "truncation": truncation,
            "occupancy_range": list(occupancy_range), "baseline_seed": baseline_seed,
            "near_copy_threshold": near_copy_threshold, "resolution": res,
            "z_dim": int(getattr(pipe, "z_dim", 0)) or None, "n_train": len(train_bool),
            "n_test": len(test_bool), "reference_level": REFERENCE_LEVEL,
            "std": "sample std over seeds (ddof=1)",
            "distances": {
                "iou": "1 - IoU of occupied voxels (>= level; cleaned if clean)",
                "cd": "Chamfer (Achlioptas 2018), squared distances, unit-cube frame, "
                      "n_points surface points; empty surface = +inf (null in JSON if it reaches a mean)",
            },
        },
        "reference": {"n": len(test_bool), "occupancy_mean": float(ref_occ.mean()),
                      "validity": float(metrics.validity(test_bool, 0.5, occupancy_range).mean())},
        "generator": {"per_seed": per_seed, "mean": mean, "std": std},
        "baselines": {},
        "timings_s": timings,
    }

    if baselines:
        t = time.perf_counter()
        rng = np.random.default_rng(baseline_seed)
        idx = np.sort(rng.choice(len(train_bool), size=n, replace=False))  # (n,) distinct
        name = f"train-{n}"
        base = _score_set(train_bool[idx], reference=reference, exclude=idx, name=name, **common)
        base["note"] = ("training chairs in place of the generator; novelty is measured "
                        "against the other training chairs (self excluded)")
        base["train_indices"] = idx.tolist()
        result["baselines"][name] = base
        timings[name] = time.perf_counter() - t

        t = time.perf_counter()
        chair, threshold = mean_chair(train_bool)
        base = _score_set(np.repeat(chair[None], n, axis=0), reference=reference, exclude=None,
                          name="mean-chair", **common)
        base["note"] = ("voxel-wise mean of the training chairs, top-k voxels so that it fills "
                        "the mean training occupancy, repeated n times")
        base["threshold"] = threshold
        result["baselines"]["mean-chair"] = base
        timings["mean-chair"] = time.perf_counter() - t
    timings["total"] = sum(timings.values()) + sum(
        sum(r["timings_s"].values()) for r in per_seed.values())
    return result


def prior_draws(pipe, n: int, seed: int, truncation: float = 1.0):
    """`pipe.sample_latents(n, seed)`, truncated when truncation != 1 (the app's Sample tab)."""
    if truncation == 1.0:
        return pipe.sample_latents(n, seed=seed)
    return pipe.sample_latents(n, seed=seed, truncation=truncation)


def issue_figures(pipe, test: np.ndarray, seeds=(0, 1, 2), n: int = 100, batch_size: int = 32,
                  refine: bool = True, truncation: float = 1.0) -> dict:
    """The chair32-v2 figures beside the table: raw validity as `metrics.mostly_one_piece`
    defines it, the same for slerp midpoints between pairs of prior samples, and, when the
    checkpoint has a shape encoder, the test chairs' IoU of G(E(x)) >= 0.5 in one pass and
    after `vaegan.projection.REFINE` (with its time per chair, one chair at a time as the app)."""
    import torch

    from vaegan.voxels import chair_ious
    from vaegan import projection
    from vaegan.latents import slerp

    raw, mid = [], []
    for seed in seeds:
        z = prior_draws(pipe, 2 * n, seed, truncation).numpy()  # (2n, z_dim): n pairs
        raw.append(metrics.mostly_one_piece(pipe.generate(torch.from_numpy(z[:n]), batch_size=batch_size)).mean())
        halves = np.stack([slerp(a, b, 0.5) for a, b in zip(z[:n], z[n:])])
        mid.append(metrics.mostly_one_piece(pipe.generate(torch.from_numpy(halves), batch_size=batch_size)).mean())
    figures = {"validity_raw": float(np.mean(raw)), "slerp_midpoints_valid": float(np.mean(mid)),
               "validity_rule": "occupancy 0.5-40 %, largest 26-connected piece >= 95 % of voxels"}
    if getattr(pipe, "shape_encoder", None) is not None:
        truth = test > 0
        made = pipe.generate(pipe.encode_shape(truth)) >= 0.5
        figures["encode_shape_one_pass_iou"] = float(chair_ious(made, truth).mean())
        if refine:
            t = time.perf_counter()
            refined = [projection.encode(pipe, grid).iou[0] for grid in truth]
            figures["encode_shape_refined_iou"] = float(np.mean(refined))
            figures["refine_seconds_per_chair"] = (time.perf_counter() - t) / len(truth)
    return figures


# --------------------------------------------------------------------------- output


def format_table(result: dict) -> str:
    """The readable summary: one row per set, one column per headline metric."""
    rows = []
    gen = result["generator"]
    k = len(gen["per_seed"])
    cells = []
    for _, key, scale, dec in _COLUMNS:
        m, s = gen["mean"][key] * scale, gen["std"][key] * scale
        cells.append(f"{m:.{dec}f}±{s:.{dec}f}" if k > 1 else f"{m:.{dec}f}")
    rows.append((f"generator ({k} seed{'s' if k > 1 else ''})", cells))
    for name, base in result.get("baselines", {}).items():
        rows.append((name, [f"{base['metrics'][key] * scale:.{dec}f}" for _, key, scale, dec in _COLUMNS]))
    headers = ["set"] + [h for h, *_ in _COLUMNS]
    widths = [max(len(headers[0]), *(len(r[0]) for r in rows))]
    widths += [max(len(h), *(len(r[1][i]) for r in rows)) for i, h in enumerate(headers[1:])]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for name, cells in rows:
        lines.append("  ".join([name.ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells, widths[1:])]))
    st = result["settings"]
    lines.append(
        f"n={st['n']} per set vs {st['n_test']} test chairs; level {st['level']}, "
        f"{'cleaned' if st['clean'] else 'raw'} samples; CD on {st['n_points']} points (x1e3 for MMD); "
        f"occupancy range {st['occupancy_range'][0]:.4f}-{st['occupancy_range'][1]:.3f}; "
        f"1-NNA ideal 0.5; train baseline novelty excludes self"
    )
    return "\n".join(lines)


def _jsonable(obj):
    """numpy -> Python, non-finite floats -> None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: str | Path, data: dict) -> Path:
    """Atomic write (temp file in the same folder + os.replace); creates parent folders."""
    path = Path(path)
    text = json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")), make_parents=True)


def _versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("numpy", "scipy", "torch", "scikit-image", "trimesh"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        import vaegan

        out["vaegan"] = getattr(vaegan, "__version__", None)
    except Exception:  # the version is informative only
        out["vaegan"] = None
    return out


def _git_commit() -> str | None:
    """The project's HEAD commit (read-only `git rev-parse`), or None."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint folder (or Hub repo id) for ChairPipeline.from_pretrained")
    parser.add_argument("--data", required=True,
                        help="ModelNet10 chair folder holding train/ and test/ (e.g. ../shared/data/modelnet10_chair_vol30)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSON report path (default {DEFAULT_OUT})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="latent seeds (default 0 1 2)")
    parser.add_argument("--n", type=int, default=100, help="samples per seed and per baseline (default 100)")
    parser.add_argument("--points", type=int, default=2048, help="surface points per shape for Chamfer (default 2048)")
    parser.add_argument("--level", type=float, default=0.5, help="occupancy iso-level (default 0.5)")
    parser.add_argument("--truncation", type=float, default=1.0,
                        help="scale of the prior's noise (default 1: the prior as shipped, where the app's Sample tab opens)")
    parser.add_argument("--clean", action=argparse.BooleanOptionalAction, default=True,
                        help="keep only each sample's largest piece before the metrics (default on)")
    parser.add_argument("--baseline-seed", type=int, default=0, help="seed choosing the train-n chairs (default 0)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false",
                        help="skip the train-n and mean-chair baselines")
    parser.add_argument("--batch-size", type=int, default=32, help="generator batch size (default 32)")
    parser.add_argument("--workers", type=int, default=-1,
                        help="KD-tree query threads for Chamfer (-1 = all cores, default)")


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    data = Path(args.data)
    if not data.exists():
        raise VoxelError(f"data folder {data} does not exist (expected the ModelNet10 chair folder with train/ and test/)")
    for split in ("train", "test"):
        if not (data / split).is_dir():
            raise VoxelError(f"data folder {data} has no {split}/ subfolder (expected modelnet10_chair_vol30)")
    if args.n < 1 or args.points < 1 or not 0.0 < args.level < 1.0 or not 0.0 < args.truncation <= 3.0:
        raise ConfigError("--n and --points must be >= 1, --level in (0, 1) and --truncation in (0, 3]")

    from vaegan.datasets import load_chairs
    from vaegan.pipeline import ChairPipeline

    t = time.perf_counter()
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    res = pipe.resolution
    log.info("loaded %s (resolution %d, z_dim %d)", args.checkpoint, res, pipe.z_dim)
    train, _ = load_chairs(data, "train", res)
    test, _ = load_chairs(data, "test", res)
    log.info("data: %d training chairs, %d test chairs at %d^3", len(train), len(test), res)
    load_time = time.perf_counter() - t

    result = evaluate(pipe, train, test, seeds=args.seeds, n=args.n, n_points=args.points,
                      level=args.level, clean=args.clean, baselines=args.baselines,
                      baseline_seed=args.baseline_seed, batch_size=args.batch_size,
                      workers=args.workers, progress=True, truncation=args.truncation)
    result["timings_s"]["load"] = load_time
    result["timings_s"]["wall"] = time.perf_counter() - started
    result["settings"].update({
        "checkpoint": str(args.checkpoint),
        "checkpoint_resolved": str(getattr(pipe, "root", args.checkpoint)),
        "data": str(data.resolve()),
        "command": " ".join(["python -m train"] + sys.argv[1:]) if sys.argv else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "versions": _versions(),
    })
    result["issue_figures"] = issue_figures(pipe, test, seeds=args.seeds, n=args.n, batch_size=args.batch_size,
                                            truncation=args.truncation)
    print(format_table(result))
    print(json.dumps(result["issue_figures"], indent=2))
    out = write_json(args.out, result)
    print(f"wrote {out}")
    return 0
