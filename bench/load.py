"""Chair Studio under sustained load: concurrent gradio_client users, disk and memory of the app.

    .venv/bin/python bench/load.py                                  # 16 users x 250 requests, launches app.py
    .venv/bin/python bench/load.py --users 16 --requests 250 --warmup 50 --settle 240
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860/ --pid 1234 --cache-dir /tmp/gradio

Each user is its own `gradio_client.Client`, so its own Gradio session, and cycles through
the main endpoints as a person clicking around would:

    /sample (n=1)  ->  /explore (one slider)  ->  /render (iso-level)  ->  /export (npy, json)

fetching every file a response names, as the browser's viewer and download links do (a
missing file is an error: that is how the benchmark checks that a chair on screen keeps its
file). `--warmup` requests per user run first and are not timed; then `--requests` per user
are timed. Meanwhile a sampler reads, once a second, the app's RSS (VmRSS, VmHWM from
/proc) and the size of the app's cache folder (its GRADIO_TEMP_DIR: Gradio's uploads and
copies plus the app's own per-session files). After the load it keeps watching the folder
for `--settle` seconds, to show the files going away once nobody uses them.

It prints errors, p50/p95 per endpoint, throughput, RSS before/after and the cache folder's
size before, at its peak and after; the same figures go to --json (artifacts/load.json).
It only talks to 127.0.0.1 (a --url elsewhere is refused), every loop is bounded by the
request counts and by --max-minutes, and it stops the app it launched.
"""

import argparse
import ipaddress
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from latency import free_port, percentiles, wait_ready  # noqa: E402

from vaegan.session_files import folder_size  # noqa: E402

ENDPOINTS = ("/sample", "/explore", "/render", "/export")


def proc_status_mb(pid: int | None) -> dict:
    """VmRSS and VmHWM of ``pid`` in MB ({} when unknown or gone)."""
    if pid is None:
        return {}
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    except OSError:
        return {}
    return out


def folder_bytes(folder: Path | None) -> tuple[int, int]:
    """(bytes, files) under the app's cache folder; (0, 0) when unknown or absent."""
    return folder_size(folder) if folder is not None else (0, 0)


class Sampler(threading.Thread):
    """Once a second: the app's RSS and its cache folder's size; keeps the peaks."""

    def __init__(self, pid: int | None, folder: Path | None, period: float = 1.0):
        super().__init__(name="load-sampler", daemon=True)
        self.pid, self.folder, self.period = pid, folder, period
        self.stop_event = threading.Event()
        self.peak_bytes = self.peak_files = 0
        self.series: list[tuple[float, float, int]] = []  # (t, rss MB, cache bytes)

    def run(self):
        start = time.perf_counter()
        while not self.stop_event.is_set():
            size, files = folder_bytes(self.folder)
            self.peak_bytes, self.peak_files = max(self.peak_bytes, size), max(self.peak_files, files)
            self.series.append((time.perf_counter() - start, proc_status_mb(self.pid).get("VmRSS", 0.0), size))
            self.stop_event.wait(self.period)


def fetch_files(http: httpx.Client, value) -> int:
    """GET every file a response names (FileData dicts, also inside lists/tuples) -> bytes read.
    A missing file raises, so the request counts as an error."""
    if isinstance(value, dict) and value.get("url"):
        response = http.get(value["url"])
        response.raise_for_status()
        return len(response.content)
    if isinstance(value, dict) and isinstance(value.get("image"), dict):  # a gallery item
        return fetch_files(http, value["image"])
    if isinstance(value, (list, tuple)):
        return sum(fetch_files(http, v) for v in value)
    return 0


