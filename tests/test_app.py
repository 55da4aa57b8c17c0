"""Chair Studio (app.py): handler unit tests, then every API endpoint through gradio_client
against a launched app. A tiny random 16^3 pipeline keeps it fast; the shapes are noise."""

import base64
import io
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import gradio as gr
import torch
import numpy as np
import pytest
import trimesh
from PIL import Image

import app
from conftest import tiny_config
from vaegan import ChairPipeline, meshing, voxels, web_mesh

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.png"))
PUBLIC_ENDPOINTS = {"/random_seed", "/sample", "/pick", "/explore", "/reset", "/render", "/photo", "/photo_thumbnails",
                    "/pick_candidate",
                    "/arithmetic", "/interpolate", "/pick_step", "/export", "/load_latent", "/about",
                    "/load_voxels", "/atlas_plot", "/atlas_open"}
LEVEL, SMOOTH = 0.5, 0.0


@pytest.fixture
def studio(tiny_pipe, tmp_path):
    return app.Studio(tiny_pipe, workdir=tmp_path / "sessions")


@pytest.fixture
def gallery_studio(tmp_path):
    """A studio whose photo encoder stores a gallery of 5 chairs, so a photo has 4 candidates."""
    pipe = ChairPipeline.from_config(tiny_config(e_gallery=5), seed=0)
    with torch.no_grad():
        pipe.encoder.gallery_codes.copy_(pipe.sample_latents(5, seed=9))
        pipe.encoder.gallery_embeddings.copy_(torch.randn(5, pipe.encoder.gallery_embeddings.shape[1]))
    return app.Studio(pipe, workdir=tmp_path / "sessions"), pipe


@pytest.fixture
def sampled(studio):
    """A studio with a sampled gallery: (studio, outputs of sample)."""
    return studio, studio.sample(None, 3, 0.8, 4, LEVEL, SMOOTH, "Mesh")


def photo_file(tmp_path, name="chair.png", size=(48, 40)) -> str:
    path = tmp_path / name
    Image.new("RGB", size, (200, 120, 80)).save(path)
    return str(path)


def ops(a=("Seed", 1, 1, None), b=("Seed", 2, 1, None), c=("Seed", 3, 1, None)):
    return [*a, *b, *c]


# ------------------------------------------------------------------ import and layout
def test_import_builds_nothing():
    assert callable(app.build_demo) and callable(app.main)
    assert not any(isinstance(v, (gr.Blocks, ChairPipeline)) for v in vars(app).values())


def test_build_demo_names_every_event(tiny_pipe):
    demo = app.build_demo(tiny_pipe, notice="random weights")
    public = {f"/{fn.api_name}" for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == PUBLIC_ENDPOINTS
    named = [fn for fn in demo.fns.values() if fn.fn is not None and fn.api_visibility != "private"]
    assert all(fn.api_name for fn in named)
    assert demo.delete_cache == app.DELETE_CACHE
    # an open tab keeps its session's files alive: a timer ticks the keepalive handler
    timers = [b for b in demo.blocks.values() if isinstance(b, gr.Timer)]
    assert len(timers) == 1 and timers[0].value == app.KEEPALIVE_S < demo.studio.files.idle_s / 3
    ticks = [fn for fn in demo.fns.values() if any(t[1] == "tick" for t in fn.targets)]
    assert len(ticks) == 1 and ticks[0].fn.__name__ == "keepalive" and not ticks[0].queue
    # outputs are served in place, so Gradio keeps no second copy of them
    assert gr.utils.is_static_file(str(_touch(demo.studio.files.root / "s" / "view-x" / "chair.glb")))


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"glb")
    return path


def test_importing_the_app_does_not_import_train():
    """Layering: the app needs only vaegan (the novelty check's loader is vaegan.datasets)."""
    code = "import sys, app; bad = sorted(m for m in sys.modules if m == 'train' or m.startswith('train.')); print(bad)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_parse_args_defaults_to_localhost(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.share, args.checkpoint) == ("127.0.0.1", 7860, False, None)
    args = app.parse_args(["--host", "0.0.0.0", "--share", "--checkpoint", "user/chair32", "--concurrency", "3"])
    assert (args.host, args.share, args.checkpoint, args.concurrency) == ("0.0.0.0", True, "user/chair32", 3)


def test_main_refuses_a_missing_named_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        app.main(["--checkpoint", str(tmp_path / "nope")])


def test_viewer_is_one_html_component_with_the_webgl_script(tiny_pipe):
    """The 3D view is a gr.HTML (#model3d) whose js_on_load is web/chair_viewer.js, and it is
    the only 3D output: no Model3D and no plotly view of the chair remain."""
    demo = app.build_demo(tiny_pipe)
    viewer = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model3d")
    assert isinstance(viewer, gr.HTML) and "getContext('webgl'" in viewer.js_on_load
    assert "'settled'" in viewer.js_on_load  # the follow-ups' trigger
    assert not any(isinstance(b, gr.Model3D) for b in demo.blocks.values())
    assert not any(isinstance(b, gr.Plot) and b.elem_id == "plot" for b in demo.blocks.values())


