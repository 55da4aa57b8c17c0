"""`python -m train eval-photo`: how well photos turn into chairs, on real IKEA photos and on
held-out renders, with the mean-chair baseline in the same run.

    python -m train eval-photo --data ../shared/data/ikea_chairs_dev --checkpoint checkpoints/chair32 \\
        --renders runs/photos --out runs/eval_photo

Protocol (the 3D-GAN paper's IKEA experiment, see ../shared/data/README.md): for every photo,
per-voxel average precision (scikit-learn `average_precision_score`) of the predicted
occupancy probabilities against the ground-truth voxels at the ground truth's 20^3
resolution, averaged over photos (reported x100 like the paper), and IoU of the prediction
thresholded at `--threshold` (0.5) beside it. The mean-chair baseline predicts, for every
photo, the mean occupancy of the ModelNet training chairs (pose _1). On held-out renders
(the ModelNet *test* chairs, never trained on nor used for checkpoint selection) the same
figures are computed at our 32^3 resolution.

What is scored is what the user gets: the chair the app shows, `generate(encode(photo))`
thresholded at 0.5 (its IoU), and `reconstruct(photo)`, sigmoid(G's logits / T) at the same
code, whose 0.5 level is that chair and whose softer values rank the uncertain voxels (its
AP; T = the encoder's `e_temperature`, chosen on renders of held-out training chairs by
`train photo-encoder`). With `--k` > 1 the best IoU among the `candidates` is reported too,
an oracle figure: how often one of the thumbnails the app offers is the better chair. The
mean chair is scored at 0.5 and at its best level, chosen on the training run's held-out
chairs (`mean_chair_level`), never on the photos.

Frame mapping, IKEA 20^3 <-> ours 32^3 (worked out from the data; tests/test_eval_photo.py):

1. Axes. IKEA grids have up = array axis 0; ours have up = axis 2. `np.moveaxis(gt, 0, 2)`
   turns IKEA axes (up, a, b) into (a, b, up): a cyclic permutation, i.e. a proper rotation
   (no mirror image), as `vaegan.voxels.load_voxels(source="ikea")` does.
2. Yaw. The IKEA CAD models do not share a yaw. Each ground truth is turned about the up axis
   by the multiple of 90 deg (`np.rot90(g, k, axes=(0, 1))`) whose copy, fitted into our
   32^3 frame, overlaps the mean ModelNet training chair most (sum of the mean chair's
   occupancy over the model's voxels). Only the ground truth and training chairs decide k,
   never a prediction. All three dev models come out with the backrest toward high axis 0,
   as our chairs. Checked on ModelNet test chairs written out as IKEA grids at each of the 4
   yaws: the turn is undone for 384 of 400 (96%; 5 odd chairs fit the mean chair better
   turned, whatever their yaw).
3. Scale and position. Both datasets normalise every object the same way: its largest
   dimension fills a fixed span and its box is centred on every axis (IKEA: 20 of 20
   voxels; ours: 24 of 32, i.e. voxels [4, 28) at 32^3). So the fixed map between the frames
   takes our box [R/8, 7R/8)^3 onto the IKEA grid: IKEA cell j covers our voxels
   [4 + 1.2 j, 4 + 1.2 (j + 1)) per axis at R = 32. `frame_to_ikea` gives each IKEA cell the
   mean predicted probability over that region (exact overlap weights). The map does not
   look at the prediction, so the same map serves predictions and the mean-chair baseline,
   and a prediction of the wrong size is penalised, not rescaled.

Comparisons happen in the yaw-canonical 20^3 grid with up = axis 2: the ground truth is only
permuted (steps 1-2, no resampling), the prediction is resampled (step 3).

How much the resampling itself costs, measured on the three dev ground truths: taking each to
32^3 with the exact inverse map (`ikea_to_frame`) and back with `frame_to_ikea` keeps AP at
100.0 / 99.8 / 97.9 and IoU@0.5 at 0.957 / 0.957 / 0.908 (54 INGOLF / 73 SNILLE / 78 STEFAN):
a perfect 32^3 prediction scores about that. (`vaegan.voxels.fit_to_frame` places objects on
whole voxels after re-cropping, up to one voxel off this continuous map, which costs thin
slats a lot: its round trip gives IoU 0.73 / 0.96 / 0.64; so it is not used for scoring.)
Max-pooling instead of the mean was worse (round-trip AP 0.50-0.93).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from vaegan import ChairPipeline
from vaegan.errors import VoxelError
from vaegan.voxels import fit_to_frame, read_mat

log = logging.getLogger(__name__)

IKEA_RES = 20
# Occupancy levels the mean chair's own level is picked from (`mean_chair_level`).
MEAN_LEVELS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
FRAME_SPAN = 24 / 32  # the share of our grid the object's largest dimension spans


# ----------------------------------------------------------------------------- frame mapping
def mean_chair(voxels: np.ndarray) -> np.ndarray:
    """(N, R, R, R) occupancy -> the mean chair float32 (R, R, R): each voxel's occupied share."""
    return np.asarray(voxels, np.float32).mean(0)