def user(index: int, url: str, warmup: int, requests: int, deadline: float, fetch: bool, out: dict,
         lock: threading.Lock):
    """One session cycling through ENDPOINTS; records per-endpoint times and errors in ``out``."""
    from gradio_client import Client

    rng = np.random.default_rng(index)
    timings = {name: [] for name in ENDPOINTS}
    errors: list[str] = []
    done = 0
    try:
        client = Client(url, verbose=False, ssl_verify=False, download_files=False)
        n_dirs = len(client.view_api(print_info=False, return_format="dict")
                     ["named_endpoints"]["/explore"]["parameters"]) - 3
    except Exception as err:  # the app refused a whole user: every request of it is an error
        with lock:
            out["errors"].append(f"user {index}: client: {err!r}"[:300])
            out["failed_users"] += 1
        return
    calls = {
        "/sample": lambda i: client.predict(int(rng.integers(0, 10_000)), 0.8, 1, 0.5, 0.0, "Mesh",
                                            api_name="/sample"),
        "/explore": lambda i: client.predict(0.5, 0.0, "Mesh", *[float(np.round(rng.uniform(-2, 2), 1))
                                                                 if k == i % n_dirs else 0.0
                                                                 for k in range(n_dirs)], api_name="/explore"),
        "/render": lambda i: client.predict(0.45 + 0.1 * rng.random(), 0.0, "Mesh", api_name="/render"),
        "/export": lambda i: client.predict(0.5, 0.0, ["npy", "json"], api_name="/export"),
    }
    with httpx.Client(timeout=60) as http:
        for i in range(warmup + requests):
            if time.perf_counter() > deadline:
                errors.append("stopped by --max-minutes")
                break
            name = ENDPOINTS[i % len(ENDPOINTS)]
            start = time.perf_counter()
            try:
                response = calls[name](i)
                if fetch:
                    fetch_files(http, response)
                if i >= warmup:
                    timings[name].append(time.perf_counter() - start)
                    done += 1
            except Exception as err:
                errors.append(f"{name}: {err!r}"[:300])
    with lock:
        for name, values in timings.items():
            out["timings"][name].extend(values)
        out["errors"].extend(errors)
        out["requests"] += done


