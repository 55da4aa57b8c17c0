"""What several `python -m train` commands share: flags made from a config dataclass, and the
generator checkpoint opened for CPU work."""

from __future__ import annotations

import argparse
from dataclasses import fields

from vaegan.models import to_channels_last
from vaegan.pipeline import ChairPipeline


def add_config_arguments(parser: argparse.ArgumentParser, config_cls, list_fields: tuple[str, ...] = ()) -> None:
    """One flag per field of `config_cls`: `--kl-weight 1`, `--no-mirror` for a bool,
    `--g-widths 256 128 64` for a tuple field or one named in `list_fields`."""
    defaults = config_cls()
    for f in fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=f"(default: {value})")
        elif isinstance(value, tuple) or f.name in list_fields:
            parser.add_argument(flag, type=int, nargs="+", default=value, help=f"(default: {value})")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"(default: {value!r})")


def config_values(args: argparse.Namespace, config_cls) -> dict:
    """The parsed flags of `add_config_arguments`, by field name."""
    return {f.name: getattr(args, f.name) for f in fields(config_cls)}


def open_checkpoint(checkpoint: str, threads: int = 0) -> ChairPipeline:
    """The pipeline at `checkpoint`, its generator in channels-last layout (1.2-1.7x faster 3-D
    convolutions on CPU, same output); `threads` > 0 sets torch's thread count first."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    pipe = ChairPipeline.from_pretrained(checkpoint)
    to_channels_last(pipe.generator)
    return pipe


def add_timed_run_arguments(parser: argparse.ArgumentParser, minutes: float, lr: float, every: int) -> None:
    """The flags of the time-boxed encoder commands (known-z, bank-encoder, voxel-probe)."""
    parser.add_argument("--minutes", type=float, default=minutes, help="training time (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=lr, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--every", type=int, default=every, help="steps between checks (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")


def optimiser_step(opt, loss, running: float | None) -> float:
    """One step of `opt` on `loss`; returns the running (exponential, 0.98) mean of the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