def mean_chair_level(mean: np.ndarray, voxels: np.ndarray) -> float:
    """The level of MEAN_LEVELS at which the mean chair (R, R, R) has the best mean IoU with
    the chairs `voxels` (N, R, R, R) (eval-photo passes the calibration renders' chairs: the
    run's held-out val chairs when it recorded them). At 0.5 the mean chair is only its core
    (IoU ~0.08), an unfair baseline for IoU; at its own level it is the strongest answer that
    ignores the photo."""
    truths = np.asarray(voxels) > 0
    return max(MEAN_LEVELS, key=lambda level: np.mean([occupancy_iou(mean, t, level) for t in truths]))


def ikea_axes(grid: np.ndarray) -> np.ndarray:
    """IKEA (up, a, b) array -> (a, b, up): our up = axis 2 (a proper rotation)."""
    return np.moveaxis(np.asarray(grid), 0, 2)


def canonical_yaw(gt_up2: np.ndarray, mean: np.ndarray) -> int:
    """k in 0..3: `np.rot90(gt_up2, k, axes=(0, 1))` overlaps the mean training chair most.

    gt_up2 is a ground truth with up = axis 2 at any resolution; it is fitted into the mean
    chair's frame first. Ties (never seen) go to the smallest k.
    """
    fitted = fit_to_frame(gt_up2, mean.shape[0], FRAME_SPAN, name="ground truth")
    scores = [float((np.rot90(fitted, k, axes=(0, 1)) * mean).sum()) for k in range(4)]
    return int(np.argmax(scores))


def _cell_weights(n_in: int, start: float, span: float, n_out: int) -> np.ndarray:
    """(n_out, n_in): share of output cell j (input interval [start + j c, start + (j+1) c),
    c = span / n_out) that input voxel i covers; rows sum to 1 inside the grid."""
    cell = span / n_out
    lo = start + cell * np.arange(n_out)[:, None]
    i = np.arange(n_in)[None, :]
    return np.clip(np.minimum(lo + cell, i + 1) - np.maximum(lo, i), 0, None) / cell


def frame_to_ikea(prob: np.ndarray, out: int = IKEA_RES) -> np.ndarray:
    """Our (R, R, R) probabilities -> float32 (out, out, out) on the IKEA grid, up = axis 2.

    The object box of our frame, [R/8, 7R/8) per axis, is mapped onto the whole IKEA grid and
    each IKEA cell gets the mean probability of our voxels inside it (module docstring, 3).
    """
    prob = np.asarray(prob, np.float32)
    res = prob.shape[0]
    span = FRAME_SPAN * res
    w = _cell_weights(res, (res - span) / 2, span, out).astype(np.float32)  # (out, R)
    return np.einsum("ai,bj,ck,ijk->abc", w, w, w, prob, optimize=True).astype(np.float32)


