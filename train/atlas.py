"""`python -m train atlas`: project the training chairs into z, embed their codes in 2-D, and
measure the projection's reconstruction IoU on the test chairs.

    python -m train atlas --checkpoint checkpoints/chair32 --data ../shared/data/modelnet10_chair_vol30
        [--steps 40] [--test-steps 200] [--bank 2048] [--max-train 0] [--no-test] [--report runs/atlas.md]

What it does (the library parts are `vaegan.projection` and `vaegan.atlas`):
1. loads the ModelNet10 training chairs (pose _1, 888) and test chairs (100) at the model
   resolution (`vaegan.datasets.load_chairs`);
2. gives each a code: the checkpoint's shape encoder in one pass (`ChairPipeline.encode_shape`)
   or, with ``--start bank`` or without a shape encoder, the retrieval start from a bank of
   ``--bank`` prior samples; then Adam steps through the frozen generator
   (`vaegan.projection.project`): ``--test-steps`` (200) for the test chairs, whose IoU is
   the reported reconstruction figure, and ``--steps`` (40) for the training chairs, whose
   codes only place them on the map (IoU per step count is in the model card);
3. measures the attributes of each *training chair itself* (`vaegan.attributes`);
4. embeds the training codes with PCA and t-SNE, as they are and restricted to what the
   generator's first layer sees of them (`vaegan.atlas.embed`), and scores how well each
   map's neighbourhoods predict each attribute (`structure_scores`);
5. writes ``atlas.safetensors``, ``atlas.json`` and the model card figure ``atlas.png`` into
   the checkpoint, and prints the projection IoU (train and test; retrieval start alone
   and after optimisation) and the structure table as markdown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vaegan import atlas as atl
from vaegan import attributes as attrs
from vaegan.datasets import load_chairs
from vaegan.errors import CheckpointError, ConfigError
from vaegan.projection import REFINE, ProjectionConfig, latent_bank, project

from .common import open_checkpoint

log = logging.getLogger(__name__)


@dataclass
class AtlasConfig:
    checkpoint: str = ""  # local checkpoint folder: the atlas is written into it
    data: str = ""  # ModelNet10 chair folder with train/ and test/
    steps: int = 40  # projection Adam steps per training chair (the atlas codes)
    test_steps: int = 200  # projection Adam steps per test chair (the reconstruction IoU)
    bank: int = 2048  # prior samples for the retrieval start
    start: str = "encoder"  # "encoder": the shape encoder's codes (when the checkpoint has one); "bank"
    starts: int = 1  # bank latents optimised per chair
    lr: float = 0.0  # Adam lr on z; 0: REFINE's from encoder codes, ProjectionConfig's from the bank
    batch_size: int = 64
    max_train: int = 0  # project only the first N training chairs (0: all)
    test: bool = True  # also project the test chairs and report their IoU
    seed: int = 0
    report: str = ""  # optional markdown file
    threads: int = 0

    def validate(self) -> None:
        if not self.checkpoint or not Path(self.checkpoint).is_dir():
            raise CheckpointError(f"--checkpoint must be a local checkpoint folder (the atlas is written into it), "
                                  f"got {self.checkpoint!r}")
        if not self.data:
            raise ConfigError("--data is required: the ModelNet10 chair folder (with train/ and test/)")
        if self.max_train < 0:
            raise ConfigError("--max-train must be >= 0")
        if self.start not in ("encoder", "bank"):
            raise ConfigError(f"--start must be 'encoder' or 'bank', got {self.start!r}")

    def projection(self, steps: int, from_encoder: bool) -> ProjectionConfig:
        lr = self.lr or (REFINE.lr if from_encoder else ProjectionConfig.lr)
        return ProjectionConfig(steps=steps, lr=lr, bank=self.bank, starts=1 if from_encoder else self.starts,
                                batch_size=self.batch_size, seed=self.seed)


def add_arguments(parser) -> None:
    d = AtlasConfig()
    parser.add_argument("--checkpoint", required=True, help="local checkpoint folder (written into)")
    parser.add_argument("--data", required=True, help="ModelNet10 chair folder (train/ and test/)")
    parser.add_argument("--steps", type=int, default=d.steps,
                        help=f"projection steps per training chair (default {d.steps})")
    parser.add_argument("--test-steps", type=int, default=d.test_steps,
                        help=f"projection steps per test chair (default {d.test_steps})")
    parser.add_argument("--bank", type=int, default=d.bank, help=f"prior samples for the start (default {d.bank})")
    parser.add_argument("--start", choices=("encoder", "bank"), default=d.start,
                        help="codes to refine: the shape encoder's (default, when the checkpoint has one) or the bank's")
    parser.add_argument("--starts", type=int, default=d.starts, help="bank starts optimised per chair (default 1)")
    parser.add_argument("--lr", type=float, default=d.lr,
                        help=f"projection learning rate (default: {REFINE.lr} from encoder codes, "
                             f"{ProjectionConfig.lr} from the bank)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--max-train", type=int, default=0, help="only the first N training chairs (default: all)")
    parser.add_argument("--no-test", dest="test", action="store_false", help="skip the test-chair IoU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", default="", help="also write the markdown summary to this file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")


def _progress(name: str, t0: float):
    def report(done: int, total: int) -> None:
        log.info("%s: projected %d/%d chairs (%.0f s)", name, done, total, time.perf_counter() - t0)

    return report


def iou_summary(start: np.ndarray, final: np.ndarray) -> dict:
    return {"n": int(len(final)), "mean": float(final.mean()), "median": float(np.median(final)),
            "p10": float(np.percentile(final, 10)), "start_mean": float(start.mean())}


def structure_markdown(scores: dict[str, dict[str, float]], z_dim: int) -> str:
    spaces = [s for s in (*atl.METHODS, "z", "gz") if s in scores]
    names = {**atl.METHODS, "z": f"full z ({z_dim}-d)", "gz": f"generator coordinates ({atl.GENERATOR_K}-d)"}
    head = ["attribute"] + [names[s] for s in spaces]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in attrs.ATTRIBUTES:
        lines.append("| " + " | ".join([a.label] + [f"{scores[s][a.name]:.2f}" for s in spaces]) + " |")
    return "\n".join(lines)


def summary_markdown(meta: dict, z_dim: int) -> str:
    proj = meta["projection"]
    lines = [f"Projection (Adam steps from {atl.projection_start(meta)}), IoU of G(z) >= 0.5 with the chair:", "",
             "| chairs | n | steps | start | mean | median | 10th pct |", "|---|---|---|---|---|---|---|"]
    for split in ("test", "train"):
        if split in proj:
            s = proj[split]
            lines.append(f"| {split} | {s['n']} | {s['steps']} | {s['start_mean']:.3f} | {s['mean']:.3f} | "
                         f"{s['median']:.3f} | {s['p10']:.3f} |")
    lines += ["", "Structure: leave-one-out R² of predicting each attribute from the 10 nearest chairs on the map "
              "(0 = no pattern):", "", structure_markdown(meta["structure"], z_dim)]
    return "\n".join(lines)


def run(cfg: AtlasConfig) -> dict:
    cfg.validate()
    t0 = time.perf_counter()
    pipe = open_checkpoint(cfg.checkpoint, cfg.threads)
    train, names = load_chairs(cfg.data, "train", pipe.resolution)
    if cfg.max_train:
        train, names = train[: cfg.max_train], names[: cfg.max_train]
    from_encoder = cfg.start == "encoder" and pipe.shape_encoder is not None
    pcfg = cfg.projection(cfg.steps, from_encoder)
    bank = None
    if not from_encoder:
        bank = latent_bank(pipe, pcfg.bank, pcfg.seed, pcfg.level, pcfg.batch_size)
        log.info("bank of %d prior samples in %.0f s", pcfg.bank, time.perf_counter() - t0)

    def codes(grids: np.ndarray, steps: int, name: str):
        init = pipe.encode_shape(grids) if from_encoder else None
        return project(pipe, grids, cfg.projection(steps, from_encoder), bank=bank, init=init,
                       progress=_progress(name, t0))

    if cfg.test:  # first: the headline figure, and a quick read on whether the settings work
        test, _ = load_chairs(cfg.data, "test", pipe.resolution)
        test_result = codes(test, cfg.test_steps, "test")
    result = codes(train, cfg.steps, "train")
    proj = {"config": asdict(pcfg), "start": "encoder" if from_encoder else "bank",
            "train": {**iou_summary(result.start_iou, result.iou), "steps": cfg.steps}}
    if cfg.test:
        proj["test"] = {**iou_summary(test_result.start_iou, test_result.iou), "steps": cfg.test_steps}
    values = attrs.measure_batch(train)  # (n, n_attr) of the real chairs
    coords = {m: atl.embed(result.z, m, seed=cfg.seed, generator=pipe.generator) for m in atl.METHODS}
    atlas = atl.Atlas(tuple(names), result.z, coords, values, result.iou)
    atlas.meta = {"projection": proj, "structure": atl.structure_scores(atlas, generator=pipe.generator),
                  "settings": asdict(cfg),
                  "seconds": round(time.perf_counter() - t0, 1)}
    atl.save_atlas(cfg.checkpoint, atlas)
    png = atl.atlas_png(atlas, Path(cfg.checkpoint) / atl.PNG_FILE)
    markdown = summary_markdown(atlas.meta, atlas.z.shape[1])
    print(markdown)
    if cfg.report:
        Path(cfg.report).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.report).write_text(markdown + "\n", encoding="utf-8")
    print(f"wrote the atlas of {len(atlas)} chairs and {png} into {cfg.checkpoint} in {atlas.meta['seconds']:.0f} s")
    return atlas.meta


def main(args) -> int:
    run(AtlasConfig(**{k: getattr(args, k) for k in AtlasConfig.__dataclass_fields__ if hasattr(args, k)}))
    return 0
