"""`python -m train classify`: is a good discriminator a good classifier? (3D-GAN, Sec. 4.2)

    python -m train classify --data ../shared/data/modelnet10_vox30.npz \\
        --checkpoint checkpoints/chair32 --checkpoint runs/modelnet10/checkpoint \\
        --names chairs-D modelnet10-D --raw [--layers 1 2 3] [--pool 2] [--out runs/classify]

The 3D-GAN paper (Wu et al. 2016) takes its discriminator, trained without labels, as a
feature extractor: the responses of conv layers 2-4 are max-pooled (kernels 8, 4, 2 on
their 16^3, 8^3, 4^3 maps, i.e. to 2^3 each), concatenated, and a linear SVM on top
classifies ModelNet10 at 91.0 % (ModelNet40: 83.3 %). This command repeats that protocol:

* Data: `modelnet10_vox30.npz` (X_train, y_train, X_test, y_test; the official split, one
  pose per shape) loaded with `vaegan.datasets.load_modelnet10_npz` at the checkpoint's
  resolution (30^3 padded to 32^3; 64^3 = each voxel a 2^3 block). A checkpoint whose
  resolution is not a multiple of 32 cannot see these grids and is refused.
* Features per checkpoint: the discriminator in eval mode (BatchNorm running statistics),
  batched under `torch.inference_mode`; each selected block's activations (after the
  LeakyReLU) are adaptive-max-pooled to `--pool`^3 and concatenated. The default blocks
  are the last three, the ones at 16^3, 8^3 and 4^3: at 64^3 those are exactly the
  paper's conv layers 2-4; at 32^3 (our D has one block less) they are all three blocks,
  the paper's layers 2-4 by map size, and `--pool 2` reproduces its {8, 4, 2} kernels.
  (`--layers 2 3` drops the first block, the paper's layers by depth.)
* Classifier: a linear SVM (hinge loss, L2, one-vs-one) on standardised features,
  solved by scikit-learn's libsvm `SVC` on the precomputed linear kernel (the same model
  as a linear SVM on the features, about 50x faster here than liblinear's `LinearSVC`).
  C is chosen by stratified k-fold cross-validation on the training split only
  (`--c-grid`, `--folds`; the scaler is fitted inside each fold), then the SVM is refit
  on the whole training split; the test split is used once, for the report.
* `--raw`: the baseline, the binary voxels themselves as features (R^3 = 32768 at 32^3),
  not standardised (every feature is already {0, 1}; standardising would blow up rare
  voxels), through the same SVM and CV.
* `--random-d`: a control, the same discriminator architecture with untrained weights.
* The paper's 91.0 % is printed beside the measured rows (reported, not measured).

Written to `--out` (a folder): `results.json` (settings, versions, timings; per feature
set: test accuracy with its 95 % Wilson interval, balanced accuracy, per-class accuracy,
confusion matrix, test predictions, chosen C, CV scores; exact McNemar tests between
every pair of sets on the same test shapes) and `confusion_<name>.png` per feature set
(PIL, no matplotlib).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from vaegan.errors import CheckpointError, ConfigError, VoxelError

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/classify"
MODELNET10_CLASSES = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand",
                      "sofa", "table", "toilet")
NPZ_ARRAYS = ("X_train", "y_train", "X_test", "y_test")
DEFAULT_C_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# What the paper reports (Wu et al. 2016, Table 1: "3D-GAN (ours)", unsupervised, ModelNet10).
PAPER = {"name": "3D-GAN paper (reported)", "accuracy": 0.910, "modelnet40_accuracy": 0.833,
         "n_features": 8 * (128 + 256 + 512),
         "note": "Wu et al. 2016, Table 1: D trained on 7 ShapeNet classes without labels, 64^3, "
                 "conv layers 2-4 max-pooled (kernels 8, 4, 2) and concatenated, linear SVM; "
                 "reported, not measured here"}


# --------------------------------------------------------------------------- data


def load_npz_splits(path: str | Path, resolution: int) -> dict:
    """`modelnet10_vox30.npz` -> {"x_train", "y_train", "x_test", "y_test", "class_names"}.

    Grids are uint8 (N, R, R, R) in our frame. Checks every expected array up front, so a
    wrong file fails in one clear line before anything slow happens.
    """
    from vaegan.datasets import load_modelnet10_npz

    path = Path(path)
    if not path.exists():
        raise VoxelError(f"data file {path} does not exist (expected modelnet10_vox30.npz)")
    if path.is_dir() or path.suffix != ".npz":
        raise VoxelError(f"--data must be an .npz with arrays {', '.join(NPZ_ARRAYS)} "
                         f"(e.g. ../shared/data/modelnet10_vox30.npz), got {path}")
    try:
        with np.load(path) as data:
            files = set(data.files)
            labels = {k: data[k] for k in ("y_train", "y_test") if k in files}
            names = [str(n) for n in data["class_names"]] if "class_names" in files else None
    except Exception as err:  # zip / pickle errors vary; all mean "not a usable npz"
        raise VoxelError(f"cannot read {path} as an .npz: {err}") from err
    missing = [k for k in NPZ_ARRAYS if k not in files]
    if missing:
        raise VoxelError(f"{path.name} lacks array(s) {missing}: expected {', '.join(NPZ_ARRAYS)} "
                         f"(found {sorted(files)})")
    for key, y in labels.items():
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise VoxelError(f"{path.name}: {key} must be a 1-D array of non-negative integer labels, "
                             f"got {y.dtype} {y.shape}")
    out = {}
    for split in ("train", "test"):
        x, y = load_modelnet10_npz(path, split, resolution)  # raises VoxelError on bad shapes
        if len(x) == 0:
            raise VoxelError(f"{path.name}: the {split} split is empty")
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    classes = np.union1d(out["y_train"], out["y_test"])
    n_classes = int(classes.max()) + 1
    if names is None or len(names) < n_classes:
        names = (list(MODELNET10_CLASSES) if np.array_equal(classes, np.arange(10))
                 else [f"class {k}" for k in range(n_classes)])
    out["class_names"] = names[:n_classes]
    counts = np.bincount(out["y_train"], minlength=n_classes)[classes]
    if len(np.unique(out["y_train"])) < 2:
        raise VoxelError(f"{path.name}: the training split has a single class; nothing to classify")
    if counts.min() < 2:
        raise VoxelError(f"{path.name}: every class needs >= 2 training examples for cross-validation "
                         f"(class {out['class_names'][classes[counts.argmin()]]} has {counts.min()})")
    return out


def check_resolution(resolution: int, name: str) -> None:
    """ModelNet grids (30^3 -> 32^3) only load at multiples of 32 (see modelnet_to_frame)."""
    if resolution % 32:
        raise CheckpointError(
            f"checkpoint resolution {resolution} does not match the data: {name} was built for "
            f"{resolution}^3 grids, but the ModelNet10 grids (30^3, padded to 32^3) load only at "
            f"32^3, 64^3, ... (multiples of 32); use a 32^3 or 64^3 checkpoint")


# --------------------------------------------------------------------------- features


def load_discriminator(checkpoint: str | Path):
    """A checkpoint folder or Hub repo id -> its Discriminator (eval mode), or CheckpointError."""
    from vaegan.models import Discriminator
    from vaegan.pipeline import resolve_checkpoint

    root = resolve_checkpoint(checkpoint)
    folder = root / "discriminator"
    if not (folder / "config.json").is_file():
        hint = ""
        if (root / "checkpoint" / "discriminator").is_dir():
            hint = f"; a training run keeps it in {root / 'checkpoint'}"
        raise CheckpointError(
            f"{checkpoint} has no discriminator (no discriminator/config.json): the classifier "
            f"uses the discriminator's features{hint}")
    return Discriminator.from_pretrained(folder).eval()


def resolve_layers(layers: list[int] | None, n_blocks: int) -> list[int]:
    """1-based block indices; default: the last three blocks (16^3, 8^3, 4^3 maps)."""
    if not layers:
        return list(range(max(1, n_blocks - 2), n_blocks + 1))
    bad = [b for b in layers if not 1 <= b <= n_blocks]
    if bad:
        raise ConfigError(f"--layers {bad} out of range: this discriminator has blocks 1..{n_blocks}")
    return sorted(set(int(b) for b in layers))


def discriminator_features(disc, grids: np.ndarray, layers: list[int], pool: int = 2,
                           batch_size: int = 64, channels_last: bool = True) -> np.ndarray:
    """Grids uint8 (N, R, R, R) -> float32 (N, sum_b C_b * pool^3).

    Each chosen block's activations (B, C_b, S_b, S_b, S_b) are adaptive-max-pooled to
    (B, C_b, pool, pool, pool), flattened and concatenated in block order.
    """
    import torch
    import torch.nn.functional as F

    res = int(disc.config.resolution)
    if grids.ndim != 4 or grids.shape[1:] != (res,) * 3:
        raise VoxelError(f"grids have shape {grids.shape}; the discriminator expects (N, {res}, {res}, {res})")
    sizes = {b: res // 2 ** b for b in layers}
    too_small = {b: s for b, s in sizes.items() if s < pool}
    if too_small:
        raise ConfigError(f"--pool {pool} is larger than the feature maps of block(s) {too_small}")
    disc.eval()
    if channels_last:
        disc = disc.to(memory_format=torch.channels_last_3d)
    out = []
    with torch.inference_mode():
        for start in range(0, len(grids), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(grids[start:start + batch_size])).float()[:, None]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)  # (B, 1, R, R, R)
            _, feats = disc(x, return_features=True)
            parts = [F.adaptive_max_pool3d(feats[b - 1], pool).flatten(1) for b in layers]
            out.append(torch.cat(parts, 1).numpy().astype(np.float32, copy=False))
    return np.concatenate(out)


def raw_features(grids: np.ndarray) -> np.ndarray:
    """Binary grids (N, R, R, R) -> uint8 (N, R^3): the raw-voxel baseline's features."""
    return np.ascontiguousarray(grids.reshape(len(grids), -1), dtype=np.uint8)