def ikea_to_frame(grid: np.ndarray, res: int = 32) -> np.ndarray:
    """The inverse of `frame_to_ikea`: an IKEA-grid (n, n, n) array (up = axis 2) -> our
    (res, res, res) frame, each voxel the covered share of occupied IKEA cells, >= 0.5 kept.
    float32 {0, 1}. For tests and pictures; scoring never upsamples the ground truth."""
    grid = np.asarray(grid, np.float32)
    n = grid.shape[0]
    span = FRAME_SPAN * res
    share = _cell_weights(res, (res - span) / 2, span, n).T * (span / n)  # (res, n): voxel i in cell j
    up = np.einsum("ia,jb,kc,abc->ijk", share, share, share, grid, optimize=True)
    return (up >= 0.5).astype(np.float32)


@dataclass
class IkeaItem:
    image: Path
    voxel_id: str
    model: str
    gt: np.ndarray  # bool (20, 20, 20), up = axis 2, canonical yaw
    yaw: int  # k of np.rot90 applied to the ground truth


def load_ikea(folder: str | Path, mean: np.ndarray) -> list[IkeaItem]:
    """The photos of an IKEA folder (images/, voxels/, pairs.tsv) with canonical ground truth."""
    folder = Path(folder)
    pairs = folder / "pairs.tsv"
    if not pairs.is_file():
        raise VoxelError(f"{folder} is not an IKEA photo folder: {pairs} is missing "
                         "(expected images/, voxels/<id>.mat and pairs.tsv)")
    with pairs.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or not {"image", "voxel_id"} <= set(rows[0]):
        raise VoxelError(f"{pairs} needs the columns image, voxel_id (and model)")
    truth: dict[str, tuple[np.ndarray, int]] = {}
    items = []
    for row in rows:
        vid = str(row["voxel_id"]).strip()
        if vid not in truth:
            raw = read_mat(folder / "voxels" / f"{vid}.mat", key="grid")
            if raw.ndim != 3:
                raise VoxelError(f"voxels/{vid}.mat: grid has shape {raw.shape}, expected 3-D")
            up2 = ikea_axes(raw >= 0.5)
            k = canonical_yaw(up2, mean)
            truth[vid] = (np.rot90(up2, k, axes=(0, 1)).copy(), k)
        gt, k = truth[vid]
        items.append(IkeaItem(folder / "images" / row["image"], vid, row.get("model", ""), gt, k))
    return items


