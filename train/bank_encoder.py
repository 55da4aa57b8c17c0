"""`python -m train bank-encoder`: train an image encoder whose posterior is a mixture over a
bank of the generator's own chairs (`ModelConfig.e_bank_size`).

    python -m train bank-encoder --renders runs/photos --checkpoint checkpoints/chair32 \\
        --init-encoder checkpoints/chair32 --bank 8192 --minutes 40 --out runs/bank8k

Why: through this frozen generator, gradient descent from a photo's code to its chair lands
in poor local optima (`vaegan.projection` needs a retrieval start for the same reason), and
regressing z directly fails because most directions of z barely show in a chair. Every
Gaussian encoder we trained (`train vaegan`, `train known-z`) underfits: IoU 0.29 on its
own training renders as on held-out ones. Choosing among chairs the generator can make is
a classification problem, which a conv net learns well.

Recipe:
1. The bank: `--bank` K prior samples z_k ~ N(0, I) (seeded, `vaegan.projection.latent_bank`)
   and their chairs G(z_k), stored in the encoder (`ImageEncoder.bank`).
2. Soft targets: for training chair x (and its mirror image), q_k ∝ exp(sharpness * IoU(G(z_k), x)):
   the bank chairs that look most like x share the target, so near-duplicates in the bank
   are not forced apart.
3. Loss: cross-entropy -sum_k q_k log p_k(photo), Adam (lr constant for the first half of
   `--minutes`, then decaying linearly to a tenth), batch 32, renders of all training
   chairs but `--val-chairs` held out by id (the same split as `train vaegan`), mirrored at
   random together with their targets, shifted and colour-jittered (`train.known_z.augment`);
   with `--generated`, a share of each batch is renders of generator samples (more shapes
   and views than the 840 training chairs), their targets computed the same way.
4. Every `--every` steps: IoU@0.5 and AP of what `reconstruct` returns, the mixture
   sum_k p_k G(z_k) over the e_bank_top most probable codes, on renders of the held-out
   chairs (and IoU of G at the mode), and `--out`/best gets the pipeline with the best
   held-out IoU (generator and discriminator copied unchanged).

In the paper's terms this is the 3D-VAE objective with a categorical posterior q(k | photo)
over the bank and a uniform prior over it (the bank codes are themselves draws from N(0, I)):
with log p(x | z_k) = sharpness * IoU(G(z_k), x), the ELBO E_q[log p(x | z)] - KL(q || uniform)
is maximised per chair by q = the soft targets above, and the encoder is fitted to them by
cross-entropy (amortised). The adversarial term is constant here: every bank code decodes to a
generator sample, the chairs D was trained against.

The conv trunk can start from another encoder (`--init-encoder DIR`, e.g. the shipped
Gaussian one), the head starts fresh.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from vaegan import ChairPipeline, novelty
from vaegan.errors import ConfigError
from vaegan.models import ImageEncoder
from vaegan.projection import latent_bank

from .common import add_timed_run_arguments, optimiser_step
from .eval_photo import occupancy_iou, score
from .known_z import augment
from .photos import PhotoSet
from .vaegan import Cycler, detached_copy, encoder_of, held_out_split


def add_arguments(parser) -> None:
    parser.add_argument("--renders", required=True, help="renders of the training chairs (python -m train.photos)")
    parser.add_argument("--checkpoint", default="checkpoints/chair32", help="pipeline whose generator decodes the bank")
    parser.add_argument("--init-encoder", default="", help="start the conv trunk from this pipeline's encoder")
    parser.add_argument("--bank", type=int, default=8192, help="bank size K (default: %(default)s)")
    parser.add_argument("--top", type=int, default=32, help="components behind reconstruct (default: %(default)s)")
    add_timed_run_arguments(parser, minutes=40.0, lr=3e-4, every=1000)
    parser.add_argument("--sharpness", type=float, default=30.0, help="soft-target sharpness (default: %(default)s)")
    parser.add_argument("--augment", type=int, default=8, help="shift in px + colour jitter (0 = off)")
    parser.add_argument("--generated", default="",
                        help="renders of generated chairs (python -m train.photos --generator) mixed into each batch")
    parser.add_argument("--generated-fraction", type=float, default=0.25, help="their share of a batch")
    parser.add_argument("--val-chairs", type=int, default=48, help="training chairs held out by id")
    parser.add_argument("--val-images", type=int, default=192, help="their renders scored at each check")
    parser.add_argument("--out", default="", help="save the pipeline with the best held-out IoU here")


def soft_targets(voxels: np.ndarray, bank: novelty.PackedGrids, sharpness: float) -> np.ndarray:
    """Chairs bool (n, R, R, R) -> targets float32 (n, K): softmax over the bank of
    sharpness * IoU(bank chair, chair)."""
    iou = novelty.iou_one_to_many(novelty.pack(voxels), bank)  # (n, K)
    logits = sharpness * (iou - iou.max(1, keepdims=True))
    q = np.exp(logits)
    return (q / q.sum(1, keepdims=True)).astype(np.float32)


def bank_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of bank logits (B, K) against soft targets (B, K), mean over B."""
    return -(targets * logits.log_softmax(1)).sum(1).mean()


