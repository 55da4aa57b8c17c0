"""Training throughput: samples/s of the real GAN step (train.gan.gan_step) on this CPU.

For the shipped 32^3 config and the paper's 64^3 config, it times the optimised step
(channels_last_3d, D frozen during the G step) beside a naive step (default memory format,
D not frozen) in the same process, and prints the ratio.

    python bench/train_throughput.py [--batch 32] [--steps 8] [--configs shipped paper64]
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train.gan import DiscriminatorPair, gan_step  # noqa: E402
from vaegan.config import ModelConfig  # noqa: E402
from vaegan.models import Discriminator, Generator, to_channels_last  # noqa: E402

CONFIGS = {
    "shipped": ModelConfig(resolution=32, g_widths=(128, 64, 32)),
    "paper64": ModelConfig(resolution=64, g_widths=(512, 256, 128, 64)),
}


def samples_per_second(cfg: ModelConfig, optimised: bool, batch: int, steps: int, warmup: int = 2) -> float:
    torch.manual_seed(0)
    gen, disc = Generator(cfg), Discriminator(cfg)
    if optimised:
        to_channels_last(gen), to_channels_last(disc)
    pair = DiscriminatorPair(disc)
    opt_g = torch.optim.Adam(gen.parameters(), 2.5e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), 1e-3, betas=(0.5, 0.999))
    r = cfg.resolution
    real = (torch.rand(batch, 1, r, r, r) > 0.9).float()
    if optimised:
        real = real.contiguous(memory_format=torch.channels_last_3d)
    # d_acc_max=1.0: D is updated every step, so both variants do the same work.
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        gan_step(gen, pair, opt_g, opt_d, real, torch.randn(batch, cfg.z_dim), "bce", 1.0, 1, freeze_d=optimised)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.steps} timed steps")
    print(f"{'config':<10} {'widths':<20} {'naive':>10} {'optimised':>10} {'ratio':>7}   (samples/s)")
    for name in args.configs:
        cfg = CONFIGS[name]
        naive = samples_per_second(cfg, False, args.batch, args.steps)
        fast = samples_per_second(cfg, True, args.batch, args.steps)
        print(f"{name:<10} {str(cfg.g_widths):<20} {naive:>10.1f} {fast:>10.1f} {fast / naive:>6.2f}x")


if __name__ == "__main__":
    main()
