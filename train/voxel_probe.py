"""`python -m train voxel-probe`: how much shape the renders carry, without the generator.

    python -m train voxel-probe --renders runs/photos --init-encoder runs/knownz20k_aug --minutes 12

A diagnostic, not a model we ship: the image encoder's conv trunk (from `--init-encoder`, or
fresh) plus a small 3-D decoder of its own (two linear layers to 128 x 4^3, then stride-2
transposed convs to R^3) is trained with the weighted BCE of `train vaegan` (`recon_loss`,
positives x2) straight against the voxels, on renders of all training chairs but the
`--val-chairs` held out by id (the split of `train vaegan` and `train bank-encoder`), mirrored
at random. Every `--every` steps it prints the IoU@0.5 on renders of the held-out chairs.
An encoder that goes through the frozen generator should be compared with this figure: the
chair32 model card ("Not shipped") quotes it.
"""

import time

import numpy as np
import torch
from torch import nn

from vaegan.config import ModelConfig
from vaegan.errors import ConfigError
from vaegan.models import ImageEncoder
from vaegan.voxels import chair_ious

from .common import add_timed_run_arguments, optimiser_step
from .photos import PhotoSet
from .vaegan import Cycler, batch, encoder_of, held_out_split, recon_loss


class VoxelDecoder(nn.Module):
    """Trunk features (B, F) -> voxel logits (B, 1, R, R, R)."""

    def __init__(self, features: int, resolution: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(features, 512), nn.ReLU(True), nn.Linear(512, 128 * 4 ** 3), nn.ReLU(True))
        layers, c_in = [], 128
        for _ in range(int(np.log2(resolution)) - 3):
            layers += [nn.ConvTranspose3d(c_in, c_in // 2, 4, 2, 1), nn.BatchNorm3d(c_in // 2), nn.ReLU(True)]
            c_in //= 2
        self.net = nn.Sequential(*layers, nn.ConvTranspose3d(c_in, 1, 4, 2, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(h).view(-1, 128, 4, 4, 4))


def add_arguments(parser) -> None:
    parser.add_argument("--renders", required=True, help="renders of the training chairs (python -m train.photos)")
    parser.add_argument("--init-encoder", default="", help="start the conv trunk from this pipeline's encoder")
    add_timed_run_arguments(parser, minutes=12.0, lr=3e-4, every=300)
    parser.add_argument("--val-chairs", type=int, default=48, help="training chairs held out by id")
    parser.add_argument("--val-images", type=int, default=384, help="their renders scored at each check")


@torch.no_grad()
def held_out_iou(trunk: ImageEncoder, decoder: VoxelDecoder, photos: PhotoSet, idx: np.ndarray) -> float:
    """Mean IoU@0.5 of the probe's voxels against the chairs of renders `idx`."""
    trunk.eval(), decoder.eval()
    ious = []
    for start in range(0, len(idx), 64):
        part = idx[start:start + 64]
        made = torch.sigmoid(decoder(trunk.features(photos.pictures(part))))[:, 0].numpy() >= 0.5
        truth = photos.voxels[photos.chair[part]] > 0
        ious += list(chair_ious(made, truth))
    trunk.train(), decoder.train()
    return float(np.mean(ious))


def main(args) -> int:
    if args.minutes <= 0:
        raise ConfigError("--minutes must be > 0")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    photos = PhotoSet(args.renders, "train")
    _, _, train_idx, val_idx = held_out_split(photos, args.val_chairs, args.val_images, args.seed)
    if args.init_encoder:
        trunk = encoder_of(args.init_encoder)
        if trunk.config.image_size != photos.image_size:
            raise ConfigError(f"--init-encoder takes {trunk.config.image_size} px, the renders are {photos.image_size} px")
    else:
        trunk = ImageEncoder(ModelConfig(resolution=photos.resolution, image_size=photos.image_size))
    trunk.train().requires_grad_(True)
    with torch.no_grad():
        features = trunk.features(photos.pictures(train_idx[:2])).shape[1]
    decoder = VoxelDecoder(features, photos.resolution)
    params = list(trunk.net.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    rng = torch.Generator().manual_seed(args.seed)
    draw = Cycler(train_idx)
    step, running, start = 0, None, time.time()
    while time.time() - start < 60 * args.minutes:
        index = draw.take(32, rng)
        x, target = batch(photos, index, torch.rand(len(index), generator=rng) < 0.5)
        running = optimiser_step(opt, recon_loss(decoder(trunk.features(x)), target.contiguous(), 2.0), running)
        step += 1
        if step % args.every == 0:
            print(f"step {step} ({(time.time() - start) / 60:.1f} min): train loss {running:.0f}, "
                  f"held-out IoU {held_out_iou(trunk, decoder, photos, val_idx):.3f}", flush=True)
    print(f"final ({step} steps): held-out IoU {held_out_iou(trunk, decoder, photos, val_idx):.3f}")
    return 0
