"""Latent directions with a meaning: named semantic directions fitted to measured chair
attributes, GANSpace principal directions, the shipped file format, and editing by name.

This module owns:
  * the fitting maths: `fit_linear` (InterFaceGAN-style linear model of each attribute in
    z), `condition` (conditional orthogonalisation), `ganspace_directions`;
  * `measure_effects`: how much each attribute moves per unit step along each direction
    (the disentanglement table of the model card, `effects_markdown`), and `slider_figures`:
    what a ±2 slider move does to its own attribute and how much of the chair it keeps;
  * the checkpoint files `directions.safetensors` + `directions.json` (`save_directions`,
    `load_directions`, `has_directions`) and `edit` (z + strengths by direction name).
`python -m train directions --checkpoint DIR` runs the whole fit and writes the files.

Semantic directions (Shen et al. 2020, InterFaceGAN)
----------------------------------------------------
Latents z of the shipped prior (`sample_latents`) are generated, their chairs measured (`vaegan.attributes`), and each
attribute a_j, standardised to mean 0 and std 1, is regressed on z by ridge least squares:
a_j ≈ w_j · z + b_j. The unit normal n_j = w_j / |w_j| is the direction along which a_j
grows fastest *in the linear model*. The raw normals of correlated attributes are
correlated too (wider seats come with more mass), so each direction is conditioned: n_j
is projected onto the orthogonal complement of the span of the other attributes' normals
and renormalised. A step along it leaves the other attributes' linear predictions exactly
unchanged. Two exceptions, both physical couplings rather than habits of the data:
``mass`` is a summary of every other change, so no direction is conditioned on it (adding
armrests *must* add mass), while the mass direction itself is conditioned on all others
(thicken without changing the measured geometry); and seat height and backrest height
share the chair's height, which the data fix (every chair is scaled so its largest
dimension spans 24 voxels, and that is usually the height), so a higher seat leaves less
backrest above it. Conditioning them on each other asks for a taller chair, which the
generator cannot make: on the provisional model it shrank the seat-height effect to a
sixth. Neither is conditioned on the other (`COUPLED`).

Principal directions (Härkönen et al. 2020, GANSpace)
-----------------------------------------------------
`ganspace_directions` samples z, records the activations of an early generator block
(after its ReLU, so unlike `vaegan.latents.principal_directions` this is not closed-form),
takes their top-k principal components and transfers them to z by least squares: with
x = PCA coordinates of each sample, find V minimising |z - x V|^2; row i of V, normalised,
is the z direction of component i.

Strengths and units
-------------------
Directions are unit vectors in z. Under N(0, I) the prior has std 1 along every unit vector, so
a strength s moves a latent by s prior standard deviations; a learned prior's codes lie on the
shell |z| = sqrt(z_dim), whose mean square per coordinate is 1 too (chair32 v3: std 0.6-1.1
along its named directions), so s keeps that scale. How far a step moves the chair depends on
the decoder: v3's autoencoder changes a chair about a third as much per unit as v2's GAN, so its
directions file carries a wider ``max_strength`` (8, `slider_range`), which the app's sliders
and `edit` use. Without one, strengths are limited to ``±MAX_STRENGTH`` (3): further out v1's
and v2's generators had seen almost no latents.

File format (a checkpoint folder's root)
----------------------------------------
``directions.safetensors``: tensor ``directions`` float32 (k, z_dim), unit rows, in the
order of the JSON ``directions`` list; optional ``principal`` float32 (p, z_dim).
``directions.json``: ``{"format": "chair-studio/directions", "version": 1, "z_dim",
"max_strength", "directions": [{"name", "label", "attribute", "unit", "definition",
"r2", "cos_raw", "effect": {attribute: change per unit step}, "effect_sigma": {...}}],
"principal": [{"name", "block", "explained_variance", "effect", "effect_sigma"}],
"attributes": [{"name", "label", "unit", "definition", "mean", "std"}], "fit": {...}}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import attributes as attrs
from .errors import LatentError
from .fileio import atomic_write
from .latents import Direction, as_latent, principal_directions
from .voxels import chair_ious

__all__ = [
    "FORMAT",
    "MAX_STRENGTH",
    "TENSORS_FILE",
    "META_FILE",
    "NOT_CONDITIONED_ON",
    "COUPLED",
    "conditioning_set",
    "DirectionSet",
    "fit_linear",
    "condition",
    "ganspace_directions",
    "measure_effects",
    "edit",
    "has_directions",
    "slider_directions",
    "save_directions",
    "load_directions",
    "effects_markdown",
    "slider_figures",
    "slider_markdown",
    "slider_range",
    "finite_json",
]

FORMAT = "chair-studio/directions"
VERSION = 1
MAX_STRENGTH = 3.0
TENSORS_FILE = "directions.safetensors"
META_FILE = "directions.json"
NOT_CONDITIONED_ON: tuple[str, ...] = ("mass",)  # see the module docstring
COUPLED: tuple[frozenset[str], ...] = (frozenset({"seat_height", "backrest_height"}),)  # likewise


@dataclass
class DirectionSet:
    """Named unit directions ``vectors`` float32 (k, z_dim) with ``names`` (k,) (the attribute
    keys) and ``labels`` (k,) (what sliders show); optional GANSpace ``principal`` float32
    (p, z_dim); ``meta`` is the JSON document (fit statistics, effects)."""

    names: tuple[str, ...]
    labels: tuple[str, ...]
    vectors: np.ndarray
    principal: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def z_dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def max_strength(self) -> float:
        """The ± range of a strength (the file's ``max_strength``; `MAX_STRENGTH` when absent)."""
        return float(self.meta.get("max_strength", MAX_STRENGTH))

    def as_list(self) -> list[Direction]:
        """The named directions as `vaegan.latents.Direction` (labelled), for the sliders."""
        return [Direction(label, vec) for label, vec in zip(self.labels, self.vectors)]

    def vector(self, name: str) -> np.ndarray:
        """The unit vector of direction ``name`` (attribute key or label), else LatentError."""
        for key, label, vec in zip(self.names, self.labels, self.vectors):
            if name in (key, label):
                return vec
        raise LatentError(f"unknown direction {name!r}; this checkpoint has: {', '.join(self.names)}")


# ------------------------------------------------------------------ fitting
def _unit_rows(m: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)  # (k, 1)
    if (norms < 1e-12).any():
        raise LatentError(f"a {what} direction is all zeros (the attribute does not vary)")
    return m / norms


def fit_linear(z: np.ndarray, values: np.ndarray, ridge: float = 1e-3,
               holdout: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression of each standardised attribute on z.

    z: (n, z_dim) latents; values: (n, k) attributes (rows with NaN are dropped).
    -> (unit normals float64 (k, z_dim), mean (k,), std (k,), held-out R^2 (k,)).
    The R^2 is measured on a seeded ``holdout`` fraction, then the model is refitted on all rows.
    """
    z = np.asarray(z, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values).all(axis=1)
    z, values = z[keep], values[keep]
    if len(z) < max(10, z.shape[1] // 4):
        raise LatentError(f"only {len(z)} measurable samples: too few to fit directions in {z.shape[1]}-d")
    mean, std = values.mean(0), values.std(0)
    std = np.where(std > 0, std, 1.0)
    y = (values - mean) / std  # (n, k)

    def solve(zz: np.ndarray, yy: np.ndarray) -> np.ndarray:
        zc = zz - zz.mean(0)
        gram = zc.T @ zc + ridge * len(zz) * np.eye(zz.shape[1])  # (z_dim, z_dim)
        return np.linalg.solve(gram, zc.T @ (yy - yy.mean(0)))  # (z_dim, k)

    order = np.random.default_rng(seed).permutation(len(z))
    n_test = int(round(holdout * len(z)))
    test, train = order[:n_test], order[n_test:]
    r2 = np.full(values.shape[1], np.nan)
    if n_test >= 2:
        w = solve(z[train], y[train])
        pred = (z[test] - z[train].mean(0)) @ w + y[train].mean(0)  # (n_test, k)
        resid = ((y[test] - pred) ** 2).sum(0)
        total = ((y[test] - y[test].mean(0)) ** 2).sum(0)
        r2 = 1.0 - resid / np.where(total > 0, total, 1.0)
    w = solve(z, y).T  # (k, z_dim)
    return _unit_rows(w, "fitted"), mean, std, r2


def conditioning_set(name: str, names, not_conditioned_on: tuple[str, ...] = NOT_CONDITIONED_ON,
                     coupled: tuple[frozenset[str], ...] = COUPLED) -> list[str]:
    """The attributes direction ``name`` is conditioned on: every other one in ``names`` except
    those in ``not_conditioned_on`` and those coupled with ``name``."""
    return [other for other in names if other != name and other not in not_conditioned_on
            and frozenset({name, other}) not in coupled]


def condition(normals: np.ndarray, names: tuple[str, ...] | list[str],
              not_conditioned_on: tuple[str, ...] = NOT_CONDITIONED_ON,
              coupled: tuple[frozenset[str], ...] = COUPLED) -> np.ndarray:
    """Conditional orthogonalisation: row j projected off the span of the rows of its
    `conditioning_set`, renormalised -> float64 (k, z_dim) unit rows."""
    normals = np.asarray(normals, dtype=np.float64)  # (k, z_dim)
    names = list(names)
    out = np.empty_like(normals)
    for j, name in enumerate(names):
        others = [names.index(o) for o in conditioning_set(name, names, not_conditioned_on, coupled)]
        v = normals[j]
        if others:
            q, _ = np.linalg.qr(normals[others].T)  # (z_dim, m) orthonormal basis of the span
            v = v - q @ (q.T @ v)
        out[j] = v
    return _unit_rows(out, "conditioned")


def ganspace_directions(pipe, k: int = 8, n: int = 2048, block: int = 0, seed: int = 0,
                        batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """GANSpace principal directions of generator block ``block`` (0 = the 4^3 block, after its
    ReLU) over ``n`` latents of the pipeline's own prior (`sample_latents`: a learned prior's
    codes occupy only part of z, so N(0, I) samples would find the wrong axes)
    -> (unit directions float32 (k, z_dim), explained variance ratios (k,))."""
    import torch
    from torch import nn

    generator = pipe.generator
    relus = [m for m in generator.net if isinstance(m, nn.ReLU)]
    if not 0 <= block < len(relus):
        raise LatentError(f"block must be between 0 and {len(relus) - 1}, got {block}")
    z_dim = int(generator.config.z_dim)
    z = pipe.sample_latents(n, seed=seed)  # (n, z_dim)
    feats: list[np.ndarray] = []
    stop = list(generator.net).index(relus[block]) + 1
    head = generator.net[:stop].eval()
    with torch.inference_mode():
        for chunk in z.split(batch_size):
            feats.append(head(chunk.reshape(len(chunk), -1, 1, 1, 1)).flatten(1).double().numpy())
    y = np.concatenate(feats)  # (n, D)
    y -= y.mean(0)
    k = max(1, min(int(k), z_dim, n - 1))
    # Economy SVD of the (n, D) centred features; D may exceed n, so go through the Gram matrix.
    gram = y @ y.T  # (n, n)
    evals, evecs = np.linalg.eigh(gram)
    evals, evecs = evals[::-1][:k], evecs[:, ::-1][:, :k]
    coords = evecs * np.sqrt(np.maximum(evals, 0))  # (n, k) PCA coordinates (U S)
    zn = z.double().numpy()
    v, *_ = np.linalg.lstsq(coords, zn - zn.mean(0), rcond=None)  # (k, z_dim)
    dirs = _unit_rows(v, "principal")
    peak = np.argmax(np.abs(dirs), axis=1)
    dirs *= np.sign(dirs[np.arange(k), peak])[:, None]  # deterministic signs
    ratio = evals / max(float(np.trace(gram)), 1e-12)
    return dirs.astype(np.float32), ratio.astype(np.float64)


def measure_effects(pipe, z: np.ndarray, vectors: np.ndarray, step: float = 1.5,
                    level: float = attrs.LEVEL, batch_size: int = 64) -> np.ndarray:
    """Mean change of every attribute per unit step along every direction, by central
    differences (a(z + step v) - a(z - step v)) / (2 step) over the latents ``z`` (m, z_dim).

    -> float64 (k, n_attributes), columns in `vaegan.attributes.NAMES` order, in attribute
    units per prior standard deviation. Pairs where either chair is empty are skipped."""
    z = np.asarray(z, dtype=np.float32)
    out = np.empty((len(vectors), len(attrs.NAMES)))
    for i, v in enumerate(np.asarray(vectors, dtype=np.float32)):
        plus = attrs.measure_batch(pipe.generate(z + step * v, batch_size), level)  # (m, n_attr)
        minus = attrs.measure_batch(pipe.generate(z - step * v, batch_size), level)
        diff = (plus - minus) / (2 * step)
        ok = np.isfinite(diff).all(axis=1)
        out[i] = diff[ok].mean(0) if ok.any() else np.nan
    return out


SLIDER_STRENGTH = 2.0  # the step the "sliders that change one thing" figures use
REPLACED_IOU = 0.6  # below this IoU with the start chair a slider has replaced the chair


def slider_figures(pipe, z: np.ndarray, vectors: np.ndarray, names: list[str],
                   strength: float = SLIDER_STRENGTH, level: float = attrs.LEVEL,
                   batch_size: int = 64) -> list[dict]:
    """What a user sees when moving each slider to ±``strength`` from the chairs of ``z``
    (m, z_dim): per direction and sign, the mean change of the direction's own attribute
    ``names[i]`` from the start chair (its units, and per cent of the start value), and the
    IoU at ``level`` between the chair before and after (mean, and the share of chairs below
    `REPLACED_IOU`, where the slider replaced the chair instead of editing it)."""
    z = np.asarray(z, dtype=np.float32)
    start_probs = pipe.generate(z, batch_size)  # (m, R, R, R)
    start, start_values = start_probs >= level, attrs.measure_batch(start_probs, level)  # values (m, n_attr)
    rows = []
    for name, v in zip(names, np.asarray(vectors, dtype=np.float32)):
        col = attrs.NAMES.index(name)
        row = {"name": name, "strength": float(strength)}
        for sign, key in ((1.0, "plus"), (-1.0, "minus")):
            moved = pipe.generate(z + sign * strength * v, batch_size)
            change = attrs.measure_batch(moved, level)[:, col] - start_values[:, col]
            ok = np.isfinite(change)
            base = np.nanmean(np.abs(start_values[ok, col])) if ok.any() else float("nan")
            iou = chair_ious(start, moved >= level)
            mean_change = float(change[ok].mean()) if ok.any() else float("nan")
            row[key] = {"change": mean_change,
                        "change_percent": float(100 * mean_change / base) if base > 0 else float("nan"),
                        "iou": float(iou.mean()), "replaced": float((iou < REPLACED_IOU).mean())}
        rows.append(row)
    return rows


def slider_markdown(rows: list[dict], attributes: list[dict]) -> str:
    """The slider table of the model card: own change and IoU with the start chair at ±strength."""
    s = rows[0]["strength"] if rows else SLIDER_STRENGTH
    lines = [f"| direction | own change at +{s:g} | own change at −{s:g} | IoU before/after +{s:g} | "
             f"IoU before/after −{s:g} | chairs replaced (IoU < {REPLACED_IOU:g}) |", "|---|---|---|---|---|---|"]
    for r in rows:
        a = next(a for a in attributes if a["name"] == r["name"])
        p, m = r["plus"], r["minus"]
        lines.append(f"| {a['label']} | {p['change']:+.3g} {a['unit']} ({p['change_percent']:+.0f} %) | "
                     f"{m['change']:+.3g} {a['unit']} ({m['change_percent']:+.0f} %) | {p['iou']:.2f} | "
                     f"{m['iou']:.2f} | {(p['replaced'] + m['replaced']) / 2:.0%} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ editing
def check_strength(value: Any, name: str, max_strength: float = MAX_STRENGTH) -> float:
    """A slider strength as float within ±max_strength, else LatentError naming the direction."""
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise LatentError(f"strength of {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(s) or abs(s) > max_strength:
        raise LatentError(f"strength of {name!r} must be between -{max_strength:g} and {max_strength:g} "
                          f"(prior standard deviations), got {value!r}")
    return s


def edit(z: Any, directions: DirectionSet, strengths: dict[str, float]) -> np.ndarray:
    """``z + sum strength * direction`` with directions chosen by name (attribute key or
    label): float32 (z_dim,). Unknown names and out-of-range strengths are LatentErrors."""
    base = as_latent(z, directions.z_dim, name="latent").astype(np.float64)
    for name, value in strengths.items():
        vec = directions.vector(name)
        base = base + check_strength(value, name, directions.max_strength) * vec
    return as_latent(base, directions.z_dim, name="edited latent")


# ------------------------------------------------------------------ files
def has_directions(folder: str | Path | None) -> bool:
    """True when ``folder`` holds both direction files."""
    return folder is not None and (Path(folder) / TENSORS_FILE).is_file() and (Path(folder) / META_FILE).is_file()


def save_directions(folder: str | Path, dset: DirectionSet) -> tuple[Path, Path]:
    """Write ``directions.safetensors`` + ``directions.json`` into ``folder`` (each atomically)."""
    from safetensors.numpy import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"directions": np.ascontiguousarray(dset.vectors, dtype=np.float32)}
    if dset.principal is not None:
        tensors["principal"] = np.ascontiguousarray(dset.principal, dtype=np.float32)
    meta = {"format": FORMAT, "version": VERSION, "z_dim": dset.z_dim,
            "max_strength": dset.max_strength}
    meta.update({k: v for k, v in dset.meta.items() if k not in meta})
    entries = {d.get("name"): d for d in meta.get("directions", [])}
    meta["directions"] = [{**entries.get(n, {}), "name": n, "label": lab} for n, lab in zip(dset.names, dset.labels)]
    tensors_path, meta_path = folder / TENSORS_FILE, folder / META_FILE
    write_bytes(tensors_path, save(tensors, metadata={"format": FORMAT}))
    write_bytes(meta_path, (json.dumps(finite_json(meta), indent=1) + "\n").encode("utf-8"))
    return tensors_path, meta_path


def write_bytes(path: Path, data: bytes) -> Path:
    """``data`` to ``path`` atomically (`vaegan.fileio.atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data))


def finite_json(obj):
    """NaN/inf -> None throughout a JSON-able structure (JSON has no NaN); numpy scalars and
    arrays -> Python numbers and lists."""
    if isinstance(obj, np.ndarray):
        return finite_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def load_directions(folder: str | Path, z_dim: int | None = None) -> DirectionSet:
    """Read the two direction files of ``folder``; every problem is a LatentError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(folder)
    tensors_path, meta_path = folder / TENSORS_FILE, folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LatentError(f"{meta_path} is unreadable: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LatentError(f"{meta_path} is not a {FORMAT} file")
    try:
        tensors = load_file(str(tensors_path))
    except (OSError, ValueError, SafetensorError) as err:
        raise LatentError(f"{tensors_path} is unreadable: {err}") from err
    vectors = tensors.get("directions")
    entries = meta.get("directions") or []
    if vectors is None or vectors.ndim != 2 or len(vectors) != len(entries):
        raise LatentError(f"{tensors_path} must hold 'directions' with one row per entry of {meta_path.name}")
    if z_dim is not None and vectors.shape[1] != z_dim:
        raise LatentError(f"the directions have {vectors.shape[1]} dimensions; this model's z has {z_dim}")
    if not np.isfinite(vectors).all():
        raise LatentError(f"{tensors_path} contains NaN or infinite values")
    try:
        names = tuple(str(e["name"]) for e in entries)
    except (TypeError, KeyError) as err:
        raise LatentError(f"{meta_path} has a direction without a name") from err
    labels = tuple(str(e.get("label") or e["name"]) for e in entries)
    return DirectionSet(names, labels, _unit_rows(vectors.astype(np.float64), "stored").astype(np.float32),
                        tensors.get("principal"), meta)


# ------------------------------------------------------------------ reporting
def effects_markdown(rows: list[dict], attributes: list[dict], title: str = "direction") -> str:
    """The disentanglement table: one row per direction (``{"label", "attribute" or None,
    "effect_sigma": {attr: value}, "effect": {...}}``), one column per attribute, entries in
    attribute standard deviations per unit step; the own attribute in bold. The last two
    columns give the own change in the attribute's units and the leakage: mean |other| /
    |own| in standard deviations, over the direction's `conditioning_set` (so without
    ``mass`` and coupled attributes, whose changes are wanted)."""
    head = [title] + [a["label"] for a in attributes]
    has_own = any(r.get("attribute") for r in rows)
    if has_own:
        head += ["own change per step", "leakage"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        own = r.get("attribute")
        cells = [r["label"]]
        for a in attributes:
            v = r["effect_sigma"].get(a["name"])
            text = "–" if v is None else f"{v:+.2f}"
            cells.append(f"**{text}**" if a["name"] == own else text)
        if has_own:
            if own:
                unit = next(a["unit"] for a in attributes if a["name"] == own)
                o = r["effect_sigma"].get(own) or 0.0
                kept = conditioning_set(own, list(r["effect_sigma"]))
                others = [abs(r["effect_sigma"][k]) for k in kept if r["effect_sigma"][k] is not None]
                leak = (np.mean(others) / abs(o)) if others and abs(o) > 1e-9 else float("nan")
                change = r["effect"].get(own)
                cells += [f"{change:+.3g} {unit}" if change is not None else "–", f"{leak:.2f}"]
            else:
                cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def slider_range(pipe) -> float:
    """The Explore sliders' ± range for ``pipe``: its named directions' ``max_strength`` (a
    decoder that moves little per unit step, as chair32 v3's, ships a wider range), else
    `MAX_STRENGTH`."""
    root = getattr(pipe, "root", None)
    if has_directions(root):
        return load_directions(root, pipe.z_dim).max_strength
    return MAX_STRENGTH


def slider_directions(pipe, k: int = 5, named_k: int | None = None) -> list[Direction]:
    """The Explore sliders' directions for ``pipe``: the checkpoint's named directions (the
    first ``named_k``, default ``k``) when it has them, otherwise the first ``k`` principal
    directions of the generator's first layer ("PC 1", "PC 2", ...;
    `vaegan.latents.principal_directions`)."""
    root = getattr(pipe, "root", None)
    if has_directions(root):
        named = load_directions(root, pipe.z_dim).as_list()  # LatentError if unreadable
        if named:
            return named[: named_k or k]
    dirs = principal_directions(pipe.generator, k)
    return [Direction(f"PC {i + 1}", vec) for i, vec in enumerate(dirs)]
