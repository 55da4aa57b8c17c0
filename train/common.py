"""What several `python -m train` commands share: flags made from a config dataclass, the
generator checkpoint opened for CPU work, and the clock of a time-budgeted training loop."""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from vaegan.errors import CheckpointError
from vaegan.models import to_channels_last
from vaegan.pipeline import ChairPipeline

log = logging.getLogger(__name__)


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


def add_run_arguments(parser: argparse.ArgumentParser, config_cls, list_fields: tuple[str, ...] = ()) -> None:
    """A training command's flags: one per config field, then --resume and --dry-run."""
    add_config_arguments(parser, config_cls, list_fields)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from state.pt")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def run_command(args: argparse.Namespace, config_cls, train) -> int:
    """A training command's main: the config from the flags, then --dry-run or `train(cfg, resume=)`."""
    cfg = config_cls(**config_values(args, config_cls))
    if args.dry_run:
        return print_config(cfg)
    train(cfg, resume=args.resume)
    return 0


def print_config(cfg) -> int:
    """--dry-run: validate the resolved config and print it as JSON."""
    import json
    from dataclasses import asdict

    cfg.validate()
    print(json.dumps(asdict(cfg), indent=2))
    return 0


def config_values(args: argparse.Namespace, config_cls) -> dict:
    """The parsed flags of `add_config_arguments`, by field name."""
    return {f.name: getattr(args, f.name) for f in fields(config_cls)}


def load_resume_state(state_path: Path, cfg, keys: tuple[str, ...]) -> dict:
    """A run's state.pt for --resume; CheckpointError if missing or trained with other `keys`."""
    if not state_path.is_file():
        raise CheckpointError(f"--resume: no run to continue, {state_path} does not exist")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    saved = state.get("config", {})

    def plain(value):  # tuples and lists of the same values are the same setting
        return list(value) if isinstance(value, tuple) else value

    # A key the saved config lacks is a field added after that run: it trained with the default.
    defaults = {f.name: f.default for f in fields(cfg)}
    for key in keys:
        mine, theirs = getattr(cfg, key), saved.get(key, defaults.get(key))
        if plain(mine) != plain(theirs):
            raise CheckpointError(
                f"--resume: {state_path} was trained with {key}={theirs!r}, but this run asks for {mine!r}")
    return state


def start_run(cfg, resume: bool, resume_keys: tuple[str, ...],
              config_name: str | None = "config.json") -> tuple[Path, Path, dict | None]:
    """A training run's start: the config validated, torch's threads set (cfg.threads; 0 =
    torch's choice), denormals flushed (sparse grids and near-zero sigmoids make them common,
    and they slow CPU kernels many times), the state to resume from (checked against
    `resume_keys`) and the run folder with the config written to `config_name` (None: not
    written, as on the non-main processes of a distributed run).
    Returns (run folder, its state.pt path, the state or None)."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    out = Path(cfg.out)
    state_path = out / "state.pt"
    state = load_resume_state(state_path, cfg, resume_keys) if resume else None
    out.mkdir(parents=True, exist_ok=True)
    if config_name:
        (out / config_name).write_text(json.dumps(asdict(cfg), indent=2))
    return out, state_path, state


def open_checkpoint(checkpoint: str, threads: int = 0) -> ChairPipeline:
    """The pipeline at `checkpoint`, its generator in channels-last layout (1.2-1.7x faster 3-D
    convolutions on CPU, same output); `threads` > 0 sets torch's thread count first."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    pipe = ChairPipeline.from_pretrained(checkpoint)
    to_channels_last(pipe.generator)
    return pipe