def initial_encoder(pipe: ChairPipeline, args) -> ImageEncoder:
    """A bank encoder for `pipe`'s generator, its trunk copied from --init-encoder if given, and
    its head too when that is a bank encoder of the same size (a run continued)."""
    config = dataclasses.replace(pipe.config, e_bank_size=args.bank, e_bank_top=args.top, e_mu_radius=0.0,
                                 e_predictive_std=0.0)
    encoder = ImageEncoder(config)
    if args.init_encoder:
        start = encoder_of(args.init_encoder)
        if (start.config.e_widths, start.config.image_size) != (config.e_widths, config.image_size):
            raise ConfigError(f"--init-encoder {args.init_encoder} has another conv trunk "
                              f"({start.config.e_widths}, {start.config.image_size} px)")
        encoder.net.load_state_dict(start.net.state_dict())
        if start.config.e_bank_size == config.e_bank_size:
            encoder.head.load_state_dict(start.head.state_dict())
            encoder.bank.copy_(start.bank)
    return encoder


@torch.no_grad()
def held_out_scores(pipe: ChairPipeline, photos: PhotoSet, idx: np.ndarray) -> dict:
    """Mean IoU@0.5 / AP x100 of reconstruct's mixture, and IoU of G(mode), on renders `idx`."""
    pipe.encoder.eval()
    rows = []
    for start in range(0, len(idx), 32):
        part = idx[start:start + 32]
        mode, occupancy = pipe.photo_predictive(photos.pictures(part))
        at_mode = pipe.generate(mode)
        for i, occ, g in zip(part, occupancy, at_mode):
            truth = photos.voxels[photos.chair[i]] > 0
            ap, iou = score(occ, truth)
            rows.append((100 * ap, iou, occupancy_iou(g, truth)))
    pipe.encoder.train()
    ap, iou, iou_mode = np.mean(rows, axis=0)
    return {"ap": float(ap), "iou": float(iou), "iou_mode": float(iou_mode)}


