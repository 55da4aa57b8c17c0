"""The v3.1 prior study (issue 26): how many mixture components, chosen on held-out training chairs.

    PYTHONPATH=. python study/prior_select.py --autoencoder runs/ae_v3 --components 16 32 64 --out runs/prior_select
    PYTHONPATH=. python study/prior_select.py --autoencoder runs/ae_v3 --components 32 --reg 0.003 0.03 --out runs/prior_select_reg
    PYTHONPATH=. python study/prior_select.py --autoencoder runs/ae_v3 --components 32 --test --out runs/prior_select_test
    PYTHONPATH=. python study/prior_select.py --checkpoint <a pipeline folder> --test --out runs/prior_select_ckpt

Default (selection): `train.prior.fit_prior` on the codes of the 840 chairs the autoencoder trained on (and
their mirror images), scored by `train.eval_gen.evaluate` against the autoencoder's 48 held-out chairs
(`split_by_id(names, 48, 0)`, never seen by encoder, decoder or prior), 48 samples x 15 seeds.
--test: the prior fitted on all 888 chairs, scored against the 100 test chairs, 100 samples x 10 seeds
(more seeds than eval-gen's 3, whose spread is 4-5 points). --checkpoint scores a pipeline's own
prior on the same seeds (the latent GAN of the first v3 release: commit e736b62's checkpoints/chair32).
Kept in the history for the model card; nothing shipped imports it.
"""
import argparse
import json
import logging

import numpy as np
import torch

from train.eval_gen import evaluate
from train.gan import split_by_id
from train.prior import fit_prior
from vaegan.config import ModelConfig
from vaegan.datasets import load_chairs
from vaegan.pipeline import ChairPipeline

KEYS = ("cd_nna", "cd_cov", "iou_nna", "nearest_train_iou_mean", "near_copy_fraction", "validity_clean")


def cycled(pipe, mode: str):
    """sample_latents through the autoencoder once: E(G(z)) (project) or the draws that move least (reject)."""
    draw = pipe.sample_latents

    @torch.no_grad()
    def sample(n, seed=0):
        z = draw(4 * n if mode == "reject" else n, seed=seed)
        back = pipe.encode_shape(pipe.generate(z) >= 0.5)
        if mode == "project":
            return back
        keep = (back - z).norm(dim=1).argsort()[:n].sort().values
        return z[keep]
    return sample


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--autoencoder", default="runs/ae_v3")
    p.add_argument("--checkpoint", default="")
    p.add_argument("--data", default="../shared/data/modelnet10_chair_vol30")
    p.add_argument("--components", type=int, nargs="+", default=[32])
    p.add_argument("--reg", type=float, nargs="+", default=[1e-2])
    p.add_argument("--test", action="store_true")
    p.add_argument("--cycle", default="", choices=["", "project", "reject"],
                   help="project: each draw z -> E(G(z) >= 0.5); reject: draw 4n, keep the n with the smallest |E(G(z)) - z|")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    chairs, names = load_chairs(a.data, "train", 32)
    if a.test:
        fit_on, reference, n, seeds = chairs, load_chairs(a.data, "test", 32)[0], 100, range(10)
    else:
        train_idx, val_idx = split_by_id(names, 48, 0)
        fit_on, reference, n, seeds = chairs[train_idx], chairs[val_idx], 48, range(15)
    results = {}
    for k, reg in ([(0, 0)] if a.checkpoint else [(k, r) for k in a.components for r in a.reg]):
        pipe = ChairPipeline.from_pretrained(a.checkpoint or a.autoencoder)
        if not a.checkpoint:
            grids = np.concatenate([fit_on, fit_on[:, :, ::-1]]).astype(np.float32)  # with mirror images
            with torch.no_grad():
                codes = pipe.encode_shape(grids)
            config = ModelConfig(**{**pipe.config.to_dict(), "p_kind": "gmm", "p_components": k, "g_clean": "join"})
            pipe.prior, pipe.generator.config = fit_prior(codes, config, reg, 200, 0), config
            pipe.config = config
        if a.cycle:
            pipe.sample_latents = cycled(pipe, a.cycle)
        r = evaluate(pipe, chairs, reference, seeds=list(seeds), n=n, baselines=False, workers=1)
        per_seed = [s["metrics"] for s in r["generator"]["per_seed"].values()]
        row = {key: [m[key] for m in per_seed] for key in KEYS}
        row.update({f"{key}_mean": float(np.mean(row[key])) for key in KEYS})
        row.update({f"{key}_sem": float(np.std(row[key], ddof=1) / np.sqrt(len(per_seed))) for key in KEYS})
        name = (a.checkpoint or f"k{k}_reg{reg:g}") + (f"_{a.cycle}" if a.cycle else "")
        results[name] = row
        print(name, {key: round(row[f"{key}_mean"], 4) for key in KEYS},
              "sem 1-NNA-CD", round(row["cd_nna_sem"], 4), flush=True)
    with open(a.out + ".json", "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
