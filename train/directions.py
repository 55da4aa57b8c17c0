"""`python -m train directions`: fit the named semantic directions and the GANSpace principal
directions of a checkpoint, measure their disentanglement, write them into the checkpoint.

    python -m train directions --checkpoint checkpoints/chair32 [--n 6000] [--eval-n 256]
        [--principal 8] [--compare-raw] [--report runs/directions.md] [--threads 2]

What it does (the maths is in `vaegan.directions`, the attributes in `vaegan.attributes`):
1. ``--n`` latents of the checkpoint's prior (`sample_latents`, seed ``--seed``) are generated and their chairs measured;
2. each standardised attribute is regressed on z (ridge, held-out R^2 reported); the unit
   normals are conditionally orthogonalised (each off the others; none off ``mass``, seat
   and backrest height not off each other, see `vaegan.directions`). An
   attribute that is constant over the samples gets no direction (a warning names it);
3. GANSpace: PCA of the generator's first block (after its ReLU) on ``--principal-n``
   samples, moved to z by least squares;
4. disentanglement: on ``--eval-n`` fresh latents (seed + 1), every direction is stepped by
   ±``--step`` and every attribute re-measured: mean change per unit step (central
   differences), in attribute units and in attribute standard deviations; and each slider at
   ±2 (`vaegan.directions.slider_figures`): its own attribute's change from the start chair
   and the IoU between the chair before and after;
5. ``<checkpoint>/directions.safetensors`` + ``directions.json`` are written (the app's
   Explore sliders read them), and the tables are printed as markdown (``--report`` also
   writes them to a file, for the model card).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vaegan import attributes as attrs
from vaegan import directions as dirs
from vaegan.errors import CheckpointError, ConfigError
from vaegan.pipeline import MAX_SAMPLES, ChairPipeline

from .common import open_checkpoint

log = logging.getLogger(__name__)


@dataclass
class DirectionsConfig:
    checkpoint: str = ""  # a local checkpoint folder: the files are written into it
    n: int = 4096  # latents measured for the fit (v2 used 6,000; sample_latents draws at most 4,096)
    seed: int = 0
    ridge: float = 1e-3  # ridge strength, times the number of samples
    eval_n: int = 256  # fresh latents for the disentanglement table
    step: float = 1.5  # ± step (prior std) of the central differences
    principal: int = 8  # GANSpace directions (0: none)
    principal_n: int = 2048  # samples for the GANSpace PCA
    block: int = 0  # generator block whose activations GANSpace uses
    compare_raw: bool = False  # also measure the unconditioned normals
    max_strength: float = 8.0  # the sliders' ± range, stored in the file (v3 moves a chair ~1/3 as much per unit as v2, whose range was 3)
    slider_strength: float = 6.0  # the ± step of the slider table (v2's table used 2)
    batch_size: int = 64
    report: str = ""  # optional markdown file for the tables
    threads: int = 0  # torch threads; 0 keeps torch's default

    def validate(self) -> None:
        if not self.checkpoint or not Path(self.checkpoint).is_dir():
            raise CheckpointError(f"--checkpoint must be a local checkpoint folder (the directions are written "
                                  f"into it), got {self.checkpoint!r}")
        if self.n < 50 or self.eval_n < 1 or self.step <= 0 or self.principal < 0 or self.principal_n < 10:
            raise ConfigError("need --n >= 50, --eval-n >= 1, --step > 0, --principal >= 0, --principal-n >= 10")
        if not 0 < self.slider_strength <= self.max_strength:
            raise ConfigError("need 0 < --slider-strength <= --max-strength")
        if max(self.n, self.eval_n, self.principal_n) > MAX_SAMPLES:
            raise ConfigError(f"--n, --eval-n and --principal-n draw from sample_latents: at most {MAX_SAMPLES}")


def add_arguments(parser) -> None:
    d = DirectionsConfig()
    parser.add_argument("--checkpoint", required=True, help="local checkpoint folder (written into)")
    parser.add_argument("--n", type=int, default=d.n, help=f"latents measured for the fit (default {d.n})")
    parser.add_argument("--seed", type=int, default=d.seed, help="latent seed (default 0)")
    parser.add_argument("--ridge", type=float, default=d.ridge, help=f"ridge strength (default {d.ridge})")
    parser.add_argument("--eval-n", type=int, default=d.eval_n, help=f"latents for the table (default {d.eval_n})")
    parser.add_argument("--step", type=float, default=d.step, help=f"± step of the table (default {d.step})")
    parser.add_argument("--principal", type=int, default=d.principal,
                        help=f"GANSpace directions (default {d.principal})")
    parser.add_argument("--principal-n", type=int, default=d.principal_n,
                        help=f"samples for the GANSpace PCA (default {d.principal_n})")
    parser.add_argument("--block", type=int, default=d.block, help="generator block for GANSpace (default 0)")
    parser.add_argument("--compare-raw", action="store_true", help="also measure the unconditioned normals")
    parser.add_argument("--max-strength", type=float, default=d.max_strength,
                        help=f"the sliders' ± range, written into the file (default {d.max_strength})")
    parser.add_argument("--slider-strength", type=float, default=d.slider_strength,
                        help=f"± step of the slider table (default {d.slider_strength})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--report", default="", help="also write the markdown tables to this file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")


def sample_and_measure(pipe: ChairPipeline, n: int, seed: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """n prior latents and their chairs' attributes -> (float32 (n, z_dim), float64 (n, n_attr))."""
    z = np.asarray(pipe.sample_latents(n, seed=seed), dtype=np.float32)
    values = np.concatenate([attrs.measure_batch(pipe.generate(chunk, batch_size))
                             for chunk in np.array_split(z, max(1, -(-n // 512)))])
    return z, values


def varying(values: np.ndarray) -> np.ndarray:
    """Which attributes vary over the measured samples -> bool (n_attr,). A constant one (e.g.
    every chair of an untrained model is one blob) has no direction to fit."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.nanstd(values, axis=0)) > 1e-9


def effect_rows(effects: np.ndarray, std: np.ndarray, labels: list[str], owns: list[str | None]) -> list[dict]:
    """(k, n_attr) changes per unit step -> JSON rows with raw and std-normalised effects."""
    rows = []
    for label, own, row in zip(labels, owns, effects):
        rows.append({"label": label, "attribute": own,
                     "effect": {n: float(v) for n, v in zip(attrs.NAMES, row)},
                     "effect_sigma": {n: float(v / s) for n, v, s in zip(attrs.NAMES, row, std)}})
    return rows


def attribute_table(mean: np.ndarray, std: np.ndarray) -> list[dict]:
    return [{"name": a.name, "label": a.label, "unit": a.unit, "definition": a.definition,
             "mean": float(m), "std": float(s)} for a, m, s in zip(attrs.ATTRIBUTES, mean, std)]


def report_markdown(meta: dict) -> str:
    """The tables for the model card: semantic directions (and raw normals, principal ones)."""
    table = meta["attributes"]
    fit = meta["fit"]
    parts = [f"Semantic directions: {fit['n_measured']} prior samples, ridge {fit['ridge']}; table on "
             f"{fit['eval_n']} fresh latents, central differences ±{fit['step']} prior std. Entries: change "
             "of each attribute per unit step, in that attribute's standard deviations over prior samples.",
             "", dirs.effects_markdown(meta["directions"], table), "",
             "| direction | held-out R² of the linear fit | cos(raw normal, conditioned) |", "|---|---|---|"]
    parts += [f"| {d['label']} | {d['r2']:.2f} | {d['cos_raw']:.2f} |" for d in meta["directions"]]
    if meta.get("sliders"):
        parts += ["", f"Sliders at ±{meta['sliders'][0]['strength']:g} on the same latents: mean change of the "
                  "direction's own attribute from the start chair, and the IoU (level 0.5) between the chair "
                  "before and after.", "", dirs.slider_markdown(meta["sliders"], table)]
    if meta.get("raw"):
        parts += ["", "Unconditioned normals (before orthogonalisation), same measurement:", "",
                  dirs.effects_markdown(meta["raw"], table)]
    if meta.get("principal"):
        parts += ["", f"GANSpace principal directions (block {meta['principal'][0]['block']}):", "",
                  dirs.effects_markdown(meta["principal"], table, title="principal direction (variance)")]
    return "\n".join(parts)


def run(cfg: DirectionsConfig) -> dict:
    cfg.validate()
    t0 = time.perf_counter()
    pipe = open_checkpoint(cfg.checkpoint, cfg.threads)
    z, values = sample_and_measure(pipe, cfg.n, cfg.seed, cfg.batch_size)
    log.info("measured %d chairs in %.0f s", len(z), time.perf_counter() - t0)
    keep = varying(values)
    if not keep.any():
        raise ConfigError("no attribute varies over the generated chairs: nothing to fit")
    names = [n for n, k in zip(attrs.NAMES, keep) if k]
    if not keep.all():
        log.warning("constant over the samples, no direction: %s", ", ".join(n for n in attrs.NAMES if n not in names))
    normals, _, _, r2 = dirs.fit_linear(z, values[:, keep], cfg.ridge, seed=cfg.seed)
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)  # every attribute, for the table
    std = np.where(std > 0, std, 1.0)
    vectors = dirs.condition(normals, names)  # (k, z_dim)
    cos_raw = (normals * vectors).sum(1)
    principal, ratios = (dirs.ganspace_directions(pipe, cfg.principal, cfg.principal_n, cfg.block,
                                                  cfg.seed) if cfg.principal else (None, None))
    z_eval = np.asarray(pipe.sample_latents(cfg.eval_n, seed=cfg.seed + 1), dtype=np.float32)
    fitted = [a for a in attrs.ATTRIBUTES if a.name in names]
    labels = [a.label for a in fitted]
    rows = effect_rows(dirs.measure_effects(pipe, z_eval, vectors, cfg.step, batch_size=cfg.batch_size),
                       std, labels, names)
    for row, a, r, c in zip(rows, fitted, r2, cos_raw):
        row.update(name=a.name, unit=a.unit, definition=a.definition, r2=float(r), cos_raw=float(c),
                   conditioned_on=dirs.conditioning_set(a.name, names))
    meta = {"max_strength": cfg.max_strength, "directions": rows, "attributes": attribute_table(mean, std),
            "fit": {**asdict(cfg), "n_measured": int(np.isfinite(values).all(1).sum()),
                    "constant": [n for n in attrs.NAMES if n not in names],
                    "not_conditioned_on": list(dirs.NOT_CONDITIONED_ON),
                    "coupled": [sorted(pair) for pair in dirs.COUPLED], "method": "ridge regression per "
                    "standardised attribute, conditional orthogonalisation (vaegan.directions)"}}
    meta["sliders"] = dirs.slider_figures(pipe, z_eval, vectors, names, cfg.slider_strength, batch_size=cfg.batch_size)
    if cfg.compare_raw:
        meta["raw"] = effect_rows(dirs.measure_effects(pipe, z_eval, normals, cfg.step, batch_size=cfg.batch_size),
                                  std, [f"{lab} (raw)" for lab in labels], names)
    if principal is not None:
        prows = effect_rows(dirs.measure_effects(pipe, z_eval, principal, cfg.step, batch_size=cfg.batch_size),
                            std, [f"PC {i + 1} ({r:.1%})" for i, r in enumerate(ratios)], [None] * len(principal))
        for i, (row, r) in enumerate(zip(prows, ratios)):
            row.update(name=f"PC {i + 1}", block=cfg.block, explained_variance=float(r))
        meta["principal"] = prows
    meta["fit"]["seconds"] = round(time.perf_counter() - t0, 1)
    dset = dirs.DirectionSet(tuple(names), tuple(labels), vectors.astype(np.float32), principal, meta)
    paths = dirs.save_directions(cfg.checkpoint, dset)
    markdown = report_markdown(meta)
    print(markdown)
    if cfg.report:
        Path(cfg.report).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.report).write_text(markdown + "\n", encoding="utf-8")
    print(f"wrote {paths[0]} and {paths[1]} in {meta['fit']['seconds']:.0f} s")
    return meta


def main(args) -> int:
    cfg = DirectionsConfig(**{k: getattr(args, k) for k in DirectionsConfig.__dataclass_fields__ if hasattr(args, k)})
    run(cfg)
    return 0
