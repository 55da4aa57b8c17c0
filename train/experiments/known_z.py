"""Can an image encoder learn a generator's codes from pictures? Regress the known z of
generated chairs (renders from `python -m train.photos --generator CKPT --count N`).

    python -m train.experiments.known_z --renders runs/photos_gen --checkpoint checkpoints/chair32 --minutes 28

A plain `ImageEncoder` is trained with Adam on ||mu(y) - z||^2 alone (batch 32) over the
renders of all but the last `--held-out` chairs. Every `--every` steps it prints the training
loss, the loss on renders of the held-out chairs, and their IoU@0.5 between G(mu') and the
chair, where mu' is mu rescaled to the prior's typical radius sqrt(z_dim): G(0) is empty here,
so a code that hedges towards the mean would otherwise decode to nothing. The chair32 model
card quotes this run (section "Photo -> chair").
"""

import argparse
import time

import numpy as np
import torch

from vaegan import ChairPipeline
from vaegan.models import ImageEncoder

from ..photos import PhotoSet
from ..vaegan import latent_loss


def on_shell(mu: torch.Tensor) -> torch.Tensor:
    """Codes (B, z_dim) rescaled to norm sqrt(z_dim), where the Gaussian prior's samples lie."""
    return mu / mu.norm(dim=1, keepdim=True).clamp(min=1e-8) * mu.shape[1] ** 0.5


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.experiments.known_z", description=__doc__.splitlines()[0])
    parser.add_argument("--renders", required=True, help="renders of generated chairs (with latents)")
    parser.add_argument("--checkpoint", default="checkpoints/chair32", help="the generator that made them")
    parser.add_argument("--minutes", type=float, default=28.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--held-out", type=int, default=100, help="last N chairs are never trained on")
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    photos = PhotoSet(args.renders, "train")
    if photos.latents is None:
        parser.error(f"{args.renders} has no latent codes: make it with python -m train.photos --generator")
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    encoder = ImageEncoder(pipe.config)
    opt = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    held = photos.chair >= len(photos.names) - args.held_out
    train_idx, val_idx = np.flatnonzero(~held), np.flatnonzero(held)[::8]  # one view per held-out chair
    rng = np.random.default_rng(args.seed)
    start, step = time.time(), 0
    while time.time() - start < 60 * args.minutes:
        step += 1
        index = np.sort(rng.choice(train_idx, 32))
        z = torch.from_numpy(photos.latents[photos.chair[index]])
        mu, _ = encoder(photos.pictures(index))
        loss = latent_loss(mu, z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.every == 0:
            encoder.eval()
            with torch.no_grad():
                mu, _ = encoder(photos.pictures(val_idx))
                val_loss = latent_loss(mu, torch.from_numpy(photos.latents[photos.chair[val_idx]]))
                made = pipe.generate(on_shell(mu)) >= 0.5  # (n, R, R, R)
                truth = photos.voxels[photos.chair[val_idx]] > 0
                iou = ((made & truth).sum((1, 2, 3)) / np.maximum((made | truth).sum((1, 2, 3)), 1)).mean()
            encoder.train()
            print(f"step {step}: train loss {loss.item():.1f}, held-out loss {val_loss.item():.1f}, "
                  f"held-out IoU {iou:.3f} ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
