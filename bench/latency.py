"""Round-trip latency of Chair Studio through gradio_client, beside the bare model work.

    .venv/bin/python bench/latency.py                      # launches app.py on a free port
    .venv/bin/python bench/latency.py --threads 1 --repeats 40
    .venv/bin/python bench/latency.py --url http://127.0.0.1:7860/   # an app that is already up

For each path it reports p50 / p95 of the full client round trip (request, queue, handler,
postprocess, SSE result, which carries the viewer's mesh payload inline: no file to fetch):

  * slider  -> /explore  (one Explore slider moved: new latent, G forward, marching cubes,
                          the viewer's mesh payload)       target server p50 <= 50 ms at 32^3
  * render  -> /render   (iso-level / smoothing change: same work, no latent change)
  * photo   -> /photo    (upload + encode + the k = 4 candidates' codes + the mesh of the
                          first; their thumbnails follow in /photo_thumbnails)  target <= 300 ms
  * sample  -> /sample   (8 chairs with thumbnails: reported only)

and, in this process and in the same run, the bare `pipe.generate(z)` + `pipe.mesh(vox)` time
of one chair, so `overhead = app p50 / bare p50` shows what the web stack adds, the same over
64 different prior samples (`bare_generate_mesh_64`: the chair-to-chair spread), and the bare
`pipe.reconstruct(photo)` (preprocess, encode, one generator pass) and, with a shape encoder,
the voxel upload's code of one chair: `encode_shape` alone and with the short refinement
through G (target <= 0.5 s per chair). When it launched
the app itself it also reports the cold start (process start -> first page served) and the
app's peak RSS (VmHWM). With --profile (GRADIO_PROFILING) the server-side phases are printed
as well, and the table gets each path's server p50: the round trip without gradio_client's
own waiting (it sleeps 50 ms whenever its SSE queue is empty; a browser does not).

Results go to stdout (a markdown table) and to --json (default artifacts/latency.json).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# The app handler behind each benchmarked path (for the server-side column of --profile).
SERVER_HANDLERS = {"slider": "explore", "render": "render", "photo": "photo", "sample_8": "sample"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 120.0) -> float:
    """Poll until the app serves its config; returns the time waited (s)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"app exited with status {proc.returncode}")
        try:
            if httpx.get(url + "config", timeout=1.0).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"app at {url} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen | None) -> None:
    """Terminate an app this benchmark launched (kill it after 10 s)."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentiles(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "min_ms": float(ms.min()), "n": int(len(ms))}


def timed(fn, repeats: int, warmup: int) -> list[float]:
    for i in range(warmup):
        fn(-1 - i)
    out = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def bare_pipeline(checkpoint: str | None, threads: int | None):
    """The app's pipeline with the app's serving settings, loaded in this process."""
    from vaegan.cli import load_pipeline, prepare_for_serving

    pipe, _ = load_pipeline(checkpoint)
    prepare_for_serving(pipe, threads)
    return pipe


def bare_times(pipe, repeats: int, level: float, truncation: float) -> dict:
    """pipe.generate + pipe.mesh of one chair, in this process (`bare_pipeline`: same pipeline
    and serving settings as the app; same chair as the benchmarked one)."""
    z = np.asarray(pipe.sample_latents(8, seed=0, truncation=truncation), dtype=np.float32)[:1]
    faces = []

    def once(i):
        vox = pipe.generate(z * (1 + 0.01 * (i % 7)))[0]
        faces.append(len(pipe.mesh(vox, level=level).faces))

    result = percentiles(timed(once, repeats, 3))
    result["faces"] = int(statistics.median(faces))
    return result


def bare_many_times(pipe, n: int, level: float) -> dict:
    """pipe.generate + pipe.mesh of `n` different prior samples (seed 1), one at a time: the
    spread a slider meets from chair to chair (the join costs more on chairs with loose parts)."""
    z = np.asarray(pipe.sample_latents(n, seed=1), dtype=np.float32)  # (n, z_dim)
    return percentiles(timed(lambda i: pipe.mesh(pipe.generate(z[i % n])[0], level=level), n, 3))


def bare_reconstruct_times(pipe, repeats: int) -> dict | None:
    """pipe.reconstruct of the example photos, in this process; None without an encoder."""
    photos = sorted((ROOT / "examples").glob("*.png"))
    if pipe.encoder is None or not photos:
        return None
    return percentiles(timed(lambda i: pipe.reconstruct(photos[i % len(photos)]), repeats, 1))


def bare_encode_shape_times(pipe, repeats: int) -> dict:
    """A voxel chair's code as the app's voxel upload finds it, one chair at a time, in this
    process: the shape encoder's one pass, and one pass + `vaegan.projection.REFINE`; {} without
    a shape encoder. The chairs are the generator's own (no data needed)."""
    from vaegan import projection

    if pipe.shape_encoder is None:
        return {}
    chairs = pipe.generate(pipe.sample_latents(8, seed=1)) >= 0.5  # (8, R, R, R)
    return {f"bare_{name}": percentiles(timed(lambda i: projection.encode(pipe, chairs[i % 8], refine=refine),
                                              repeats, 1))
            for name, refine in (("encode_shape", False), ("encode_shape_refine", True))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="benchmark an app that is already running (no cold start / RSS)")
    parser.add_argument("--checkpoint", default=None, help="passed to app.py (default: its own default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, for the app and the bare run")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--level", type=float, default=0.5)
    parser.add_argument("--truncation", type=float, default=1.0, help="of the benchmarked chair (default 1, as the UI)")
    parser.add_argument("--sample-repeats", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "latency.json"))
    parser.add_argument("--client-default", action="store_true",
                        help="keep gradio_client's ssl_verify=True on http:// too (adds CA loading per request)")
    parser.add_argument("--profile", action="store_true", help="launch with GRADIO_PROFILING=1, print phases")
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    proc = None
    result: dict = {"threads": args.threads, "checkpoint": args.checkpoint, "level": args.level}
    if args.url:
        url = args.url.rstrip("/") + "/"
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port)]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
        if args.profile:
            env["GRADIO_PROFILING"] = "1"
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_ready(url, proc)
        result["cold_start_s"] = time.perf_counter() - start
    try:
        # gradio_client opens a new httpx client for every request and every file download;
        # with TLS verification on, each one loads the CA bundle (~15 ms idle, ~45 ms on this
        # loaded machine) even for a plain-http URL. No TLS is involved on http://, so verifying
        # is a no-op there: --client-default keeps the library default anyway.
        verify = args.client_default or url.startswith("https://")
        result["client_ssl_verify"] = verify
        client = Client(url, verbose=False, ssl_verify=verify, download_files=tempfile.mkdtemp(prefix="chair-bench-"))
        # One session: sample once so the Explore sliders have a chair to move.
        def sample(i):
            return client.predict(0, args.truncation, 8, args.level, 0.0, "Mesh", api_name="/sample")

        result["chair"] = sample(0)[3]
        n_dirs = len(client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/explore"]["parameters"]) - 3
        rng = np.random.default_rng(0)

        def slider(i):
            alphas = [0.0] * n_dirs
            alphas[i % n_dirs] = float(np.round(rng.uniform(-2, 2), 1))
            out = client.predict(args.level, 0.0, "Mesh", *alphas, api_name="/explore")
            assert "positions" in out[0] or "message" in out[0], out[0]

        def rerender(i):
            client.predict(args.level + (0.01 if i % 2 else 0.0), 0.0, "Mesh", api_name="/render")

        photos = sorted((ROOT / "examples").glob("*.png"))

        def photo(i):
            client.predict(handle_file(str(photos[i % len(photos)])), args.level, 0.0, "Mesh", api_name="/photo")

        paths = {"slider": slider, "render": rerender}
        if photos:
            try:
                photo(0)
                paths["photo"] = photo
            except Exception as err:  # e.g. a checkpoint without an encoder
                result["photo_skipped"] = str(err)
        for name, fn in paths.items():
            result[name] = percentiles(timed(fn, args.repeats, args.warmup))
        result["sample_8"] = percentiles(timed(sample, args.sample_repeats, 1))
        if proc is not None:
            result["peak_rss_mb"] = peak_rss_mb(proc.pid)
        if args.profile:
            traces = httpx.get(url + "gradio_api/profiling/traces", timeout=10).json()
            traces = traces.get("traces", traces) if isinstance(traces, dict) else traces
            phases = {}
            for trace in traces:
                per_fn = phases.setdefault(trace.get("fn_name"), {})
                for key in ("queue_wait_ms", "preprocess_ms", "fn_call_ms", "postprocess_ms", "total_ms"):
                    per_fn.setdefault(key, []).append(trace.get(key, 0.0))
            result["server_phases_p50_ms"] = {fn: {k: round(float(np.median(v)), 1) for k, v in d.items()}
                                              for fn, d in phases.items()}
    finally:
        stop(proc)
    pipe = bare_pipeline(args.checkpoint, args.threads)
    result["bare_generate_mesh"] = bare_times(pipe, args.repeats, args.level, args.truncation)
    result["bare_generate_mesh_64"] = bare_many_times(pipe, 64, args.level)
    reconstruct = bare_reconstruct_times(pipe, min(args.repeats, 10))
    if reconstruct is not None:
        result["bare_reconstruct"] = reconstruct
    result.update(bare_encode_shape_times(pipe, min(args.repeats, 20)))
    bare = result["bare_generate_mesh"]["p50_ms"]
    result["load_1min"] = os.getloadavg()[0]

    print(f"\nChair Studio latency ({url}, threads={args.threads or 'default'}, "
          f"load avg {result['load_1min']:.1f} on {os.cpu_count()} CPUs)\n")
    # With --profile: the server's own p50 (queue, preprocess, handler, postprocess) of each path,
    # without gradio_client, which sleeps 50 ms whenever its SSE queue is empty (a browser's
    # EventSource does not), so its round trips carry up to 50 ms of client-side waiting.
    server = {path: result.get("server_phases_p50_ms", {}).get(fn, {}).get("total_ms")
              for path, fn in SERVER_HANDLERS.items()}
    print("| path | p50 ms | p95 ms | min ms | n | p50 / bare | server p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for name in ("slider", "render", "photo", "sample_8", "bare_generate_mesh", "bare_generate_mesh_64",
                 "bare_reconstruct", "bare_encode_shape", "bare_encode_shape_refine"):
        if name in result:
            r = result[name]
            print(f"| {name} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['min_ms']:.0f} | {r['n']} | "
                  f"{r['p50_ms'] / bare:.1f}x | {'-' if server.get(name) is None else f'{server[name]:.0f}'} |")
    print(f"\nbenchmarked chair: {result['chair']}; bare chair: {result['bare_generate_mesh']['faces']:,} triangles")
    for key in ("photo_skipped",):
        if key in result:
            print(f"{key}: {result[key][:200]}")
    if "cold_start_s" in result:
        print(f"cold start (process start -> page served): {result['cold_start_s']:.1f} s")
    if result.get("peak_rss_mb"):
        print(f"app peak RSS: {result['peak_rss_mb']:.0f} MB")
    if "server_phases_p50_ms" in result:
        print("\nserver-side p50 per handler (ms):")
        for fn, d in result["server_phases_p50_ms"].items():
            print(f"  {fn}: " + ", ".join(f"{k[:-3]} {v}" for k, v in d.items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