def main(args) -> int:
    if args.bank < 2 or args.sharpness <= 0 or args.minutes <= 0:
        raise ConfigError("--bank must be >= 2, --sharpness and --minutes > 0")
    if args.generated and not 0 < args.generated_fraction < 1:
        raise ConfigError("--generated-fraction must be between 0 and 1 (exclusive)")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    started = time.time()
    pipe = ChairPipeline.from_pretrained(args.checkpoint)
    photos = PhotoSet(args.renders, "train")
    if (photos.image_size, photos.resolution) != (pipe.config.image_size, pipe.resolution):
        raise ConfigError(f"{args.renders} has {photos.image_size} px / {photos.resolution}^3 renders; "
                          f"{args.checkpoint} needs {pipe.config.image_size} px / {pipe.resolution}^3")
    _, val_chairs, train_idx, val_idx = held_out_split(photos, args.val_chairs, args.val_images, args.seed)

    bank = latent_bank(pipe, args.bank, seed=args.seed)
    chairs = photos.voxels > 0  # (n_chairs, R, R, R)
    targets = torch.from_numpy(soft_targets(chairs, bank.shapes, args.sharpness))  # (n_chairs, K)
    mirrored = torch.from_numpy(soft_targets(chairs[:, :, ::-1], bank.shapes, args.sharpness))  # axis 1 flipped
    generated, n_gen = None, 0
    if args.generated:  # never mirrored: their targets are computed for the chairs as they are
        generated = PhotoSet(args.generated, "train")
        if (generated.image_size, generated.resolution) != (photos.image_size, photos.resolution):
            raise ConfigError(f"{args.generated} has {generated.image_size} px / {generated.resolution}^3 renders, "
                              f"{args.renders} {photos.image_size} px / {photos.resolution}^3")
        gen_targets = torch.from_numpy(soft_targets(generated.voxels > 0, bank.shapes, args.sharpness))
        n_gen = round(32 * args.generated_fraction)
        gen_draw = Cycler(np.arange(len(generated)))
    print(f"bank of {args.bank} chairs and soft targets for {len(chairs)} chairs (+ mirrored)"
          f"{f' and {len(generated.names)} generated chairs' if generated else ''} in {time.time() - started:.0f} s; "
          f"{len(train_idx)} training renders, {len(val_idx)} held-out renders of {len(val_chairs)} chairs", flush=True)

    encoder = initial_encoder(pipe, args)
    if not torch.equal(encoder.bank, torch.from_numpy(bank.z)):
        if encoder.bank.any():
            raise ConfigError(f"--init-encoder {args.init_encoder} has another bank (made with another --seed)")
        encoder.bank.copy_(torch.from_numpy(bank.z))
    trained = ChairPipeline(pipe.generator, pipe.discriminator, encoder)  # shares encoder's weights
    encoder.train()
    opt = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    rng = torch.Generator().manual_seed(args.seed)
    np_rng = np.random.default_rng(args.seed)
    draw = Cycler(train_idx)
    best, step, start = -1.0, 0, time.time()
    log_path = Path(args.out) / "bank_encoder.csv" if args.out else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("step,minutes,train_loss,val_iou,val_ap,val_iou_mode\n")
    running = None
    while time.time() - start < 60 * args.minutes:
        progress = (time.time() - start) / (60 * args.minutes)
        for group in opt.param_groups:  # constant, then linear decay to a tenth over the second half
            group["lr"] = args.lr * (1.0 - 0.9 * max(0.0, 2 * progress - 1))
        index = np.sort(draw.take(32 - n_gen, rng))
        flip = torch.rand(len(index), generator=rng) < 0.5
        pictures = photos.pictures(index)  # (32 - n_gen, 3, S, S)
        pictures[flip] = pictures[flip].flip(3)  # left/right, with the chair's axis 1 (its targets below)
        chair = torch.from_numpy(photos.chair[index])
        target = torch.where(flip[:, None], mirrored[chair], targets[chair])  # (32 - n_gen, K)
        if generated is not None:
            gen_index = np.sort(gen_draw.take(n_gen, rng))
            pictures = torch.cat([pictures, generated.pictures(gen_index)])  # (32, 3, S, S)
            target = torch.cat([target, gen_targets[torch.from_numpy(generated.chair[gen_index])]])  # (32, K)
        if args.augment:
            pictures = augment(pictures, args.augment, np_rng)
        running = optimiser_step(opt, bank_loss(encoder.bank_logits(pictures), target), running)
        step += 1
        if step % args.every == 0:
            s = held_out_scores(trained, photos, val_idx)
            minutes = (time.time() - start) / 60
            print(f"step {step} ({minutes:.1f} min): train loss {running:.3f}, held-out IoU {s['iou']:.3f} "
                  f"AP {s['ap']:.1f} (G at the mode: IoU {s['iou_mode']:.3f})", flush=True)
            if log_path:
                with log_path.open("a") as f:
                    f.write(f"{step},{minutes:.2f},{running:.4f},{s['iou']:.4f},{s['ap']:.2f},{s['iou_mode']:.4f}\n")
            if args.out and s["iou"] > best:
                best = s["iou"]
                ChairPipeline(pipe.generator, pipe.discriminator, detached_copy(encoder)).save_pretrained(args.out)
                (Path(args.out) / "bank_encoder.json").write_text(json.dumps(
                    {**vars(args), "step": step, "minutes": round(minutes, 2), "held_out": s}, indent=2))
    return 0