def run_phase(url: str, users: int, warmup: int, requests: int, deadline: float, fetch: bool) -> dict:
    out = {"timings": {name: [] for name in ENDPOINTS}, "errors": [], "requests": 0, "failed_users": 0}
    lock = threading.Lock()
    threads = [threading.Thread(target=user, args=(i, url, warmup, requests, deadline, fetch, out, lock), daemon=True)
               for i in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.perf_counter() + 60))
    return out


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"error: --url must be on this machine (127.0.0.1 / localhost), got {url!r}")
    return url.rstrip("/") + "/"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an app already running on 127.0.0.1 (default: launch app.py)")
    parser.add_argument("--pid", type=int, help="with --url: the app's process id, for its RSS")
    parser.add_argument("--cache-dir", help="with --url: the app's GRADIO_TEMP_DIR, for its files on disk")
    parser.add_argument("--checkpoint", default=None, help="passed to app.py (default: its own default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the launched app")
    parser.add_argument("--users", type=int, default=16, help="concurrent sessions (default 16)")
    parser.add_argument("--requests", type=int, default=250, help="timed requests per user (default 250)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per user first (default 50)")
    parser.add_argument("--settle", type=float, default=240.0,
                        help="seconds to keep watching the cache folder after the load (default 240)")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="hard stop for the load (default 30)")
    parser.add_argument("--no-fetch", dest="fetch", action="store_false",
                        help="do not download the files responses name (default: fetch them, as a browser does)")
    parser.add_argument("--app-arg", action="append", default=[], help="extra app.py argument (repeatable)")
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "load.json"))
    args = parser.parse_args(argv)
    if args.users < 1 or args.requests < 1 or args.warmup < 0:
        raise SystemExit("error: --users and --requests must be >= 1, --warmup >= 0")

    proc, own_cache = None, None
    if args.url:
        url, pid = check_loopback(args.url), args.pid
        cache = Path(args.cache_dir) if args.cache_dir else None
    else:
        import subprocess

        own_cache = cache = Path(tempfile.mkdtemp(prefix="chair-load-cache-"))
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), *args.app_arg]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(cache))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(url, proc)
        pid = proc.pid
    result: dict = {"url": url, "fetch_files": args.fetch, "users": args.users, "requests_per_user": args.requests,
                    "warmup_per_user": args.warmup, "endpoints": list(ENDPOINTS)}
    sampler = Sampler(pid, cache)
    try:
        result["cache_before_mb"] = folder_bytes(cache)[0] / 1e6
        result["rss_start_mb"] = proc_status_mb(pid).get("VmRSS")
        sampler.start()
        deadline = time.perf_counter() + 60 * args.max_minutes
        if args.warmup:
            warm = run_phase(url, args.users, args.warmup, 0, deadline, args.fetch)
            result["warmup_errors"] = len(warm["errors"])
        result["rss_after_warmup_mb"] = proc_status_mb(pid).get("VmRSS")
        start = time.perf_counter()
        load = run_phase(url, args.users, 0, args.requests, deadline, args.fetch)
        wall = time.perf_counter() - start
        result["rss_after_load_mb"] = proc_status_mb(pid).get("VmRSS")
        result["hwm_mb"] = proc_status_mb(pid).get("VmHWM")
        result["cache_after_load_mb"] = folder_bytes(cache)[0] / 1e6
        result.update(wall_s=wall, requests=load["requests"], throughput_per_s=load["requests"] / wall,
                      errors=len(load["errors"]) + load["failed_users"] * args.requests,
                      error_examples=load["errors"][:5])
        result["per_endpoint"] = {name: percentiles(v) for name, v in load["timings"].items() if v}
        settle_end = time.perf_counter() + args.settle
        while time.perf_counter() < settle_end and (proc is None or proc.poll() is None):
            time.sleep(min(5.0, max(0.0, settle_end - time.perf_counter())))
        result["cache_after_settle_mb"], result["cache_files_after_settle"] = \
            (lambda b, n: (b / 1e6, n))(*folder_bytes(cache))
        result["rss_after_settle_mb"] = proc_status_mb(pid).get("VmRSS")
    finally:
        sampler.stop_event.set()
        sampler.join(5)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except Exception:
                proc.kill()
        if own_cache is not None:
            shutil.rmtree(own_cache, ignore_errors=True)
    result["cache_peak_mb"] = sampler.peak_bytes / 1e6
    result["cache_peak_files"] = sampler.peak_files
    result["series"] = [(round(t, 1), round(r, 1), s) for t, r, s in sampler.series]
    result["load_1min"] = os.getloadavg()[0]

    print(f"\nChair Studio under load ({url}): {args.users} users x {args.requests} requests "
          f"after {args.warmup} warm-up requests each, cycling {' -> '.join(ENDPOINTS)}\n")
    print("| endpoint | p50 ms | p95 ms | n |")
    print("|---|---|---|---|")
    for name, r in result["per_endpoint"].items():
        print(f"| {name} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['n']} |")
    rss = {k: result.get(k) for k in ("rss_start_mb", "rss_after_warmup_mb", "rss_after_load_mb", "rss_after_settle_mb")}
    growth = (rss["rss_after_load_mb"] - rss["rss_after_warmup_mb"]
              if rss["rss_after_load_mb"] and rss["rss_after_warmup_mb"] else None)
    result["rss_growth_over_load_mb"] = growth
    print(f"\nrequests {result['requests']}, errors {result['errors']}, wall {wall:.0f} s, "
          f"throughput {result['throughput_per_s']:.1f}/s")
    if any(v is not None for v in rss.values()):
        print("app RSS MB: start {rss_start_mb}, after warm-up {rss_after_warmup_mb}, after load {rss_after_load_mb}, "
              "after settle {rss_after_settle_mb}".format(**{k: f"{v:.0f}" if v else "?" for k, v in rss.items()})
              + (f"; growth over the timed load {growth:+.0f} MB; peak (VmHWM) {result['hwm_mb']:.0f} MB"
                 if growth is not None else ""))
    if cache is not None:
        print(f"cache folder MB: before {result['cache_before_mb']:.1f}, peak {result['cache_peak_mb']:.1f} "
              f"({result['cache_peak_files']} files), after load {result['cache_after_load_mb']:.1f}, "
              f"{args.settle:.0f} s later {result['cache_after_settle_mb']:.1f} "
              f"({result['cache_files_after_settle']} files)")
    for example in result["error_examples"]:
        print(f"error: {example}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