# ------------------------------------------------------------------ sample / pick / explore
def test_sample_returns_gallery_and_current_chair(sampled, tiny_pipe):
    studio, out = sampled
    thumbs, batch, picked, chair, payload, info, *sliders = out
    assert len(thumbs) == 4 and all(Path(p).is_file() for p, _ in thumbs)
    assert [c for _, c in thumbs] == [f"seed 3 · #{i}" for i in range(1, 5)]
    expected = np.asarray(tiny_pipe.sample_latents(4, seed=3, truncation=0.8))
    np.testing.assert_allclose(batch["z"], expected, rtol=1e-6)
    assert picked == 1 and chair["z"] == batch["z"][0] == chair["base"]
    assert payload["face_count"] > 0 and f"{payload['face_count']:,} triangles" in info
    assert chair["name"] == "seed3_1" and batch["names"][2] == "seed3_3"
    assert sliders == [0.0] * len(studio.directions)


def test_viewer_payload_is_the_y_up_mesh_of_the_chair(sampled, tiny_pipe):
    _, out = sampled
    chair, payload = out[3], out[4]
    mesh = tiny_pipe.mesh(tiny_pipe.generate(chair["z"])[0], level=LEVEL)
    positions, faces = web_mesh.decode_payload(payload)
    expected = meshing.to_model3d_frame(mesh)
    np.testing.assert_allclose(positions, expected.vertices, atol=1e-6)
    np.testing.assert_array_equal(faces, expected.faces)
    assert payload["label"] == chair["label"] and not payload["flat"]


def test_pick_makes_a_gallery_chair_current(sampled):
    studio, out = sampled
    batch = out[1]
    chair, payload, info, *sliders = studio.pick(None, 3, batch, LEVEL, SMOOTH, "Mesh")
    assert chair["z"] == batch["z"][2] and chair["label"] == "seed 3 · #3" in info
    for bad in (0, 5, 1.5, None, "x"):
        with pytest.raises(gr.Error, match="chair #"):
            studio.pick(None, bad, batch, LEVEL, SMOOTH, "Mesh")
    with pytest.raises(gr.Error, match="sample a gallery first"):
        studio.pick(None, 1, None, LEVEL, SMOOTH, "Mesh")


def test_explore_moves_along_the_directions_and_reset_returns(sampled):
    studio, out = sampled
    chair = out[3]
    alphas = [1.0, 0.0, -0.5, 0.0, 0.0]
    moved, *_ = studio.explore(None, chair, LEVEL, SMOOTH, "Mesh", *alphas)
    expected = np.asarray(chair["base"]) + 1.0 * studio.directions[0].vector - 0.5 * studio.directions[2].vector
    np.testing.assert_allclose(moved["z"], expected, rtol=1e-5, atol=1e-6)
    assert moved["base"] == chair["base"] and "edit PC 1 +1.0, PC 3 -0.5" in moved["label"]
    # Sliders are absolute offsets from the base chair, not cumulative.
    again, *_ = studio.explore(None, moved, LEVEL, SMOOTH, "Mesh", *alphas)
    np.testing.assert_allclose(again["z"], moved["z"], rtol=1e-6)
    *zeros, back, payload, info = studio.reset(None, moved, LEVEL, SMOOTH, "Mesh")
    assert zeros == [0.0] * 5 and back["z"] == chair["base"] and "edit" not in info
    with pytest.raises(gr.Error, match="between -3 and 3"):
        studio.explore(None, chair, LEVEL, SMOOTH, "Mesh", 4.0, 0, 0, 0, 0)
    with pytest.raises(gr.Error, match="no chair yet"):
        studio.explore(None, None, LEVEL, SMOOTH, "Mesh", 0, 0, 0, 0, 0)


def test_render_views_and_empty_level(sampled):
    studio, out = sampled
    chair = out[3]
    payload, info = studio.rerender(None, chair, LEVEL, 0.5, "Mesh")
    assert not payload["flat"] and payload["face_count"] > 0
    cubes, info = studio.rerender(None, chair, LEVEL, SMOOTH, "Voxels")
    assert cubes["flat"] and cubes["face_count"] % 2 == 0  # two triangles per exposed voxel face
    with pytest.warns(UserWarning, match="nothing to mesh"):  # gr.Warning outside a request
        payload, info = studio.rerender(None, chair, 0.999, SMOOTH, "Mesh")
    assert "positions" not in payload and "nothing to mesh" in payload["message"]
    assert "empty at iso-level" in info
    for level, smooth, view, reason in ((0.0, 0, "Mesh", "iso-level"), (1.2, 0, "Mesh", "iso-level"),
                                        (0.5, 2, "Mesh", "smoothing"), (0.5, 0, "Wireframe", "view")):
        with pytest.raises(gr.Error, match=reason):
            studio.rerender(None, chair, level, smooth, view)


def test_sample_rejects_bad_numbers(studio):
    for seed, trunc, n, reason in ((-1, 0.8, 2, "seed"), (None, 0.8, 2, "seed"), (1, 5.0, 2, "truncation"),
                                   (1, 0.8, 0, "number of chairs"), (1, 0.8, 17, "number of chairs")):
        with pytest.raises(gr.Error, match=reason):
            studio.sample(None, seed, trunc, n, LEVEL, SMOOTH, "Mesh")


