"""`python -m train photo-spread`: fit the encoder's predictive spread on held-out renders.

    python -m train photo-spread --checkpoint runs/vaegan32_kz/best --renders runs/photos --write

`pipe.reconstruct` returns the predictive occupancy E[G(z)], z = mu + s * eps (see
`ModelConfig.e_predictive_std`). This command scores each candidate s by the mean per-voxel
average precision (the IKEA protocol's measure, at our resolution) on renders of the
training run's held-out val chairs (`train.eval_photo.calibration_set`: never IKEA photos,
never the test split), prints the table, and with `--write` stores the best s in the
checkpoint's encoder/config.json (atomically; the weights are not touched).
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

from .eval_photo import _check_renders, _render_batches, calibration_set, score
from .photos import PhotoSet

CANDIDATES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)


def spread_table(pipe: ChairPipeline, photos: PhotoSet, idx: np.ndarray, candidates=CANDIDATES,
                 samples: int = PREDICTIVE_SAMPLES) -> list[dict]:
    """Mean AP x100 / IoU@0.5 of the predictive occupancy on renders `idx`, per candidate s."""
    _check_renders(pipe, photos)
    encoder = pipe._require_encoder()
    if encoder.config.e_bank_size:
        raise ConfigError("this encoder picks among a bank of codes (e_bank_size > 0): its predictive is the "
                          "bank mixture, there is no spread to fit")
    batches = []  # (render indices, posterior means (b, z_dim)), encoded once for every candidate
    with torch.inference_mode():
        for part, images in _render_batches(photos, idx):
            batches.append((part, encoder(images)[0]))
    rows = []
    for std in candidates:
        scores = []
        for part, mu in batches:
            prob = pipe.predictive(mu, std=std, samples=samples)  # (b, R, R, R)
            scores += [score(p, photos.voxels[photos.chair[i]] > 0) for p, i in zip(prob, part)]
        ap, iou = np.mean(scores, axis=0)
        rows.append({"std": float(std), "ap": 100 * float(ap), "iou": float(iou)})
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
    parser.add_argument("--renders", required=True, help="renders folder (python -m train.photos) the encoder was trained on")
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
    photos = PhotoSet(args.renders, "train")
    idx, source = calibration_set(Path(args.checkpoint), photos, args.limit)
    rows = spread_table(pipe, photos, idx, candidates=args.stds, samples=args.samples)
    best = max(rows, key=lambda r: r["ap"])
    print(f"predictive spread s on {len(idx)} {source} ({args.samples} draws each):")
    for r in rows:
        print(f"  s = {r['std']:<4g} AP {r['ap']:5.1f}   IoU {r['iou']:.3f}{'   <- best AP' if r is best else ''}")
    if args.write:
        print(f"wrote e_predictive_std = {best['std']:g} to {write_spread(Path(args.checkpoint), best['std'])}")
    print(f"{time.perf_counter() - start:.0f} s")
    return 0
