"""`python -m train photo-spread`: fit the encoder's predictive spread on held-out photos.

    python -m train photo-spread --checkpoint runs/vaegan32_kz/best --renders runs/photos --write
    python -m train photo-spread --checkpoint runs/vaegan32_kz/best --renders runs/photos \\
        --ikea ../shared/data/ikea_chairs_dev --write

`pipe.reconstruct` returns the predictive occupancy E[G(z)], z = mu + s * eps (see
`ModelConfig.e_predictive_std`). This command scores each candidate s by the mean per-voxel
average precision (the IKEA protocol's measure) and prints the table; with `--write` it
stores the best s in the checkpoint's encoder/config.json (atomically; the weights are not
touched). The photos it fits on:
- by default, renders of the training run's held-out val chairs, at our resolution
  (`train.eval_photo.calibration_set`: never IKEA photos, never the test split);
- with `--ikea`, a development set of real photos in the IKEA layout, at its 20^3 resolution
  exactly as `eval-photo` scores them. Real photos are what the spread is for, and they want
  a wider one than renders (a photo unlike the training renders leaves more doubt). A figure
  then measured on the same photos is optimistic: quote one from a set kept apart.
"""

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from vaegan import ChairPipeline
from vaegan.errors import ConfigError
from vaegan.pipeline import PREDICTIVE_SAMPLES

from .eval_photo import (_check_renders, _render_batches, calibration_set, frame_to_ikea, ikea_pictures, load_ikea,
                         occupancy_iou, score, training_mean_chair)
from .photos import PhotoSet

CANDIDATES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
# Occupancy levels the IoU is also read at: the predictive is an average of chairs, so its
# best IoU level sits below 0.5 (pick one here on held-out photos, then eval-photo --threshold).
LEVELS = (0.3, 0.4, 0.5)


def spread_table(pipe: ChairPipeline, photos: PhotoSet, idx: np.ndarray, candidates=CANDIDATES,
                 samples: int = PREDICTIVE_SAMPLES) -> list[dict]:
    """Mean AP x100 / IoU@0.5 (and IoU at each of LEVELS, "iou_at") of the predictive occupancy
    on renders `idx`, per candidate s."""
    _check_renders(pipe, photos)
    batches = [(images, [photos.voxels[photos.chair[i]] > 0 for i in part])
               for part, images in _render_batches(photos, idx)]
    return _spread_rows(pipe, batches, candidates, samples)


def ikea_spread_table(pipe: ChairPipeline, items, candidates=CANDIDATES, samples: int = PREDICTIVE_SAMPLES) -> list[dict]:
    """The same on real photos (`train.eval_photo.load_ikea` items), scored at their 20^3."""
    pictures = ikea_pictures(pipe, items)  # (N, 3, S, S)
    batches = [(pictures[i:i + 32], [item.gt for item in items[i:i + 32]]) for i in range(0, len(items), 32)]
    return _spread_rows(pipe, batches, candidates, samples, frame_to_ikea)


def _spread_rows(pipe: ChairPipeline, batches, candidates, samples: int, to_grid=None) -> list[dict]:
    """batches of (pictures (b, 3, S, S), their bool ground truths) -> a row per candidate s."""
    encoder = pipe._require_encoder()
    if encoder.config.e_bank_size:
        raise ConfigError("this encoder picks among a bank of codes (e_bank_size > 0): its predictive is the "
                          "bank mixture, there is no spread to fit")
    with torch.inference_mode():  # posterior means (b, z_dim), encoded once for every candidate
        encoded = [(encoder(pictures)[0], truths) for pictures, truths in batches]
    to_grid = to_grid or (lambda p: p)
    rows = []
    for std in candidates:
        scores = []  # per photo: AP, IoU at each of LEVELS
        for mu, truths in encoded:
            prob = pipe.predictive(mu, std=std, samples=samples)  # (b, R, R, R)
            for p, t in zip(prob, truths):
                p = to_grid(p)
                scores.append([score(p, t)[0]] + [occupancy_iou(p, t, level) for level in LEVELS])
        ap, *ious = np.mean(scores, axis=0)
        iou_at = {level: float(i) for level, i in zip(LEVELS, ious)}
        rows.append({"std": float(std), "ap": 100 * float(ap), "iou": iou_at[0.5], "iou_at": iou_at})
    return rows


def write_spread(checkpoint: Path, std: float) -> Path:
    """Set e_predictive_std in <checkpoint>/encoder/config.json (temp file + rename)."""
    path = Path(checkpoint) / "encoder" / "config.json"
    config = json.loads(path.read_text())
    config["e_predictive_std"] = float(std)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, path)
    return path


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="local pipeline folder with an encoder/")
    parser.add_argument("--renders", required=True, help="renders folder (python -m train.photos) the encoder was trained "
                        "on (with --ikea: its training voxels' mean chair sets the ground truths' yaw)")
    parser.add_argument("--ikea", default="", help="fit on this development set of real photos (IKEA layout: "
                        "images/, voxels/, pairs.tsv) instead of held-out renders")
    parser.add_argument("--limit", type=int, default=128, help="held-out renders to score (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=PREDICTIVE_SAMPLES,
                        help="draws per photo while fitting; fewer draws favour a smaller s (default: %(default)s, "
                        "as reconstruct)")
    parser.add_argument("--stds", type=float, nargs="+", default=list(CANDIDATES), metavar="S",
                        help="candidate spreads (default: %(default)s)")
    parser.add_argument("--write", action="store_true", help="store the best s in encoder/config.json")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    if args.ikea:
        mean, _ = training_mean_chair(args.renders, "", args.ikea, pipe.resolution)  # settles the truths' yaw
        items = load_ikea(args.ikea, mean)
        rows = ikea_spread_table(pipe, items, candidates=args.stds, samples=args.samples)
        source = f"real photos of {args.ikea} (20^3, as eval-photo)"
        count = len(items)
    else:
        photos = PhotoSet(args.renders, "train")
        idx, source = calibration_set(Path(args.checkpoint), photos, args.limit)
        rows = spread_table(pipe, photos, idx, candidates=args.stds, samples=args.samples)
        count = len(idx)
    best = max(rows, key=lambda r: r["ap"])
    print(f"predictive spread s on {count} {source} ({args.samples} draws each):")
    for r in rows:
        ious = "   ".join(f"IoU@{level:g} {iou:.3f}" for level, iou in r["iou_at"].items())
        print(f"  s = {r['std']:<4g} AP {r['ap']:5.1f}   {ious}{'   <- best AP' if r is best else ''}")
    level = max(best["iou_at"], key=best["iou_at"].get)
    print(f"at s = {best['std']:g} the best IoU level is {level:g} (eval-photo --threshold {level:g})")
    if args.write:
        print(f"wrote e_predictive_std = {best['std']:g} to {write_spread(Path(args.checkpoint), best['std'])}")
    print(f"{time.perf_counter() - start:.0f} s")
    return 0