# ----------------------------------------------------------------------------- scores
def score(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(average precision, IoU at threshold) of probabilities `pred` against bool `gt`."""
    gt = np.asarray(gt, bool).ravel()
    pred = np.asarray(pred, np.float32).ravel()
    ap = float(average_precision_score(gt, pred)) if gt.any() else float("nan")
    return ap, occupancy_iou(pred, gt, threshold)


def occupancy_iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of `pred` >= threshold with bool `gt` (1 when both are empty); score() without the
    average precision, which is the costly half, for reading IoU at several levels."""
    hit = np.asarray(pred) >= threshold
    gt = np.asarray(gt, bool)
    union = np.logical_or(hit, gt).sum()
    return float(np.logical_and(hit, gt).sum() / union) if union else 1.0


@torch.inference_mode()
def predict(pipe: ChairPipeline, images: torch.Tensor, k: int = 1, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """float (N, 3, S, S) pictures in [0, 1] -> (what `pipe.reconstruct` returns for each,
    sigmoid(G's logits / T) float32 (N, R, R, R), whose 0.5 level is the chair the app shows;
    the shown chairs of the k candidates, bool (N, k, R, R, R), the first being that chair)."""
    encoder = pipe._require_encoder()
    soft, shown = [], []
    for chunk in images.split(batch_size):
        codes = encoder.candidates(chunk, k)  # (b, k, z_dim), the photo's own code first
        soft.append(pipe.soft_occupancy(codes[:, 0]))
        shown.append(pipe.generate(codes.reshape(-1, pipe.z_dim)).reshape((len(chunk), k) + soft[-1].shape[1:]) >= 0.5)
    return np.concatenate(soft), np.concatenate(shown)


def _score_row(soft: np.ndarray, shown: np.ndarray, gt: np.ndarray, threshold: float, to_grid=None) -> dict:
    """In the ground truth's grid: AP x100 of the soft occupancy, IoU of the shown chair
    (shown[0], resampled like any prediction and cut at 0.5), IoU of the soft occupancy at
    `threshold` when that is not 0.5, and the best IoU among the candidates shown[1:] too."""
    to_grid = to_grid or (lambda p: p)
    ious = [occupancy_iou(to_grid(c.astype(np.float32)), gt) for c in shown]
    row = {"ap": 100 * score(to_grid(soft), gt)[0], "iou": ious[0],
           "reconstruct_vs_shown_iou": occupancy_iou(soft, shown[0])}  # at our resolution: the contract
    if threshold != 0.5:
        row["iou_threshold"] = occupancy_iou(to_grid(soft), gt, threshold)
    if len(shown) > 1:
        row["iou_best_candidate"] = max(ious)
    return row


def ikea_pictures(pipe: ChairPipeline, items: list[IkeaItem]) -> torch.Tensor:
    """The photos as the encoder sees them, float (N, 3, S, S) in [0, 1]."""
    return torch.stack([pipe.preprocess(item.image)[0] for item in items])


def evaluate_ikea(pipe: ChairPipeline, items: list[IkeaItem], mean: np.ndarray, threshold: float = 0.5,
                  mean_level: float | None = None, k: int = 1) -> dict:
    """Per-photo and mean AP (x100) / IoU of the pipeline and of the mean chair, at 20^3
    (the mean chair's IoU also at its own `mean_level` when given: mean_chair_iou_level)."""
    soft, shown = predict(pipe, ikea_pictures(pipe, items), k)
    base = frame_to_ikea(mean)
    rows = []
    for item, sp, sh in zip(items, soft, shown):
        bap, biou = score(base, item.gt, 0.5)
        rows.append({"image": item.image.name, "voxel_id": item.voxel_id, "model": item.model, "yaw": item.yaw,
                     **_score_row(sp, sh, item.gt, threshold, frame_to_ikea),
                     "mean_chair_ap": 100 * bap, "mean_chair_iou": biou,
                     **_mean_at_level(base, item.gt, mean_level)})
    models = sorted({r["model"] for r in rows})
    return {"n": len(rows), "threshold": threshold, "mean_level": mean_level, "k": k,
            **_means(rows), "rows": rows, "by_model": {m: _means([r for r in rows if r["model"] == m]) for m in models}}


def _mean_at_level(mean: np.ndarray, gt: np.ndarray, level: float | None) -> dict:
    return {} if level is None else {"mean_chair_iou_level": occupancy_iou(mean, gt, level)}


def _render_batches(photos, idx: np.ndarray, size: int = 64):
    """(sorted indices, float pictures (B, 3, S, S)) of a PhotoSet in chunks."""
    for start in range(0, len(idx), size):
        part = np.sort(idx[start:start + size])
        yield part, photos.pictures(part)


def _check_renders(pipe: ChairPipeline, photos) -> None:
    if photos.image_size != pipe.config.image_size:
        raise VoxelError(f"the renders are {photos.image_size} px but the encoder takes "
                         f"{pipe.config.image_size} px; render them again with --image-size {pipe.config.image_size}")
    if photos.resolution != pipe.resolution:
        raise VoxelError(f"the renders carry {photos.resolution}^3 voxels but the generator makes {pipe.resolution}^3")


def evaluate_renders(pipe: ChairPipeline, photos, mean: np.ndarray | None, threshold: float = 0.5,
                     limit: int = 0, indices: np.ndarray | None = None, mean_level: float | None = None,
                     k: int = 1) -> dict:
    """AP (x100) / IoU at our resolution on rendered photos (a train.photos.PhotoSet split);
    mean=None skips the mean-chair baseline (its columns are NaN)."""
    idx = np.arange(len(photos)) if indices is None else np.asarray(indices)
    if limit and len(idx) > limit:
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    _check_renders(pipe, photos)
    rows = []
    for part, images in _render_batches(photos, idx):
        soft, shown = predict(pipe, images, k)
        for i, sp, sh in zip(part, soft, shown):
            gt = photos.voxels[photos.chair[i]] > 0
            bap, biou = score(mean, gt, 0.5) if mean is not None else (float("nan"), float("nan"))
            rows.append({"index": int(i), "chair": photos.names[photos.chair[i]],
                         **_score_row(sp, sh, gt, threshold), "mean_chair_ap": 100 * bap, "mean_chair_iou": biou,
                         **_mean_at_level(mean, gt, None if mean is None else mean_level)})
    return {"n": len(rows), "chairs": len({r["chair"] for r in rows}), "threshold": threshold,
            "mean_level": mean_level, "k": k, **_means(rows), "rows": rows}


def calibration_set(checkpoint: Path, photos, limit: int = 256) -> tuple[np.ndarray, str]:
    """Render indices to choose the mean chair's level on: the photo encoder's held-out val chairs
    (from the train_config.json of its run, in the checkpoint's encoder/ folder or at its root,
    split as `train.photo_encoder` split them), else every chair of the training split. Never
    IKEA photos, never the test split."""
    from .gan import split_by_id

    source = "training renders (no val split recorded)"
    chairs = np.arange(len(photos.names))
    for cfg_path in (Path(checkpoint) / "encoder" / "train_config.json", Path(checkpoint) / "train_config.json"):
        if not cfg_path.is_file():
            continue
        cfg = json.loads(cfg_path.read_text())
        if "val_chairs" in cfg and "seed" in cfg and "code_weight" in cfg:  # a train.photo_encoder run
            _, chairs = split_by_id(photos.names, cfg["val_chairs"], cfg["seed"])
            source = f"renders of the run's {len(chairs)} held-out val chairs"
            break
    idx = np.flatnonzero(np.isin(photos.chair, chairs))
    if len(idx) > limit:
        idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
    return idx, source


def _means(rows: list[dict]) -> dict:
    keys = [k for k in ("ap", "iou", "iou_threshold", "iou_best_candidate", "reconstruct_vs_shown_iou",
                        "mean_chair_ap", "mean_chair_iou", "mean_chair_iou_level") if rows and k in rows[0]]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


# ----------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="IKEA photo folder (images/, voxels/, pairs.tsv)")
    parser.add_argument("--checkpoint", default="checkpoints/chair32", help="pipeline with an encoder/ (default: %(default)s)")
    parser.add_argument("--renders", default="", help="renders folder (python -m train.photos): its test split "
                        "gives the held-out render figures, its training voxels the mean chair")
    parser.add_argument("--modelnet", default="", help="ModelNet chair folder for the mean chair when there is no "
                        "--renders (default: <data>/../modelnet10_chair_vol30)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="also report IoU of reconstruct() at this level (default: %(default)s: the shown chair)")
    parser.add_argument("--k", type=int, default=0,
                        help="candidates per photo for the best-of-k IoU (default 0: as the app, min(4, 1 + gallery))")
    parser.add_argument("--render-limit", type=int, default=0, help="evaluate at most this many renders (0 = all)")
    parser.add_argument("--out", default="", help="folder for eval_photo.json, the per-photo CSV and a sheet")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")


def training_mean_chair(renders: str, modelnet: str, data: str, resolution: int) -> tuple[np.ndarray, str]:
    """The mean chair from the renders' training voxels, or from a ModelNet folder."""
    if renders:
        from .photos import PhotoSet

        photos = PhotoSet(renders, "train")
        return mean_chair(photos.voxels), f"{renders} (train voxels)"
    from vaegan.datasets import load_chairs

    folder = modelnet or str(Path(data).resolve().parent / "modelnet10_chair_vol30")
    if not Path(folder).exists():
        raise VoxelError(f"no mean chair: pass --renders or --modelnet (tried {folder})")
    grids, _ = load_chairs(folder, "train", resolution)
    return mean_chair(grids), folder


def _print_block(title: str, r: dict) -> None:
    print(title)
    print(f"  shown chair, generate(encode(photo))     IoU@0.5 {r['iou']:.3f}")
    print(f"  reconstruct(photo), soft                 AP {r['ap']:5.1f}"
          + (f"   IoU@{r['threshold']:g} {r['iou_threshold']:.3f}" if "iou_threshold" in r else "")
          + f"   (its 0.5 level vs the shown chair: IoU {r['reconstruct_vs_shown_iou']:.3f})")
    if "iou_best_candidate" in r:
        print(f"  best of the {r['k']} candidates (oracle)      IoU@0.5 {r['iou_best_candidate']:.3f}")
    level = (f", IoU {r['mean_chair_iou_level']:.3f} at its best level {r['mean_level']:g}"
             if "mean_chair_iou_level" in r else "")
    print(f"  mean chair                               AP {r['mean_chair_ap']:5.1f}   IoU@0.5 {r['mean_chair_iou']:.3f}{level}")


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    start = time.perf_counter()
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    encoder = pipe._require_encoder()
    k = args.k or min(4, 1 + encoder.config.e_gallery)
    if not 1 <= k <= 1 + encoder.config.e_gallery:
        raise ValueError(f"--k must be from 1 to {1 + encoder.config.e_gallery} for this encoder, got {args.k}")
    mean, mean_source = training_mean_chair(args.renders, args.modelnet, args.data, pipe.resolution)
    if mean.shape[0] != pipe.resolution:
        raise VoxelError(f"the mean chair is {mean.shape[0]}^3 but the generator makes {pipe.resolution}^3")
    items = load_ikea(args.data, mean)
    report = {"checkpoint": str(args.checkpoint), "mean_chair": mean_source, "threshold": args.threshold,
              "k": k, "temperature": encoder.config.e_temperature}
    mean_level = None
    if args.renders:
        from .photos import PhotoSet

        train_photos = PhotoSet(args.renders, "train")
        idx, source = calibration_set(Path(pipe.root), train_photos)
        mean_level = mean_chair_level(mean, train_photos.voxels[np.unique(train_photos.chair[idx])])
        report["mean_chair_level"] = {"level": mean_level, "fitted_on": source}
        print(f"mean chair level {mean_level:g}, chosen on the chairs of {len(idx)} {source}")
    ikea = evaluate_ikea(pipe, items, mean, args.threshold, mean_level, k)
    report["ikea"] = {k: v for k, v in ikea.items() if k != "rows"}
    _print_block(f"IKEA photos ({ikea['n']}, {args.data}), at 20^3:", ikea)
    for model, m in ikea["by_model"].items():
        print(f"    {model.split('/')[0]:<20} IoU {m['iou']:.3f} AP {m['ap']:5.1f} "
              f"(mean chair AP {m['mean_chair_ap']:5.1f}"
              + (f", IoU {m['mean_chair_iou_level']:.3f} at its level)" if "mean_chair_iou_level" in m else ")"))
    renders = None
    if args.renders:
        from .photos import PhotoSet

        try:
            test = PhotoSet(args.renders, "test")
        except VoxelError as err:
            print(f"held-out renders: skipped ({err})")
        else:
            renders = evaluate_renders(pipe, test, mean, args.threshold, args.render_limit, mean_level=mean_level,
                                       k=k)
            report["renders"] = {k: v for k, v in renders.items() if k != "rows"}
            _print_block(f"held-out renders ({renders['n']} of {renders['chairs']} ModelNet test chairs), "
                         f"at {pipe.resolution}^3:", renders)
    report["seconds"] = round(time.perf_counter() - start, 1)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / "eval_photo.json", report)
        _write_rows(out / "ikea_photos.csv", ikea["rows"])
        if renders is not None:
            _write_rows(out / "renders.csv", renders["rows"])
        write_sheet(pipe, items[:16], out / "ikea_sheet.png")
        print(f"-> {out}")
    return 0


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _write_rows(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    os.replace(tmp, path)


def write_sheet(pipe: ChairPipeline, items: list[IkeaItem], path: Path, size: int = 128) -> None:
    """Rows of (photo as the encoder sees it, its chair, the ground truth): the model card figure."""
    from PIL import Image

    from vaegan.render import contact_sheet, render_grids

    tiles = []
    for item in items:
        seen = pipe.preprocess(item.image)[1].resize((size, size), Image.Resampling.BILINEAR)
        vox = pipe.reconstruct(item.image)
        gt = ikea_to_frame(item.gt, pipe.resolution)
        tiles += [np.asarray(seen), *render_grids(np.stack([vox, gt]), size=size, points=20_000)]
    contact_sheet(tiles, cols=6).save(path)