# ------------------------------------------------------------------ photo
def test_photo_accepts_paths_filedata_and_data_urls(studio, tiny_pipe, tmp_path):
    path = photo_file(tmp_path)
    candidates, picked, chair, payload, info, *_ = studio.photo(None, path, LEVEL, SMOOTH, "Mesh")
    seen, thumbs = studio.photo_thumbnails(None, candidates, LEVEL, SMOOTH)
    with Image.open(seen) as picture:  # a session file, as every other output
        assert picture.size == (tiny_pipe.config.image_size,) * 2
    np.testing.assert_allclose(chair["z"], np.asarray(tiny_pipe.encode(path))[0], rtol=1e-5, atol=1e-6)
    assert len(thumbs) == 1 and picked == 1  # no gallery stored: the photo's own chair only
    same = studio.photo(None, {"path": path, "orig_name": "My Chair (2).png"}, LEVEL, SMOOTH, "Mesh")[2]
    data_url = "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()
    also = studio.photo(None, {"url": data_url, "path": None}, LEVEL, SMOOTH, "Mesh")[2]
    assert same["z"] == chair["z"] == also["z"]
    assert chair["name"] == "photo_chair" and same["name"] == "photo_My_Chair_2" and also["name"] == "photo_photo"


def test_photo_candidates_open_edit_and_serve_as_operands(gallery_studio, tmp_path):
    """A photo gives PHOTO_CANDIDATES thumbnails, best (the photo's own code) first and opened;
    picking another opens it, the sliders edit it, and it is an arithmetic operand."""
    studio, pipe = gallery_studio
    path = photo_file(tmp_path)
    candidates, picked, chair, *_ = studio.photo(None, path, LEVEL, SMOOTH, "Mesh")
    seen, thumbs = studio.photo_thumbnails(None, candidates, LEVEL, SMOOTH)
    expected = np.asarray(pipe.candidates(path, k=app.PHOTO_CANDIDATES))
    assert len(thumbs) == app.PHOTO_CANDIDATES and all(Path(t).is_file() for t, _ in thumbs)
    assert [c for _, c in thumbs] == ["from photo", "alternative 1", "alternative 2", "alternative 3"]
    np.testing.assert_allclose(candidates["z"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chair["z"], expected[0], rtol=1e-5, atol=1e-6)
    third, payload, info, *zeros = studio.pick(None, 3, candidates, LEVEL, SMOOTH, "Mesh")
    np.testing.assert_allclose(third["z"], expected[2], rtol=1e-5, atol=1e-6)
    assert "alternative 2" in info and payload["face_count"] > 0 and zeros == [0.0] * len(studio.directions)
    assert third["name"] == "photo_chair_alt2"
    edited = studio.explore(None, third, LEVEL, SMOOTH, "Mesh", 1.0)[0]
    assert edited["base"] == third["z"] and edited["z"] != third["z"]
    thumbs, new, *_ = studio.arithmetic(None, None, candidates, chair, 0.8, LEVEL, SMOOTH, "Mesh",
                                        *ops(a=("Photo candidate", 0, 2, None), b=("Photo candidate", 0, 1, None),
                                             c=("Seed", 3, 1, None)))
    c = np.asarray(pipe.sample_latents(1, seed=3, truncation=0.8))[0]
    np.testing.assert_allclose(new["z"], expected[1] - expected[0] + c, rtol=1e-5, atol=1e-5)
    assert [cap for _, cap in thumbs][:2] == ["A: photo candidate #2", "B: photo candidate #1"]
    with pytest.raises(gr.Error, match="make a chair from a photo"):
        studio.arithmetic(None, None, None, chair, 0.8, LEVEL, SMOOTH, "Mesh", *ops(a=("Photo candidate", 0, 1, None)))
    with pytest.raises(gr.Error, match="candidate #"):
        studio.interpolate(None, None, candidates, None, 0.8, 3, "slerp", LEVEL, SMOOTH,
                           "Photo candidate", 0, 5, None, "Seed", 1, 1, None)


def _huge_png(tmp_path, side: int = 20000) -> str:
    """A valid 16x16 PNG whose header claims side x side pixels (never decoded)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", side, side)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path = tmp_path / f"huge{side}.png"
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_photo_bad_inputs_are_friendly_errors(studio, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    good = Path(photo_file(tmp_path, size=(64, 64))).read_bytes()
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good[: len(good) // 2])
    tiny = photo_file(tmp_path, "tiny.png", size=(4, 4))
    cases = [(None, "no photo"), (str(text), "not an image"), (str(truncated), "damaged or truncated"),
             (_huge_png(tmp_path, 10000), "megapixels"), (_huge_png(tmp_path, 20000), "far too large"), (tiny, "at least"), ({"orig_name": "x"}, "without a file")]
    for payload, reason in cases:
        with pytest.raises(gr.Error, match=reason):
            studio.photo(None, payload, LEVEL, SMOOTH, "Mesh")


def test_photo_without_encoder_says_so(tmp_path):
    cfg = tiny_config()
    pipe = ChairPipeline.from_config(cfg)
    pipe.encoder = None
    studio = app.Studio(pipe, workdir=tmp_path)
    with pytest.raises(gr.Error, match="no image encoder"):
        studio.photo(None, photo_file(tmp_path), LEVEL, SMOOTH, "Mesh")


# ------------------------------------------------------------------ arithmetic / interpolate
def test_arithmetic_of_seeds_gallery_and_photo(sampled, tiny_pipe, tmp_path):
    studio, out = sampled
    batch, chair = out[1], out[3]
    thumbs, new, payload, info, *_ = studio.arithmetic(None, batch, None, chair, 0.8, LEVEL, SMOOTH, "Mesh", *ops())
    assert app.download_stem(new) == "chair_A-B+C"
    a, b, c = (np.asarray(tiny_pipe.sample_latents(1, seed=s, truncation=0.8))[0] for s in (1, 2, 3))
    np.testing.assert_allclose(new["z"], a - b + c, rtol=1e-5, atol=1e-6)
    assert [cap for _, cap in thumbs] == ["A: seed 1", "B: seed 2", "C: seed 3", "A − B + C"]
    photo = photo_file(tmp_path)
    thumbs, new, *_ = studio.arithmetic(None, batch, None, chair, 0.8, LEVEL, SMOOTH, "Mesh",
                                        *ops(a=("Gallery pick", 1, 2, None), b=("Photo", 0, 1, photo),
                                             c=("Current chair", 0, 1, None)))
    expected = np.asarray(batch["z"][1]) - np.asarray(tiny_pipe.encode(photo))[0] + np.asarray(chair["z"])
    np.testing.assert_allclose(new["z"], expected, rtol=1e-5, atol=1e-5)


def test_arithmetic_names_the_bad_operand(sampled):
    studio, out = sampled
    batch, chair = out[1], out[3]
    cases = [(ops(b=("Photo", 0, 1, None)), "B: no photo"),
             (ops(c=("Gallery pick", 0, 9, None)), "C gallery #"),
             (ops(a=("Seed", -4, 1, None)), "A seed"),
             (ops(a=("Mystery", 1, 1, None)), "A: source must be")]
    for args, reason in cases:
        with pytest.raises(gr.Error, match=reason):
            studio.arithmetic(None, batch, None, chair, 0.8, LEVEL, SMOOTH, "Mesh", *args)
    with pytest.raises(gr.Error, match="sample a gallery"):
        studio.arithmetic(None, None, None, chair, 0.8, LEVEL, SMOOTH, "Mesh", *ops(a=("Gallery pick", 0, 1, None)))


def test_interpolate_strip_gif_and_pick_step(studio):
    args = ("Seed", 4, 1, None, "Seed", 5, 1, None)
    thumbs, gif, strip = studio.interpolate(None, None, None, None, 0.8, 4, "slerp", LEVEL, SMOOTH, *args)
    assert len(thumbs) == 4 and len(strip["z"]) == 4
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 6  # 4 forward + 2 back (ping-pong)
    chair = studio.pick(None, 4, strip, LEVEL, SMOOTH, "Mesh")[0]
    np.testing.assert_allclose(chair["z"], strip["z"][3])
    with pytest.raises(gr.Error, match="steps"):
        studio.interpolate(None, None, None, None, 0.8, 40, "slerp", LEVEL, SMOOTH, *args)
    with pytest.raises(gr.Error, match="unknown interpolation"):
        studio.interpolate(None, None, None, None, 0.8, 4, "cubic", LEVEL, SMOOTH, *args)


# ------------------------------------------------------------------ share
def test_export_every_format_and_load_it_back(sampled, tiny_pipe):
    studio, out = sampled
    chair = out[3]
    paths = studio.export(None, chair, 0.45, 0.2, list(app.FORMATS))
    by_ext = {Path(p).suffix[1:]: Path(p) for p in paths}
    assert set(by_ext) == set(app.FORMATS) and all(p.stat().st_size > 0 for p in by_ext.values())
    vox = tiny_pipe.generate(chair["z"])[0]
    np.testing.assert_array_equal(np.load(by_ext["npy"]), vox)
    np.testing.assert_array_equal(voxels.read_binvox(by_ext["binvox"]), vox >= 0.45)
    np.testing.assert_array_equal(voxels.read_vox(by_ext["vox"]), vox >= 0.45)
    assert len(trimesh.load(by_ext["stl"], force="mesh").faces) == len(tiny_pipe.mesh(vox, 0.45, 0.2).faces)
    assert {p.name for p in by_ext.values()} == {f"chair_seed3_1.{f}" for f in app.FORMATS}
    new, payload, info, level, smooth, *sliders = studio.load_latent(None, str(by_ext["json"]), 0.5, 0.0, "Mesh")
    np.testing.assert_array_equal(new["z"], chair["z"])
    assert (level, smooth) == (0.45, 0.2) and "loaded: seed 3 · #1" in info


def test_export_and_load_reject_bad_input(sampled, tmp_path):
    studio, out = sampled
    chair = out[3]
    with pytest.raises(gr.Error, match="at least one"):
        studio.export(None, chair, LEVEL, SMOOTH, [])
    with pytest.raises(gr.Error, match="no chair yet"):
        studio.export(None, None, LEVEL, SMOOTH, ["glb"])
    with pytest.raises(gr.Error, match="nothing to mesh"):
        studio.export(None, chair, 0.999, SMOOTH, ["glb"])
    cases = {"empty.json": ("", "empty"), "junk.json": ("{junk", "not valid JSON"),
             "short.json": ('{"z": [1, 2]}', "needs 8"), "nan.json": ('{"z": [NaN, 0, 0, 0, 0, 0, 0, 0]}', "NaN")}
    for name, (text, reason) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(gr.Error, match=reason):
            studio.load_latent(None, str(tmp_path / name), LEVEL, SMOOTH, "Mesh")
    with pytest.raises(gr.Error, match="no file"):
        studio.load_latent(None, None, LEVEL, SMOOTH, "Mesh")


def test_session_cleanup_removes_only_the_closing_sessions_files(sampled):
    studio, out = sampled

    class Req:
        session_hash = "abc123"

    class Other:
        session_hash = "live456"

    mine = Path(studio.export(Req(), out[3], LEVEL, SMOOTH, ["glb"])[0])
    kept = Path(studio.export(Other(), out[3], LEVEL, SMOOTH, ["glb"])[0])
    assert mine.is_file() and kept.is_file()
    studio.cleanup(Req())  # the tab closed
    assert not mine.exists() and kept.is_file()
    assert 0 <= studio.random_seed() <= 99_999


def test_a_session_keeps_only_its_current_files(studio, sampled):
    """Every export writes new files; the superseded ones go after the grace period, the newest
    stay, and an idle session that never unloaded is reclaimed."""
    clock = [0.0]
    studio.files._clock = lambda: clock[0]

    class Req:
        session_hash = "s1"

    chair = sampled[1][3]
    glbs = [Path(studio.export(Req(), chair, level, SMOOTH, ["glb"])[0]) for level in (0.4, 0.45, 0.5)]
    assert len({p.parent for p in glbs}) == 3 and all(p.is_file() for p in glbs)
    clock[0] += studio.files.grace_s + 1
    studio.files.sweep()
    assert [p.is_file() for p in glbs] == [False, False, True]  # only the newest download
    clock[0] += studio.files.idle_s - studio.files.grace_s
    studio.keepalive(Req())  # an open tab ticks
    clock[0] += studio.files.grace_s + 1
    studio.files.sweep()
    assert glbs[-1].is_file()
    clock[0] += studio.files.idle_s
    studio.files.sweep()  # no request and no tick for idle_s: the session is gone
    assert not glbs[-1].exists()


# ------------------------------------------------------------------ through gradio_client
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """build_demo(tiny pipeline) launched in this process; yields its URL."""
    pipe = ChairPipeline.from_config(tiny_config(), seed=0)
    demo = app.build_demo(pipe, notice="test: random weights")
    demo.queue(default_concurrency_limit=2)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def client(served, tmp_path):
    from gradio_client import Client

    return Client(served, verbose=False, ssl_verify=False, download_files=str(tmp_path / "downloads"))


def test_api_lists_every_endpoint(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert PUBLIC_ENDPOINTS <= set(info["named_endpoints"])


def test_every_endpoint_through_gradio_client(client, tmp_path):
    from gradio_client import handle_file

    seed = client.predict(api_name="/random_seed")
    assert 0 <= seed <= 99_999
    gallery, picked, payload, info, *sliders = client.predict(seed, 0.8, 3, LEVEL, SMOOTH, "Mesh",
                                                              api_name="/sample")
    assert len(gallery) == 3 and picked == 1 and payload["face_count"] > 0 and sliders == [0.0] * 5
    assert web_mesh.decode_payload(payload)[1].shape == (payload["face_count"], 3)
    assert tuple(client.predict(api_name="/about")) == ("", None, "")  # no training chairs to compare with
    payload, info, *_ = client.predict(2, LEVEL, SMOOTH, "Mesh", api_name="/pick")
    assert "#2" in info
    payload, info = client.predict(LEVEL, SMOOTH, "Mesh", 1.5, 0, 0, 0, -1, api_name="/explore")
    assert "edit PC 1 +1.5, PC 5 -1.0" in info and payload["face_count"] > 0
    *zeros, payload, info = client.predict(LEVEL, SMOOTH, "Mesh", api_name="/reset")
    assert zeros == [0.0] * 5 and "edit" not in info
    payload, info = client.predict(LEVEL, SMOOTH, "Voxels", api_name="/render")
    assert payload["flat"]
    photo = str(EXAMPLES[0]) if EXAMPLES else photo_file(tmp_path)
    picked, payload, info, *_ = client.predict(handle_file(photo), LEVEL, SMOOTH, "Mesh", api_name="/photo")
    assert "from photo" in info and picked == 1 and payload["face_count"] > 0
    seen, thumbs = client.predict(LEVEL, SMOOTH, api_name="/photo_thumbnails")
    assert Path(seen).is_file() and len(thumbs) >= 1
    gallery4, payload, info, *_ = client.predict(0.8, LEVEL, SMOOTH, "Mesh", "Seed", 1, 1, None,
                                                   "Gallery pick", 0, 2, None, "Photo", 0, 1, handle_file(photo),
                                                   api_name="/arithmetic")
    assert [g["caption"] for g in gallery4] == ["A: seed 1", "B: gallery #2", "C: photo", "A − B + C"]
    strip, gif = client.predict(0.8, 3, "lerp", LEVEL, SMOOTH, "Seed", 4, 1, None, "Current chair", 0, 1, None,
                                api_name="/interpolate")
    assert len(strip) == 3 and Path(gif).suffix == ".gif"
    payload, info, *_ = client.predict(3, LEVEL, SMOOTH, "Mesh", api_name="/pick_step")
    assert "step 3/3" in info
    files = client.predict(LEVEL, SMOOTH, list(app.FORMATS), api_name="/export")
    assert sorted(Path(f).suffix[1:] for f in files) == sorted(app.FORMATS)
    assert {Path(f).stem for f in files} == {"chair_seed_4-current_chair_step3"}
    shared = next(f for f in files if f.endswith(".json"))
    payload, info, level, smooth, *_ = client.predict(handle_file(shared), 0.3, 0.9, "Mesh",
                                                      api_name="/load_latent")
    assert (level, smooth) == (LEVEL, SMOOTH) and "loaded" in info


def test_bad_input_through_gradio_client_is_a_readable_error(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no chair yet"):  # a fresh session has no chair
        client.predict(LEVEL, SMOOTH, "Mesh", 1, 0, 0, 0, 0, api_name="/explore")
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(text)), LEVEL, SMOOTH, "Mesh", api_name="/photo")
    bad = tmp_path / "bad.json"
    bad.write_text('{"z": [1, 2, 3]}')
    with pytest.raises(AppError, match="needs 8"):
        client.predict(handle_file(str(bad)), LEVEL, SMOOTH, "Mesh", api_name="/load_latent")


# ------------------------------------------------------------------ directions, atlas, novelty, projection
def _pipe_with(tmp_path, resolution=16) -> ChairPipeline:
    """A tiny pipeline loaded from a folder (so it has a root for directions / atlas files)."""
    ChairPipeline.from_config(tiny_config(resolution), seed=0).save_pretrained(tmp_path / "ckpt")
    return ChairPipeline.from_pretrained(tmp_path / "ckpt")


def test_named_directions_become_eight_sliders(tmp_path):
    from vaegan import attributes
    from vaegan.directions import DirectionSet, save_directions

    pipe = _pipe_with(tmp_path)
    vectors = np.eye(pipe.z_dim, dtype=np.float32)[: len(attributes.NAMES)]
    labels = tuple(a.label for a in attributes.ATTRIBUTES)
    save_directions(pipe.root, DirectionSet(attributes.NAMES, labels, vectors))
    studio = app.Studio(pipe, workdir=tmp_path / "s")
    assert studio.named and [d.name for d in studio.directions] == list(labels)
    chair = studio.sample(None, 1, 0.8, 1, LEVEL, SMOOTH, "Mesh")[3]
    moved, *_ = studio.explore(None, chair, LEVEL, SMOOTH, "Mesh", 0, 0, 0, 0, 0, 0, 0, 2.0)
    np.testing.assert_allclose(np.asarray(moved["z"]) - chair["base"], 2.0 * vectors[7], atol=1e-6)
    assert "edit mass +2.0" in moved["label"]
    with pytest.raises(gr.Error, match="armrests must be between -3 and 3"):
        studio.explore(None, chair, LEVEL, SMOOTH, "Mesh", 0, 0, 0, 0, 5.0)
    demo = app.build_demo(pipe)
    sliders = [b for b in demo.blocks.values() if isinstance(b, gr.Slider) and str(b.elem_id).startswith("dir-")]
    assert [s.label for s in sliders] == list(labels)


def test_load_voxels_projects_a_file_into_an_editable_chair(studio, tiny_pipe, tmp_path):
    target = tiny_pipe.generate(tiny_pipe.sample_latents(1, seed=9))[0] >= 0.5
    path = tmp_path / "mine.npy"
    np.save(path, target)
    chair, payload, info, *sliders = studio.load_voxels(None, str(path), LEVEL, SMOOTH, "Mesh")
    assert len(chair["z"]) == tiny_pipe.z_dim and chair["base"] == chair["z"]
    assert "mine (encoded, refined, IoU" in info and sliders == [0.0] * 5 and payload["face_count"] > 0
    moved, *_ = studio.explore(None, chair, LEVEL, SMOOTH, "Mesh", 1.0)  # the sliders edit it
    assert moved["z"] != chair["z"]
    instant = studio.load_voxels(None, str(path), LEVEL, SMOOTH, "Mesh", False)[0]
    np.testing.assert_allclose(instant["z"], tiny_pipe.encode_shape(target)[0].numpy(), atol=1e-6)
    bare = app.Studio(app.ChairPipeline(tiny_pipe.generator, tiny_pipe.discriminator), workdir=tmp_path / "b")
    assert "mine (projected, IoU" in bare.load_voxels(None, str(path), LEVEL, SMOOTH, "Mesh")[2]
    (tmp_path / "notes.txt").write_text("hello")
    np.save(tmp_path / "flat.npy", np.zeros((16, 16)))
    np.save(tmp_path / "empty.npy", np.zeros((16, 16, 16)))
    for payload, reason in ((None, "no file"), (str(tmp_path / "notes.txt"), "unsupported extension"),
                            (str(tmp_path / "flat.npy"), "3-D"), (str(tmp_path / "empty.npy"), "empty")):
        with pytest.raises(gr.Error, match=reason):
            studio.load_voxels(None, payload, LEVEL, SMOOTH, "Mesh")


def test_atlas_tab_plots_and_opens_chairs(tmp_path):
    from vaegan import atlas as latent_atlas
    from vaegan import attributes

    pipe = _pipe_with(tmp_path)
    plain = app.Studio(pipe, workdir=tmp_path / "s")
    with pytest.raises(gr.Error, match="no latent atlas"):
        plain.atlas_plot("PCA", "mass")
    z = np.asarray(pipe.sample_latents(6, seed=4))
    coords = {m: latent_atlas.embed(z, m, generator=pipe.generator) for m in latent_atlas.METHODS}
    values = np.random.default_rng(0).random((6, len(attributes.NAMES)))
    names = tuple(f"chair_{i}" for i in range(6))
    latent_atlas.save_atlas(pipe.root, latent_atlas.Atlas(names, z, coords, values, np.ones(6, np.float32)))
    studio = app.Studio(pipe, workdir=tmp_path / "s")
    fig = studio.atlas_plot("t-SNE", "armrests")
    assert len(fig.data[0].x) == 6
    chair, payload, info, *sliders = studio.atlas_open(None, 3, LEVEL, SMOOTH, "Mesh")
    np.testing.assert_allclose(chair["z"], z[2], rtol=1e-6)
    assert "atlas #3: chair_2" in info and sliders == [0.0] * 5
    for bad in (0, 7, 1.5, None):
        with pytest.raises(gr.Error, match="atlas chair #"):
            studio.atlas_open(None, bad, LEVEL, SMOOTH, "Mesh")
    with pytest.raises(gr.Error, match="unknown attribute"):
        studio.atlas_plot("PCA", "height")
    demo = app.build_demo(pipe)
    assert any(isinstance(b, gr.Plot) and b.elem_id == "atlas-plot" for b in demo.blocks.values())


def test_nearest_training_chair_when_the_data_is_there(tmp_path):
    from test_atlas import write_modelnet
    from vaegan.datasets import load_chairs
    from train.metrics import iou_matrix

    pipe = ChairPipeline.from_config(tiny_config(32), seed=0)
    data = write_modelnet(tmp_path / "data", n_train=4, n_test=1)
    studio = app.Studio(pipe, workdir=tmp_path / "s", data=data)
    assert studio.training.available
    chair = {"z": np.asarray(pipe.sample_latents(1, seed=2))[0].tolist()}
    thumb, text = studio.nearest(None, chair)
    grids, names = load_chairs(data, "train", 32)
    iou = iou_matrix(pipe.generate(chair["z"]) >= 0.5, grids)[0]
    assert f"**{names[int(iou.argmax())]}**, IoU **{iou.max():.2f}**" in text and Path(thumb).is_file()
    assert "you opened" not in text
    # An atlas chair names the training chair it came from: the line says it is that chair,
    # until a slider edits it (then the usual verdict), and not when the nearest is another.
    opened = {**chair, "base": chair["z"], "training": names[int(iou.argmax())]}
    assert "(the training chair you opened, as the model rebuilds it)" in studio.nearest(None, opened)[1]
    edited = {**opened, "z": [v + 0.5 for v in chair["z"]]}
    assert "you opened" not in studio.nearest(None, edited)[1]
    twin = {**opened, "training": "chair_elsewhere_1"}
    assert "you opened" not in studio.nearest(None, twin)[1]
    assert studio.nearest(None, None) == (None, "")
    off = app.Studio(pipe, workdir=tmp_path / "s", data=tmp_path / "missing")
    assert not off.training.available and off.nearest(None, chair) == (None, "")
    tiny = app.Studio(ChairPipeline.from_config(tiny_config(16)), workdir=tmp_path / "s", data=data)
    assert not tiny.training.available  # ModelNet chairs map to 32, 64, ... only


def test_new_endpoints_through_gradio_client(client):
    from gradio_client.exceptions import AppError

    client.predict(1, 0.8, 2, LEVEL, SMOOTH, "Mesh", api_name="/sample")
    assert client.predict(api_name="/about")[2] == ""  # no training chairs at 16^3
    with pytest.raises(AppError, match="no latent atlas"):
        client.predict("PCA", "mass", api_name="/atlas_plot")
    with pytest.raises(AppError, match="no file"):
        client.predict(None, LEVEL, SMOOTH, "Mesh", api_name="/load_voxels")


# ------------------------------------------------------------------ plain errors, input checks, names
def test_errors_name_no_server_path_and_say_what_to_do(studio, tmp_path):
    upload = tmp_path / "gradio" / "3f2a9c" / "corrupt_text.jpg"
    upload.parent.mkdir(parents=True)
    upload.write_text("not a picture")
    with pytest.raises(gr.Error) as caught:
        studio.photo(None, {"path": str(upload), "orig_name": "corrupt_text.jpg"}, LEVEL, SMOOTH, "Mesh")
    message = caught.value.message
    assert str(tmp_path) not in message and "/" not in message.split(" (")[0]
    assert message.startswith("corrupt_text.jpg is not an image file") and "Upload a photo of a chair" in message
    assert app.plain(ValueError("got 1/2 at C:\\Users\\me\\x.npy")) == "got 1/2 at x.npy"
    bad = tmp_path / "deep" / "er" / "mine.binvox"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"#binvox 9\n")
    with pytest.raises(gr.Error) as caught:
        studio.check_voxel_file(str(bad))
    assert str(bad.parent) not in caught.value.message and "Upload a voxel chair" in caught.value.message


def test_input_checks_pass_good_input_and_refuse_bad(sampled, tmp_path):
    studio, out = sampled
    batch, chair = out[1], out[3]
    photo = photo_file(tmp_path)
    assert studio.check_sample(3, 0.8, 4) is None
    assert studio.check_operands(batch, None, chair, 0.8, *ops(b=("Photo", 0, 1, photo))) is None
    assert studio.check_operands(batch, None, chair, 0.8, "Seed", 4, 1, None, "Current chair", 0, 1, None) is None
    assert studio.check_export(chair, ["glb"]) is None
    for call, reason in ((lambda: studio.check_sample(-1, 0.8, 4), "seed"),
                         (lambda: studio.check_operands(batch, None, chair, 0.8, *ops(b=("Photo", 0, 1, None))),
                          "B: no photo"),
                         (lambda: studio.check_operands(None, None, None, 0.8, "Current chair", 0, 1, None,
                                                        "Seed", 1, 1, None), "no chair yet"),
                         (lambda: studio.check_export(chair, []), "at least one"),
                         (lambda: studio.check_export(None, ["glb"]), "no chair yet"),
                         (lambda: studio.check_latent_file(None), "no file"),
                         (lambda: studio.check_voxel_file(None), "no file")):
        with pytest.raises(gr.Error, match=reason):
            call()


def test_download_names_say_which_chair(sampled, tmp_path):
    studio, out = sampled
    chair = out[3]
    assert app.download_stem(chair) == "chair_seed3_1"
    edited = studio.explore(None, chair, LEVEL, SMOOTH, "Mesh", 1.0)[0]
    assert app.download_stem(edited) == "chair_seed3_1_edit"
    assert app.download_stem({"z": [0.0], "base": [0.0]}) == "chair_chair"
    assert app._slug("photo_../../etc/passwd") == "photo_etc_passwd"
    thumbs, gif, strip = studio.interpolate(None, None, None, None, 0.8, 3, "slerp", LEVEL, SMOOTH,
                                            "Seed", 4, 1, None, "Seed", 28, 1, None)
    step = studio.pick(None, 2, strip, LEVEL, SMOOTH, "Mesh")[0]
    assert app.download_stem(step) == "chair_seed_4-seed_28_step2"
    paths = studio.export(None, step, LEVEL, SMOOTH, ["glb", "json"])
    assert [Path(p).name for p in paths] == ["chair_seed_4-seed_28_step2.glb", "chair_seed_4-seed_28_step2.json"]


def test_realism_is_a_rank_among_real_chairs_the_discriminator_never_saw(tmp_path):
    """Ranked among the data folder's test chairs (the discriminator learned the training
    chairs, so they would rank above unseen real ones); left out without a test split."""
    from test_atlas import write_modelnet

    from vaegan.datasets import load_chairs

    pipe = ChairPipeline.from_config(tiny_config(32), seed=0)
    data = write_modelnet(tmp_path / "data", n_train=9, n_test=3)
    studio = app.Studio(pipe, workdir=tmp_path / "s", data=data)
    chair = {"z": np.asarray(pipe.sample_latents(1, seed=2))[0].tolist()}
    reference = studio.training.realism_reference(pipe)
    test_chairs = load_chairs(data, "test", 32)[0].astype(np.float32)  # (3, 32, 32, 32)
    np.testing.assert_allclose(reference, np.sort(pipe.realism(test_chairs)), rtol=1e-5)
    assert not np.allclose(reference, np.sort(pipe.realism(load_chairs(data, "train", 32)[0][:3].astype(np.float32))))
    score = float(pipe.realism(pipe.generate(chair["z"]))[0])
    share = 100 * np.searchsorted(reference, score) / 3
    assert studio.realism(chair) == f"looks more typical than **{share:.0f} %** of real chairs it never saw " \
                                    "(to the discriminator)"
    assert studio.realism(None) == ""
    off = app.Studio(pipe, workdir=tmp_path / "s", data=tmp_path / "missing")
    assert off.realism(chair) == ""  # nothing to rank against: left out, not a bare P(real)
    shutil.rmtree(data / "test")
    assert app.Studio(pipe, workdir=tmp_path / "t", data=data).realism(chair) == ""  # no unseen chairs
    # The page's follow-up event: both from one generator pass, the same lines.
    text, thumb, nearest = studio.about(None, chair)
    assert text == studio.realism(chair)
    assert nearest == studio.nearest(None, chair)[1] and Path(thumb).is_file()
    assert studio.about(None, None) == ("", None, "")


@pytest.mark.slow
def test_interpolate_defaults_show_a_visible_change():
    from conftest import SHIPPED

    if not (SHIPPED / "generator").is_dir():
        pytest.skip(f"no shipped checkpoint at {SHIPPED}")
    pipe = ChairPipeline.from_pretrained(SHIPPED)
    (_, start), (_, end) = app.INTERPOLATE_SEEDS
    a, b = (pipe.generate(pipe.sample_latents(1, seed=s, truncation=app.DEFAULT_TRUNCATION))[0] >= 0.5
            for s in (start, end))
    assert (a & b).sum() / (a | b).sum() < 0.3