# --------------------------------------------------------------------------- classifier


def linear_gram(a: np.ndarray, b: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Linear kernel a @ b.T -> float64 (len(a), len(b)).

    uint8 {0,1} rows are multiplied in float32 (exact: the sums are integers <= R^3 < 2^24),
    in row chunks so that only one float32 copy of `b` is ever held.
    """
    dtype = np.float32 if a.dtype == np.uint8 else np.float64
    bt = np.asarray(b, dtype=dtype)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for s in range(0, len(a), chunk):
        out[s:s + chunk] = np.asarray(a[s:s + chunk], dtype=dtype) @ bt.T
    return out


class LinearGramSVM:
    """A linear SVM (hinge loss, L2 penalty, one-vs-one; scikit-learn's libsvm `SVC`) fed the
    linear Gram matrix of its (optionally standardised) features.

    Mathematically a linear SVM on the features (the decision function is w.x + b with
    w = sum_i alpha_i y_i x_i); the precomputed kernel makes each fit take well under a
    second here, where liblinear's LinearSVC took 5-20 s CPU per C on the same features.
    """

    def __init__(self, C: float, standardize: bool):
        self.C, self.standardize = float(C), standardize

    def _prep(self, x: np.ndarray) -> np.ndarray:
        return self.scaler.transform(x) if self.scaler is not None else x

    def fit(self, x: np.ndarray, y: np.ndarray, gram: np.ndarray | None = None) -> "LinearGramSVM":
        """`gram`: x's own Gram matrix when already computed (only without standardisation)."""
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        self.scaler = StandardScaler().fit(x) if self.standardize else None
        self.x_ref = self._prep(x)
        if gram is None or self.standardize:
            gram = linear_gram(self.x_ref, self.x_ref)
        self.svc = SVC(C=self.C, kernel="precomputed", cache_size=500).fit(gram, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.svc.predict(linear_gram(self._prep(x), self.x_ref))


def cross_validate_c(x: np.ndarray, y: np.ndarray, c_grid, folds: int, standardize: bool,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Stratified k-fold accuracy of LinearGramSVM for each C -> ((folds, len(c_grid)),
    the whole split's Gram matrix when it was computed, else None).

    Per fold, the standardisation is fitted on that fold's training part only; without
    standardisation one Gram matrix of the whole training split is computed and sliced.
    """
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    full = None if standardize else linear_gram(x, x)
    scores = np.zeros((folds, len(c_grid)))
    for f, (tr, va) in enumerate(cv.split(np.zeros(len(y)), y)):
        if standardize:
            scaler = StandardScaler().fit(x[tr])
            a, b = scaler.transform(x[tr]), scaler.transform(x[va])
            k_tr, k_va = linear_gram(a, a), linear_gram(b, a)
        else:
            k_tr, k_va = full[np.ix_(tr, tr)], full[np.ix_(va, tr)]
        for j, c in enumerate(c_grid):
            svc = SVC(C=float(c), kernel="precomputed", cache_size=500).fit(k_tr, y[tr])
            scores[f, j] = float((svc.predict(k_va) == y[va]).mean())
    return scores, full


def fit_svm(x_train: np.ndarray, y_train: np.ndarray, *, standardize: bool, c_grid=DEFAULT_C_GRID,
            folds: int = 3, seed: int = 0) -> tuple[LinearGramSVM, dict]:
    """C by stratified k-fold CV on the training split, then a refit on all of it.

    Returns (fitted LinearGramSVM, info dict). Only (x_train, y_train) are ever seen here;
    the smallest C among equally good ones wins (the most regularised).
    """
    c_grid = sorted(float(c) for c in c_grid)
    if not c_grid or c_grid[0] <= 0:
        raise ConfigError(f"--c-grid needs positive values, got {c_grid}")
    min_count = int(np.bincount(y_train)[np.unique(y_train)].min())
    folds = max(2, min(int(folds), min_count))
    t = time.perf_counter()
    scores, gram = cross_validate_c(x_train, y_train, c_grid, folds, standardize, seed)
    mean = scores.mean(0)
    best = int(np.flatnonzero(mean >= mean.max() - 1e-12)[0])
    cv_s = time.perf_counter() - t
    t = time.perf_counter()
    model = LinearGramSVM(c_grid[best], standardize).fit(x_train, y_train, gram=gram)
    info = {
        "C": c_grid[best],
        "cv_accuracy": float(mean[best]),
        "cv_folds": folds,
        "cv_scores": {f"{c:g}": float(m) for c, m in zip(c_grid, mean)},
        "standardized": standardize,
        "cv_s": cv_s,
        "fit_s": time.perf_counter() - t,
    }
    return model, info


def evaluate_predictions(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    cm = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))  # (K, K) rows = true
    support = cm.sum(1)
    per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    correct = int((y_true == y_pred).sum())
    return {
        "accuracy": correct / len(y_true),
        "accuracy_ci95": wilson_interval(correct, len(y_true)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "per_class_accuracy": per_class,
        "confusion": cm,
        "n_test": int(len(y_true)),
        "predictions": y_pred,
    }


def wilson_interval(k: int, n: int, z: float = 1.959964) -> list[float]:
    """95 % Wilson score interval of a proportion k/n (the test-set sampling error)."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(centre - half), float(centre + half)]


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Exact two-sided McNemar test on the same test shapes: does A differ from B?"""
    from scipy.stats import binomtest

    a_ok, b_ok = pred_a == y_true, pred_b == y_true
    only_a, only_b = int((a_ok & ~b_ok).sum()), int((~a_ok & b_ok).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a_right": only_a, "only_b_right": only_b, "p_value": float(p)}


def paired_tests(sets: list[dict], y_true: np.ndarray) -> list[dict]:
    """McNemar for every pair of measured feature sets (same test split)."""
    out = []
    for i, a in enumerate(sets):
        for b in sets[i + 1:]:
            out.append({"a": a["name"], "b": b["name"],
                        **mcnemar(y_true, np.asarray(a["predictions"]), np.asarray(b["predictions"]))})
    return out


# --------------------------------------------------------------------------- figure


def confusion_png(cm: np.ndarray, class_names: list[str], title: str, path: str | Path,
                  cell: int = 46) -> Path:
    """Confusion matrix (K, K), rows = true class -> a PNG heat map with counts (PIL only).

    Cell colour is the row-normalised fraction (white 0 -> dark blue 1); each cell shows
    its count; the diagonal is outlined.
    """
    from PIL import Image, ImageDraw, ImageFont

    cm = np.asarray(cm)
    k = len(cm)
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(probe.textlength(n, font=font) for n in class_names)
    left, top = int(text_w) + 34, int(text_w) + 58
    width, height = left + k * cell + 12, top + k * cell + 34
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), title, fill=(0, 0, 0), font=font)
    rows = cm.sum(1, keepdims=True)
    frac = np.where(rows > 0, cm / np.maximum(rows, 1), 0.0)
    lo, hi = np.array([255, 255, 255]), np.array([8, 48, 107])
    for i in range(k):
        for j in range(k):
            x0, y0 = left + j * cell, top + i * cell
            colour = tuple(int(v) for v in lo + (hi - lo) * frac[i, j])
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour, outline=(210, 210, 210))
            if cm[i, j]:
                txt = str(int(cm[i, j]))
                tw = draw.textlength(txt, font=small)
                draw.text((x0 + (cell - tw) / 2, y0 + cell / 2 - 7), txt, font=small,
                          fill=(255, 255, 255) if frac[i, j] > 0.5 else (0, 0, 0))
        draw.rectangle([left + i * cell, top + i * cell, left + (i + 1) * cell - 1, top + (i + 1) * cell - 1],
                       outline=(200, 60, 20), width=2)
        # row label (true class), right-aligned against the grid
        tw = draw.textlength(class_names[i], font=font)
        draw.text((left - 6 - tw, top + i * cell + cell / 2 - 8), class_names[i], fill=(0, 0, 0), font=font)
        # column label (predicted class), rotated 90 degrees, reading upwards from the grid
        label = Image.new("RGB", (int(text_w) + 4, 18), "white")
        ImageDraw.Draw(label).text((2, 1), class_names[i], fill=(0, 0, 0), font=font)
        label = label.rotate(90, expand=True)
        img.paste(label, (left + i * cell + cell // 2 - 9, top - label.height - 4))
    draw.text((left, height - 24), "predicted class (columns); true class (rows); colour = row fraction",
              fill=(90, 90, 90), font=small)
    draw.text((8, 26), "true \\ predicted", fill=(90, 90, 90), font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


# --------------------------------------------------------------------------- output


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "set"


def default_name(checkpoint: str) -> str:
    """runs/modelnet10/checkpoint -> "modelnet10"; checkpoints/chair32 -> "chair32"."""
    path = Path(str(checkpoint).rstrip("/"))
    if path.name == "checkpoint" and path.parent.name:
        return path.parent.name
    return path.name or str(checkpoint)


def format_table(result: dict) -> str:
    headers = ["feature set", "features", "C", "CV acc", "test acc", "95% CI", "balanced", "time s"]
    rows = []
    for s in result["sets"]:
        lo, hi = s["accuracy_ci95"]
        rows.append([s["name"], str(s["n_features"]), f"{s['C']:g}", f"{s['cv_accuracy']:.3f}",
                     f"{s['accuracy']:.3f}", f"{lo:.3f}-{hi:.3f}", f"{s['balanced_accuracy']:.3f}", f"{s['time_s']:.0f}"])
    if result.get("paper"):
        p = result["paper"]
        rows.append([p["name"], str(p["n_features"]), "-", "-", f"{p['accuracy']:.3f}", "-", "-", "-"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    st = result["settings"]
    out = [line(headers), "  ".join("-" * w for w in widths), *map(line, rows)]
    out.append(f"ModelNet10 {st['n_train']} train / {st['n_test']} test shapes; linear SVM, C by "
               f"{st['folds']}-fold CV on the training split over {st['c_grid']}; D blocks {st['layers'] or 'last 3'} "
               f"max-pooled to {st['pool']}^3; balanced = mean per-class accuracy; CI = Wilson 95% (test sampling)")
    for t in result.get("paired_tests", []):
        out.append(f"McNemar {t['a']} vs {t['b']}: {t['only_a_right']} vs {t['only_b_right']} shapes right "
                   f"only by one, p = {t['p_value']:.3g}")
    return "\n".join(out)


def _versions() -> dict:
    import platform

    out = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "torch", "scikit-learn", "pillow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="ModelNet10 .npz with X_train, y_train, X_test, y_test (../shared/data/modelnet10_vox30.npz)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="CKPT",
                        help="checkpoint folder (or Hub repo id) with a discriminator/; repeat for several")
    parser.add_argument("--checkpoints", nargs="+", default=[], metavar="CKPT",
                        help="several checkpoints at once (after any --checkpoint ones)")
    parser.add_argument("--names", nargs="+", default=None,
                        help="one display name per checkpoint (default: the folder name)")
    parser.add_argument("--raw", action="store_true", help="add the raw-voxel baseline (R^3 binary features)")
    parser.add_argument("--random-d", action="store_true",
                        help="add a control: the (first) checkpoint's D architecture with untrained weights")
    parser.add_argument("--no-paper", dest="paper", action="store_false",
                        help="do not print the paper's reported 91.0%% row")
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="1-based D blocks to use (default: the last three, the 16^3, 8^3, 4^3 maps)")
    parser.add_argument("--pool", type=int, default=2, help="adaptive max-pool output side per block (default 2)")
    parser.add_argument("--c-grid", type=float, nargs="+", default=list(DEFAULT_C_GRID),
                        help=f"SVM C values tried by CV (default {' '.join(f'{c:g}' for c in DEFAULT_C_GRID)})")
    parser.add_argument("--folds", type=int, default=3, help="CV folds on the training split (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="CV shuffling and random-D seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="D inference batch (default 64)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps the default")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    checkpoints = list(args.checkpoint) + list(args.checkpoints)
    if not checkpoints and not args.raw and not args.random_d:
        raise ConfigError("nothing to classify: give --checkpoint (one or more), --raw and/or --random-d")
    names = args.names or [default_name(c) for c in checkpoints]
    if len(names) != len(checkpoints):
        raise ConfigError(f"--names has {len(names)} entries for {len(checkpoints)} checkpoint(s)")
    if args.pool < 1 or args.folds < 2 or args.batch_size < 1:
        raise ConfigError("--pool and --batch-size must be >= 1 and --folds >= 2")

    import torch

    from train.eval_gen import _git_commit, write_json
    from vaegan.config import ModelConfig
    from vaegan.models import Discriminator

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    # Load every discriminator first: a bad checkpoint fails before the slow data loading.
    discs = []
    for ckpt, name in zip(checkpoints, names):
        disc = load_discriminator(ckpt)
        check_resolution(int(disc.config.resolution), str(ckpt))
        discs.append((name, str(ckpt), disc))
    if args.random_d:
        cfg = discs[0][2].config if discs else ModelConfig(g_widths=(128, 64, 32))
        torch.manual_seed(args.seed)
        discs.append((f"random D ({'-'.join(map(str, cfg.d_widths))})", "untrained", Discriminator(ModelConfig(**cfg.to_dict())).eval()))

    data_cache: dict[int, dict] = {}

    def data_at(res: int) -> dict:
        if res not in data_cache:
            t = time.perf_counter()
            data_cache[res] = load_npz_splits(args.data, res)
            d = data_cache[res]
            log.info("data: %d train / %d test grids at %d^3, %d classes (%.0f s)", len(d["x_train"]),
                     len(d["x_test"]), res, len(d["class_names"]), time.perf_counter() - t)
        return data_cache[res]

    out_dir = Path(args.out)
    sets = []

    def run_set(name: str, kind: str, source: str, x_train, x_test, d: dict, standardize: bool,
                extra: dict, feat_s: float) -> None:
        log.info("%s: %d features; SVM with %d-fold CV over C in %s", name, x_train.shape[1], args.folds, args.c_grid)
        clf, info = fit_svm(x_train, d["y_train"], standardize=standardize, c_grid=args.c_grid,
                            folds=args.folds, seed=args.seed)
        t = time.perf_counter()
        scores = evaluate_predictions(d["y_test"], clf.predict(x_test), len(d["class_names"]))
        info["predict_s"] = time.perf_counter() - t
        png = confusion_png(scores["confusion"], d["class_names"],
                            f"{name}: test accuracy {scores['accuracy']:.3f} ({scores['n_test']} shapes)",
                            out_dir / f"confusion_{_slug(name)}.png")
        entry = {"name": name, "kind": kind, "source": source, "n_features": int(x_train.shape[1]),
                 **extra, **info, **scores,
                 "per_class_accuracy": dict(zip(d["class_names"], scores["per_class_accuracy"])),
                 "features_s": feat_s, "time_s": feat_s + info["cv_s"] + info["fit_s"] + info["predict_s"], "confusion_png": str(png)}
        sets.append(entry)
        log.info("%s: test accuracy %.3f (CV %.3f, C=%g) in %.0f s", name, entry["accuracy"],
                 entry["cv_accuracy"], entry["C"], entry["time_s"])

    for name, source, disc in discs:
        res = int(disc.config.resolution)
        d = data_at(res)
        layers = resolve_layers(args.layers, len(disc.blocks))
        t = time.perf_counter()
        x_train = discriminator_features(disc, d["x_train"], layers, args.pool, args.batch_size)
        x_test = discriminator_features(disc, d["x_test"], layers, args.pool, args.batch_size)
        feat_s = time.perf_counter() - t
        extra = {"resolution": res, "d_widths": list(disc.config.d_widths), "d_norm": disc.config.d_norm,
                 "layers": layers, "map_sizes": [res // 2 ** b for b in layers], "pool": args.pool}
        run_set(name, "discriminator" if source != "untrained" else "random discriminator", source,
                x_train, x_test, d, True, extra, feat_s)
    if args.raw:
        res = 32
        d = data_at(res)
        t = time.perf_counter()
        x_train, x_test = raw_features(d["x_train"]), raw_features(d["x_test"])
        run_set(f"raw voxels {res}^3", "raw voxels", "data", x_train, x_test, d, False,
                {"resolution": res, "note": "binary voxels, not standardised"},
                time.perf_counter() - t)

    d = next(iter(data_cache.values()))
    result = {
        "settings": {
            "data": str(Path(args.data).resolve()), "n_train": len(d["y_train"]), "n_test": len(d["y_test"]),
            "class_names": d["class_names"], "layers": args.layers, "pool": args.pool,
            "c_grid": [float(c) for c in args.c_grid], "folds": args.folds,
            "seed": args.seed, "classifier": "StandardScaler + linear SVM (libsvm SVC on the precomputed linear "
                                              "kernel: hinge loss, L2, one-vs-one), C by stratified k-fold CV "
                                              "on the training split",
            "command": " ".join(["python -m train"] + sys.argv[1:]) if sys.argv else None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": _git_commit(), "versions": _versions(), "torch_threads": torch.get_num_threads(),
        },
        "sets": sets,
        "paired_tests": paired_tests(sets, d["y_test"]),
        "paper": PAPER if args.paper else None,
    }
    result["settings"]["wall_s"] = time.perf_counter() - started
    print(format_table(result))
    path = write_json(out_dir / "results.json", result)
    print(f"wrote {path} and {len(sets)} confusion PNG(s) in {out_dir} ({result['settings']['wall_s']:.0f} s)")
    return 0
