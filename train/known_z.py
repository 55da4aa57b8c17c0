"""`python -m train known-z`: pretrain the image encoder to regress the known z of generated
chairs (renders from `python -m train.photos --generator CKPT --count N`).

    python -m train known-z --renders runs/photos_gen20k --checkpoint checkpoints/chair32 \
        --held-out 200 --mu-radius 14.142 --real runs/photos --out runs/knownz20k --minutes 35

The shipped chair32 encoder starts from this (then `python -m train vaegan --init-encoder`).

A plain `ImageEncoder` is trained with Adam on ||mu(y) - z||^2 alone (batch 32) over the
renders of all but the last `--held-out` chairs. Every `--every` steps it prints the training
loss, the loss on renders of the held-out chairs, and their IoU@0.5 between G(mu') and the
chair, where mu' is mu rescaled to the prior's typical radius sqrt(z_dim): G(0) is empty here,
so a code that hedges towards the mean would otherwise decode to nothing. `--mu-radius R`
builds that rescaling into the encoder (`ModelConfig.e_mu_radius`), so the loss sees it too.
`--real RENDERS` also prints IoU on one render of each test chair of a ModelNet renders folder
(for information: never used to select). `--out DIR` saves the pipeline with the encoder of
the best held-out IoU, a start for `python -m train vaegan --init-encoder DIR`. The chair32
model card quotes these runs (section "Photo -> chair").
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from vaegan import ChairPipeline
from vaegan.errors import ConfigError
from vaegan.models import ImageEncoder, to_radius
from vaegan.voxels import chair_ious

from .common import add_timed_run_arguments
from .photos import PhotoSet
from .vaegan import detached_copy, latent_loss


def on_shell(mu: torch.Tensor) -> torch.Tensor:
    """Codes (B, z_dim) rescaled to norm sqrt(z_dim), where the Gaussian prior's samples lie."""
    return to_radius(mu, mu.shape[1] ** 0.5)


def add_arguments(parser) -> None:
    parser.add_argument("--renders", required=True, help="renders of generated chairs (with latents)")
    parser.add_argument("--checkpoint", default="checkpoints/chair32", help="the generator that made them")
    add_timed_run_arguments(parser, minutes=28.0, lr=1e-3, every=1000)
    parser.add_argument("--held-out", type=int, default=100, help="last N chairs are never trained on")
    parser.add_argument("--mu-radius", type=float, default=0.0, help="encoder's e_mu_radius (sqrt(z_dim) = the prior's shell)")
    parser.add_argument("--real", default="", help="ModelNet renders folder whose test split is scored too")
    parser.add_argument("--out", default="", help="save the pipeline with the best held-out encoder here")
    parser.add_argument("--augment", type=int, default=0,
                        help="random shifts of up to this many pixels and colour jitter (0 = off)")


def main(args) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos = PhotoSet(args.renders, "train")
    if photos.latents is None:
        raise ConfigError(f"{args.renders} has no latent codes: make it with python -m train.photos --generator")
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    encoder = ImageEncoder(dataclasses.replace(pipe.config, e_mu_radius=args.mu_radius))
    real = PhotoSet(args.real, "test") if args.real else None
    real_idx = np.unique(real.chair, return_index=True)[1] if real else None  # first view of each chair
    best = -1.0
    opt = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    held = photos.chair >= len(photos.names) - args.held_out
    train_idx = np.flatnonzero(~held)
    val_idx = np.flatnonzero(held)[np.unique(photos.chair[held], return_index=True)[1]]  # one view per held-out chair
    rng = np.random.default_rng(args.seed)
    start, step = time.time(), 0
    while time.time() - start < 60 * args.minutes:
        step += 1
        index = np.sort(rng.choice(train_idx, 32))
        z = torch.from_numpy(photos.latents[photos.chair[index]])
        pictures = photos.pictures(index)  # (32, 3, S, S)
        mu, _ = encoder(augment(pictures, args.augment, rng) if args.augment else pictures)
        loss = latent_loss(mu, z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.every == 0:
            encoder.eval()
            with torch.no_grad():
                mu, _ = encoder(photos.pictures(val_idx))
                val_loss = latent_loss(mu, torch.from_numpy(photos.latents[photos.chair[val_idx]]))
                iou = decoded_iou(pipe, on_shell(mu), photos.voxels[photos.chair[val_idx]])
                line = f"held-out IoU {iou:.3f}"
                if real is not None:
                    mu_real, _ = encoder(real.pictures(real_idx))
                    line += f", ModelNet test renders IoU {decoded_iou(pipe, on_shell(mu_real), real.voxels[real.chair[real_idx]]):.3f}"
            encoder.train()
            print(f"step {step}: train loss {loss.item():.1f}, held-out loss {val_loss.item():.1f}, "
                  f"{line} ({time.time() - start:.0f} s)", flush=True)
            if args.out and iou > best:
                best = iou
                ChairPipeline(pipe.generator, pipe.discriminator, detached_copy(encoder)).save_pretrained(args.out)
                (Path(args.out) / "known_z.json").write_text(json.dumps({**vars(args), "step": step, "held_out_iou": iou}, indent=2))
    return 0


def augment(pictures: torch.Tensor, shift: int, rng: np.random.Generator) -> torch.Tensor:
    """Pictures (B, 3, S, S) in [0, 1], each shifted by up to `shift` px (edges replicated),
    scaled in brightness by 0.8-1.2 and per channel by 0.9-1.1: the same chair seen a little
    differently, so the encoder cannot key on a render's exact pixels."""
    b, _, s, _ = pictures.shape
    padded = torch.nn.functional.pad(pictures, (shift,) * 4, mode="replicate")
    dx, dy = rng.integers(0, 2 * shift + 1, (2, b))
    out = torch.stack([padded[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, (b, 1, 1, 1)) * rng.uniform(0.9, 1.1, (b, 3, 1, 1))).float()
    return (out * gain).clamp(0, 1)


def decoded_iou(pipe: ChairPipeline, z: torch.Tensor, voxels: np.ndarray) -> float:
    """Mean IoU@0.5 of G(z) (n, R, R, R) against the chairs' voxels (n, R, R, R)."""
    return float(chair_ious(pipe.generate(z) >= 0.5, voxels > 0).mean())