class TrainingClock:
    """A time-budgeted run's step count, training time, smoothed loss and progress bar.

    Training time excludes evaluation: call `resume()` after evaluating. `going` is False once
    the run has done `steps` steps or trained for `budget_s` seconds.
    """

    def __init__(self, desc: str, steps: int, budget_s: float, step: int = 0, elapsed: float = 0.0):
        from tqdm import tqdm

        self.steps, self.budget_s, self.step, self.elapsed = steps, budget_s, step, elapsed
        self.running: float | None = None  # exponential moving average of the loss
        self.bar = tqdm(total=steps, initial=step, desc=desc, dynamic_ncols=True, mininterval=2)
        self.t_last = self.last_save = time.perf_counter()

    @property
    def going(self) -> bool:
        return self.step < self.steps and self.elapsed < self.budget_s

    @property
    def progress(self) -> float:
        """Fraction of the time budget used, in [0, 1] (for learning-rate schedules)."""
        return min(1.0, self.elapsed / self.budget_s)

    def tick(self, loss: float, **postfix) -> None:
        """One step done with this loss."""
        self.step += 1
        self.running = loss if self.running is None else 0.98 * self.running + 0.02 * loss
        now = time.perf_counter()
        self.elapsed, self.t_last = self.elapsed + now - self.t_last, now
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.running:.4f}", **postfix, refresh=False)

    def due(self, every: int) -> bool:
        """Time to evaluate: every `every` steps and at the last step."""
        return self.step % every == 0 or not self.going

    def save_due(self, seconds: float = 300.0) -> bool:
        """True (and the timer restarts) once `seconds` have passed since the last save."""
        if time.perf_counter() - self.last_save <= seconds:
            return False
        self.last_save = time.perf_counter()
        return True

    def resume(self) -> None:
        """After an evaluation: its time does not count as training time."""
        self.t_last = time.perf_counter()

    def close(self) -> None:
        self.bar.close()


def optimizer_step(opt, loss) -> None:
    """zero_grad, backward, step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def augment(grids, mirror: bool, shift: int, rng):
    """Random left/right flips (voxel axis 1) and floor-plane shifts of (B, R, R, R) grids.

    The grids carry one empty voxel of padding per side, so a shift of 1 never cuts a chair."""
    import torch

    if mirror:
        flip = torch.rand(len(grids), generator=rng) < 0.5
        grids[flip] = grids[flip].flip(2)  # dim 2 is voxel axis 1, left/right
    if shift:
        offsets = torch.randint(-shift, shift + 1, (len(grids), 2), generator=rng)
        grids = torch.stack([g.roll((int(a), int(b)), (0, 1)) for g, (a, b) in zip(grids, offsets)])
    return grids


def part_cut_bounds(resolution: int) -> tuple[int, int]:
    """[lo, hi) of the cut planes of part-mixes: 30 to 70 % of a grid of `resolution` voxels."""
    return round(0.3 * resolution), round(0.7 * resolution) + 1


def part_mix(grids, share: float, rng):
    """Chairs (B, R, R, R) with a random `share` replaced by part-mixes (CutMix, Yun et al. 2019,
    in voxel space): new chairs made of real parts. One cut per batch, at a height (array axis 2)
    or a depth (axis 0) between 30 and 70 % of the grid: a mixed chair keeps its own voxels below
    / in front of the cut and takes another chair's of the batch beyond it."""
    import torch

    mixed = torch.rand(len(grids), generator=rng) < share
    partner = grids[torch.randperm(len(grids), generator=rng)]
    r = grids.shape[-1]
    cut = int(torch.randint(*part_cut_bounds(r), (1,), generator=rng))
    beyond = (slice(None), slice(None), slice(None), slice(cut, None))  # above the cut, axis 2
    if int(torch.randint(0, 2, (1,), generator=rng)):
        beyond = (slice(None), slice(cut, None))  # behind the cut, axis 0
    mix = grids.clone()
    mix[beyond] = partner[beyond]
    return torch.where(mixed[:, None, None, None], mix, grids)


def restore_run(state: dict | None, modules: dict, opt, rng, out: Path) -> tuple[int, float, float]:
    """(step, elapsed seconds, best held-out figure): (0, 0, -1) for a fresh run (state None),
    else a run's state.pt loaded into its modules (by name), optimizer and random stream."""
    if state is None:
        return 0, 0.0, -1.0
    for name, module in modules.items():
        module.load_state_dict(state[name])
    opt.load_state_dict(state["opt"])
    rng.set_state(state["rng"])
    log.info("resumed %s at step %d (%.1f min trained, best held-out IoU %.3f)", out, state["step"],
             state["elapsed"] / 60, state["best"])
    return state["step"], state["elapsed"], state["best"]


def save_run(path, cfg, step: int, elapsed: float, best: float, modules: dict, opt, rng) -> None:
    """Write what `restore_run` reads (atomically), with the config that `--resume` checks."""
    from dataclasses import asdict

    from .gan import atomic_torch_save

    atomic_torch_save({"config": asdict(cfg), "step": step, "elapsed": elapsed, "best": best,
                       **{name: m.state_dict() for name, m in modules.items()},
                       "opt": opt.state_dict(), "rng": rng.get_state()}, path)
