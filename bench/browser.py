"""Chair Studio as a user meets it: headless Chromium, one tab, N slider moves and N photos.

    .venv/bin/python bench/browser.py                      # launches app.py on a free port
    .venv/bin/python bench/browser.py --moves 40 --photos 10
    .venv/bin/python bench/browser.py --url http://127.0.0.1:7860/   # an app that is already up

It drives the system Chromium through Playwright (as tests/test_browser.py does) and prints:

  * slider release -> new frame, p50 / p90 (ms): from the pointer release on an Explore slider
    to the first animation frame whose *viewer pixels* differ from the chair shown before,
  * photo "Make chair" -> new frame, p50 (ms): from the click to the same pixel change,
  * WebGL contexts created and contexts lost (getContext and `webglcontextlost` on every canvas
    of the page, counted by a script installed before the page's own),
  * updates that never reached the screen (no pixel change within --timeout s),
  * whether the viewer is blank at the end.

A few updates before the measured ones (--warmup) let a freshly launched app load what it loads
on first use; contexts created and lost are counted over the whole page's life.

"New frame" is read from the pixels of `#model3d canvas` (drawn into a small 2-D canvas every
animation frame), never from network events. The figures go to stdout (a markdown table) and to
--json (default artifacts/browser.json). tests/test_browser.py uses the same probes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import free_port, stop, wait_ready  # noqa: E402  (the same launcher as the latency benchmark)
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    # No GPU here: WebGL through SwiftShader.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWER = "#model3d canvas"

# Installed before any page script: counts WebGL contexts and their losses on every canvas, and
# stamps the time of the last user action (pointer release, click, key) for the frame probe.
PROBE_INIT_JS = """
(() => {
  const counts = window.__webgl = {created: 0, lost: 0};
  const seen = new WeakSet();
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    const ctx = getContext.call(this, kind, ...rest);
    if (ctx && /webgl/.test(String(kind)) && !seen.has(ctx)) {
      seen.add(ctx);
      counts.created += 1;
      this.addEventListener('webglcontextlost', () => { counts.lost += 1; });
    }
    return ctx;
  };
  window.__actionAt = 0;
  for (const type of ['pointerup', 'click', 'keyup']) {
    document.addEventListener(type, () => { window.__actionAt = performance.now(); }, true);
  }
})();
"""

# The viewer's pixels on a 64 x 64 grid, as a list of RGB numbers (a signature of the frame on
# screen). Read with readPixels from the viewer's own context (it keeps its drawing buffer), ~1 ms
# a frame, where a drawImage copy costs ~14 ms and would slow the page it measures.
SIGNATURE_JS = """
(selector) => {
  const source = document.querySelector(selector);
  if (!source || !source.width) return null;
  const gl = source.getContext('webgl2') || source.getContext('webgl');
  if (!gl) return null;
  const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
  const data = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, data);
  const out = new Array(64 * 64 * 3);
  let j = 0;
  for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) {
    const i = 4 * (Math.floor((y + 0.5) * h / 64) * w + Math.floor((x + 0.5) * w / 64));
    out[j++] = data[i]; out[j++] = data[i + 1]; out[j++] = data[i + 2];
  }
  return out;
}
"""

# Resolves with ms from the last user action to the first animation frame whose viewer pixels
# differ from `before` (mean absolute difference > 0.5 of 255), or null after `timeout` ms.
WAIT_FRAME_JS = """
([selector, before, timeout]) => new Promise((resolve) => {
  const signature = %s;
  const start = performance.now();
  const tick = () => {
    const now = signature(selector);
    if (now && before) {
      let diff = 0;
      for (let i = 0; i < now.length; i++) diff += Math.abs(now[i] - before[i]);
      if (diff / now.length > 0.5) { resolve(performance.now() - window.__actionAt); return; }
    }
    if (performance.now() - start > timeout) { resolve(null); return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})
""" % SIGNATURE_JS.strip()


def launch_app(port: int, timeout: float = 120.0) -> subprocess.Popen:
    """`python app.py --port PORT` with the shipped checkpoint; returns once it serves."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("CHAIR_CHECKPOINT", None)
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{port}/", proc, timeout)
    except (RuntimeError, TimeoutError):
        stop(proc)
        raise
    return proc


def new_page(browser, url: str, width: int = 1400, height: int = 1000):
    """A page with the probes installed, loaded and showing its first chair."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.add_init_script(PROBE_INIT_JS)
    page.goto(url)
    page.locator(VIEWER).wait_for(timeout=90_000)
    page.wait_for_function("() => Number(document.querySelector('#model3d .chair-viewer').dataset.faces || 0) > 0",
                           timeout=90_000)
    # The mesh is in; its first frame comes on a later animation frame, late on a busy machine
    # (a CI run once read a blank canvas here). Wait for pixels, up to 30 s; callers still check.
    deadline = time.monotonic() + 30
    while drawn_fraction(page) <= 0.02 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return page


def signature(page) -> list[int] | None:
    return page.evaluate(SIGNATURE_JS, VIEWER)


def wait_new_frame(page, before, timeout_s: float = 10.0) -> float | None:
    """ms from the last user action to a viewer frame that differs from ``before``; None if
    none came within ``timeout_s``."""
    return page.evaluate(WAIT_FRAME_JS, [VIEWER, before, timeout_s * 1000])


def webgl_counts(page) -> dict:
    return page.evaluate("() => ({...window.__webgl})")


def drawn_fraction(page) -> float:
    """Share of the viewer's pixels that differ clearly from its background (0 = blank)."""
    pixels = np.asarray(signature(page) or [], dtype=np.int16).reshape(-1, 3)
    if not len(pixels):
        return 0.0
    colors, counts = np.unique(pixels // 8, axis=0, return_counts=True)
    background = colors[np.argmax(counts)] * 8 + 4
    return float((np.abs(pixels - background).max(axis=1) > 24).mean())


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def move_slider(page, index: int, fraction: float) -> None:
    """Click Explore slider ``index``'s track at ``fraction`` of its width (press + release)."""
    track = page.locator(f"#dir-{index} input[type=range]")
    box = track.bounding_box()
    track.click(position={"x": box["width"] * fraction, "y": box["height"] / 2})


def timed_updates(page, actions, timeout_s: float, settle_s: float) -> tuple[list[float], int]:
    """Run each action (a callable that changes the chair) and wait for its new frame ->
    (ms to the new frame for each that arrived, count that never did)."""
    times, missed = [], 0
    for prepare, act in actions:
        prepare()
        before = signature(page)
        act()
        ms = wait_new_frame(page, before, timeout_s)
        if ms is None:
            missed += 1
        else:
            times.append(ms)
        page.wait_for_timeout(settle_s * 1000)
    return times, missed


def slider_moves(page, n: int, timeout_s: float, settle_s: float) -> tuple[list[float], int]:
    """n slider moves (cycling over the sliders, alternating low and high positions) ->
    (ms to the new frame for each that arrived, count that never did)."""
    open_tab(page, "Explore")
    sliders = page.locator("[id^=dir-] input[type=range]").count()
    moves = [(lambda: None, lambda i=i: move_slider(page, i % sliders, (0.2, 0.8, 0.35, 0.65)[(i // sliders) % 4]))
             for i in range(n)]
    return timed_updates(page, moves, timeout_s, settle_s)


def photo_updates(page, photos: list[Path], n: int, timeout_s: float, settle_s: float) -> tuple[list[float], int]:
    """n photos (cycling over ``photos``) uploaded and made into chairs -> (ms, missed). The
    upload itself comes before the measured click."""
    open_tab(page, "Photo → chair")

    def upload(i):
        page.locator("#photo-in input[type=file]").set_input_files(str(photos[i % len(photos)]))
        page.wait_for_timeout(300)

    make = page.get_by_role("button", name="Make chair")
    return timed_updates(page, [(lambda i=i: upload(i), make.click) for i in range(n)], timeout_s, settle_s)


def default_photos() -> list[Path]:
    """The project's example photos, then a few real IKEA photos where the data is present."""
    photos = sorted((ROOT / "examples").glob("*.png"))
    ikea = ROOT.parent / "shared" / "data" / "ikea_chairs_dev" / "images"
    if ikea.is_dir():
        photos += sorted(ikea.glob("*.jpg"))[::8]
    return photos


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an app that is already running (default: launch app.py)")
    parser.add_argument("--moves", type=int, default=30, help="slider moves (default 30)")
    parser.add_argument("--photos", type=int, default=10, help="photos made into chairs (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="slider moves (and one photo) before measuring")
    parser.add_argument("--timeout", type=float, default=10.0, help="s an update may take to reach the screen")
    parser.add_argument("--settle", type=float, default=0.3, help="s between updates (default 0.3)")
    parser.add_argument("--json", default=str(ROOT / "artifacts" / "browser.json"))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_PATH)")
    proc = None
    url = args.url
    if not url:
        port = free_port()
        proc = launch_app(port)
        url = f"http://127.0.0.1:{port}/"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = new_page(browser, url)
            console = []
            page.on("console", lambda msg: console.append(msg.text))
            # Warm-up, not counted: the first requests of a fresh app load the training chairs
            # and the realism reference and warm torch's kernels.
            slider_moves(page, args.warmup, args.timeout, args.settle)
            photo_updates(page, default_photos()[-1:], min(args.warmup, 1), args.timeout, args.settle)
            page.wait_for_timeout(2000)
            slider_ms, slider_missed = slider_moves(page, args.moves, args.timeout, args.settle)
            photo_ms, photo_missed = photo_updates(page, default_photos(), args.photos, args.timeout, args.settle)
            counts = webgl_counts(page)
            fraction = drawn_fraction(page)
            browser.close()
    finally:
        stop(proc)
    result = {
        "url": url, "moves": args.moves, "photos": args.photos,
        "slider_release_to_frame_p50_ms": percentile(slider_ms, 50),
        "slider_release_to_frame_p90_ms": percentile(slider_ms, 90),
        "photo_to_frame_p50_ms": percentile(photo_ms, 50),
        "webgl_contexts_created": counts["created"], "webgl_contexts_lost": counts["lost"],
        "updates_never_on_screen": slider_missed + photo_missed,
        "viewer_blank_at_end": fraction < 0.02, "viewer_drawn_fraction_at_end": fraction,
        "context_lost_console_messages": sum("context lost" in line.lower() for line in console),
        "load_1min": os.getloadavg()[0],
    }
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    print(f"\nChair Studio in headless Chromium ({url}; {args.moves} slider moves, {args.photos} photos, "
          f"one tab; load avg {result['load_1min']:.1f} on {os.cpu_count()} CPUs)\n")
    print("| measure | value |\n|---|---|")
    print(f"| slider release -> new frame p50 / p90 | {fmt(result['slider_release_to_frame_p50_ms'])} / "
          f"{fmt(result['slider_release_to_frame_p90_ms'])} ms |")
    print(f"| photo Make chair -> new frame p50 | {fmt(result['photo_to_frame_p50_ms'])} ms |")
    print(f"| WebGL contexts created / lost | {counts['created']} / {counts['lost']} |")
    print(f"| updates that never reached the screen | {result['updates_never_on_screen']} "
          f"of {args.moves + args.photos} |")
    print(f"| viewer blank at the end | {'yes' if result['viewer_blank_at_end'] else 'no'} "
          f"(drawn {fraction:.2f}) |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
