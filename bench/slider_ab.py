"""The slider's server work for two checkpoints, interleaved in one process: an A/B that a
shared, busy machine cannot tilt.

    .venv/bin/python bench/slider_ab.py checkpoints/chair32 <other checkpoint folder>
    .venv/bin/python bench/slider_ab.py checkpoints/chair32 runs/v2/checkpoints/chair32 --rounds 15 --threads 1

`bench/latency.py` runs one app at a time, so two of its runs a few minutes apart differ by the
machine's load as much as by the checkpoints (its server p50 moved by 4 ms between two runs of
the same code). Here each checkpoint gets the app's own pipeline and serving settings
(`vaegan.cli.load_pipeline`, `prepare_for_serving`) and an `app.Studio`, and the two take turns
every `--moves` slider moves of the same chair (seed 0, truncation 1, as latency.py's):
`Studio.explore` is the handler behind a slider move (new latent, generate, marching cubes, the
viewer's payload), without Gradio around it. Prints p50 / p90 per checkpoint.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def studio_for(checkpoint: str, threads: int):
    """(Studio, the benchmarked chair's state) for `checkpoint`, as the app serves it."""
    import app
    from vaegan.cli import load_pipeline, prepare_for_serving

    pipe, _ = load_pipeline(checkpoint)
    prepare_for_serving(pipe, threads)
    z = pipe.sample_latents(1, seed=0, truncation=1.0)[0].tolist()
    return app.Studio(pipe, "", tempfile.mkdtemp(), checkpoint, ""), {"z": z, "base": z, "label": "seed 0 · #1"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs=2, help="two checkpoint folders")
    parser.add_argument("--rounds", type=int, default=15, help="turns per checkpoint")
    parser.add_argument("--moves", type=int, default=10, help="timed slider moves per turn")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    studios = {ck: studio_for(ck, args.threads) for ck in args.checkpoints}
    times = {ck: [] for ck in studios}
    for _ in range(args.rounds):
        for ck, (studio, chair) in studios.items():
            def move(value):
                return studio.explore(None, chair, 0.5, 0.0, "Mesh", value, 0, 0, 0, 0, 0, 0, 0)

            move(0.3)  # warm this checkpoint's caches after the other one ran
            for i in range(args.moves):
                start = time.perf_counter()
                move(0.1 * (i % 5))
                times[ck].append(1000 * (time.perf_counter() - start))
    print(f"slider move (Studio.explore), {args.rounds} x {args.moves} moves each, interleaved, "
          f"threads={args.threads}\n")
    print("| checkpoint | p50 ms | p90 ms | n |")
    print("|---|---|---|---|")
    for ck, ms in times.items():
        ms = sorted(ms)
        print(f"| {ck} | {statistics.median(ms):.1f} | {ms[int(0.9 * (len(ms) - 1))]:.1f} | {len(ms)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
