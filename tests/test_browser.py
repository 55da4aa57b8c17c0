"""A real headless Chromium, driven by Playwright, against `python app.py` in a subprocess.

It opens the page, samples a chair, moves an Explore slider, uploads a photo (and opens one of its
candidate chairs) and clicks a point of the latent atlas. After each step it waits until the Babylon 3D viewer and the plotly view
have *rendered pixels* (not just elements) showing the new chair, and saves screenshots to
artifacts/browser/. The app serves the shipped checkpoint (encoder, named directions, atlas).
With UPDATE_DOCS_SCREENSHOTS=1 it also copies them to docs/ for the README.

Skipped (with the reason) only when /usr/bin/chromium or the playwright package is missing;
CI installs both (.ci/run, requirements-dev.txt).
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "artifacts" / "browser"
DOCS = ROOT / "docs"
EXAMPLES = sorted((ROOT / "examples").glob("*.png"))
# The photo the test uploads: the project's first example render, or a real photo named by
# CHAIR_STUDIO_PHOTO (the model card's screenshot used an IKEA development photo).
PHOTO = Path(os.environ.get("CHAIR_STUDIO_PHOTO") or EXAMPLES[0])
CHROMIUM_ARGS = [
    "--no-sandbox",
    # No GPU here: WebGL through SwiftShader (Babylon tries WebGPU first, logs an error, then
    # falls back to WebGL2; plotly's 3-D scene is WebGL1).
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                     "(pip install -r requirements-dev.txt)")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    """`python app.py` on a free port, serving the shipped checkpoint as a user gets it."""
    port = _free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("CHAIR_CHECKPOINT", None)
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if httpx.get(url + "config", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("app.py did not serve its page within 90 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(app_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        pg.on("pageerror", lambda err: errors.append(str(err)))
        pg.goto(app_url)
        yield pg
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def _pixels(locator) -> np.ndarray:
    return np.asarray(Image.open(__import__("io").BytesIO(locator.screenshot())).convert("RGB"), dtype=np.int16)


def _drawn_fraction(pixels: np.ndarray) -> float:
    """Fraction of pixels that differ clearly from the element's most common (background) colour."""
    flat = pixels.reshape(-1, 3)
    colors, counts = np.unique(flat // 8, axis=0, return_counts=True)
    background = colors[np.argmax(counts)] * 8 + 4
    return float((np.abs(flat - background).max(axis=1) > 24).mean())


def wait_rendered(page, selector: str, min_fraction: float = 0.02, changed_from=None, timeout: float = 90):
    """Poll screenshots of `selector` until it shows a drawing (and, if given, a different one
    from `changed_from`); returns the pixels. Fails with the last fraction seen."""
    locator = page.locator(selector)
    deadline = time.monotonic() + timeout
    fraction = 0.0
    while time.monotonic() < deadline:
        pixels = _pixels(locator)
        fraction = _drawn_fraction(pixels)
        differs = changed_from is None or pixels.shape != changed_from.shape or \
            float(np.abs(pixels - changed_from).mean()) > 0.5
        if fraction >= min_fraction and differs:
            return pixels
        time.sleep(0.5)
    pytest.fail(f"{selector} never rendered (drawn fraction {fraction:.3f}, changed: {changed_from is None or differs})")


def shot(page, name: str, selector: str | None = None) -> Path:
    path = ARTIFACTS / f"{name}.png"
    if selector:
        page.locator(selector).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":  # README copies: smaller, 128 colours
        DOCS.mkdir(exist_ok=True)
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((1000, 1000 * im.height // im.width))
            im.quantize(colors=128).save(DOCS / f"screenshot_{name}.png", optimize=True)
    return path


def open_tab(page, name: str) -> None:
    """Click tab `name`, through gradio's "..." overflow menu when the tab row is too narrow."""
    tab = page.get_by_role("tab", name=name)
    if not tab.is_visible():
        page.locator(".overflow-menu button").first.click()
        page.locator(".overflow-dropdown button", has_text=name).click()
    else:
        tab.click()


def wait_info(page, text: str, timeout: float = 90):
    page.locator("#chair-info").filter(has_text=text).wait_for(timeout=timeout * 1000)


def test_sample_slider_and_photo_render_in_chromium(page):
    # 1. The page loads with a first chair (demo.load samples seed 0); then sample seed 7.
    page.locator("#model3d canvas").wait_for(timeout=90_000)
    viewer = wait_rendered(page, "#model3d canvas")
    plot = wait_rendered(page, "#plot .js-plotly-plot")
    page.get_by_label("Seed").fill("7")
    page.locator("#sample-btn").click()
    wait_info(page, "seed 7 · #1")
    viewer = wait_rendered(page, "#model3d canvas", changed_from=viewer)
    plot = wait_rendered(page, "#plot .js-plotly-plot", changed_from=plot)
    assert page.locator("#gallery img").count() == 8
    shot(page, "sample")

    # 2. Explore: click the first direction's range track at 85% -> pointerup -> the release event.
    open_tab(page, "Explore")
    track = page.locator("#dir-0 input[type=range]")
    box = track.bounding_box()
    track.click(position={"x": box["width"] * 0.85, "y": box["height"] / 2})
    wait_info(page, "edit ")
    viewer = wait_rendered(page, "#model3d canvas", changed_from=viewer)
    plot = wait_rendered(page, "#plot .js-plotly-plot", changed_from=plot)
    shot(page, "explore")

    # 3. Photo -> chair: upload one of the project's own example renders (or CHAIR_STUDIO_PHOTO).
    open_tab(page, "Photo → chair")
    page.locator("#photo-in input[type=file]").set_input_files(str(PHOTO))
    page.get_by_role("button", name="Make chair").click()
    wait_info(page, "from photo")
    viewer = wait_rendered(page, "#model3d canvas", changed_from=viewer)
    wait_rendered(page, "#plot .js-plotly-plot", changed_from=plot)
    # The candidate strip: k thumbnails, the photo's own chair first; clicking the third opens it.
    thumbs = page.locator("#photo-candidates img")
    thumbs.first.wait_for(timeout=30_000)
    assert thumbs.count() == 4
    shot(page, "photo")
    shot(page, "viewer", "#model3d canvas")
    thumbs.nth(2).click()
    wait_info(page, "alternative 2")
    wait_rendered(page, "#model3d canvas", changed_from=viewer)


def test_clicking_an_atlas_point_opens_that_chair(page):
    """The Atlas tab: the scatter renders, and a click on a point (plotly's own plotly_click,
    hooked by app.ATLAS_CLICK_JS) makes that training chair the current chair."""
    if not (ROOT / "checkpoints" / "chair32" / "atlas.safetensors").is_file():
        pytest.skip("the shipped checkpoint has no atlas.safetensors")
    viewer = wait_rendered(page, "#model3d canvas")
    open_tab(page, "Atlas")
    wait_rendered(page, "#atlas-plot .js-plotly-plot")
    points = page.locator("#atlas-plot .scatterlayer .point")
    assert points.count() > 100
    page.wait_for_timeout(1500)  # the tab's first draw is followed by a relayout; let it settle
    box = points.nth(17).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # A second listener records which point plotly reports, to check that exactly it opens.
    page.evaluate("""() => document.querySelector('#atlas-plot .js-plotly-plot').on('plotly_click',
        (event) => { window.clickedPoint = event.points[0].customdata; })""")
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y, steps=5)
    page.mouse.click(x, y)
    page.wait_for_function("() => window.clickedPoint !== undefined", timeout=10_000)
    number = int(page.evaluate("() => window.clickedPoint")) + 1  # customdata is 0-based
    wait_info(page, f"atlas #{number}:")
    wait_rendered(page, "#model3d canvas", changed_from=viewer)
    assert page.locator("#atlas-index input").input_value() == str(number)
    shot(page, "atlas")
