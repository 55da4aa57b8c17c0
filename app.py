"""Chair Studio: the browser demo (and Hugging Face Space) of the 3D-VAE-GAN chair generator.

    python app.py                                   # http://127.0.0.1:7860
    python app.py --checkpoint user/chair32         # a Hub model repo, or a local folder
    python app.py --host 0.0.0.0 --port 7860        # on a Space / in a container
    CHAIR_CHECKPOINT=checkpoints/chair64 python app.py --share

Handlers are thin: each validates its inputs, calls `vaegan` and returns component values.
Latent math lives in `vaegan.latents`; there is no torch code here. Every event has an
`api_name`, so gradio_client can drive the whole app (see docs/app.md).
`import app` builds nothing; `build_demo(pipe)` returns the Blocks.
"""

import argparse
import functools
import io
import os
import random
import re
import threading
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image, ImageDraw

from vaegan import ChairPipeline, datasets, images, meshing, novelty, projection, render, voxels, web_mesh
from vaegan import directions as latent_directions
from vaegan import latents
from vaegan import atlas as latent_atlas
from vaegan import attributes as chair_attributes
from vaegan.cli import (CHECKPOINT_ENV, DEFAULT_CHECKPOINT, FORMATS, load_pipeline, prepare_for_serving,
                        write_chair)
from vaegan.errors import EmptyShapeError, ImageError, LatentError, VoxelError
from vaegan.session_files import SessionFiles

VIEWS = ("Mesh", "Voxels")
SOURCES = ("Seed", "Gallery pick", "Photo candidate", "Photo", "Current chair")
PHOTO_CANDIDATES = 4  # chairs offered for a photo: its own code, then the most similar training chairs
N_DIRECTIONS = 5  # Explore sliders of principal directions (a checkpoint without named ones)
MAX_NAMED = 8  # Explore sliders of named directions; Studio.explore takes dir1..dir8
DATA_ENV = "CHAIR_DATA"  # the ModelNet chair folder: training chairs (novelty), test chairs (realism)
# The realism score is ranked among real chairs the discriminator never saw: the data folder's
# test split (ModelNet's 100 test chairs). Ranked among the training chairs, which it learned,
# even those unseen real chairs came out at a median of 8 %.
REFERENCE_SPLIT = "test"
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "data" / "modelnet10_chair_vol30"
VOXEL_TYPES = [".binvox", ".vox", ".npy", ".npz", ".mat"]
# An uploaded voxel chair's code: the shape encoder's one pass (instant), refined through the
# generator by `projection.REFINE` (~0.4 s). A checkpoint without a shape encoder projects
# from a bank instead: a smaller bank and fewer steps than `train atlas` (a few seconds).
APP_PROJECTION = projection.ProjectionConfig(steps=80, bank=512, starts=1)
# Clicking a point of the atlas scatter: gr.Plot exposes no click event, so this listens to
# plotly's own plotly_click, writes the point's number into the "Chair #" box and presses
# "Open chair" (the same event a typed number triggers). Re-attaches after each redraw.
ATLAS_CLICK_JS = """
() => {
  const hook = () => {
    const plot = document.querySelector('#atlas-plot .js-plotly-plot');
    if (!plot || plot.dataset.atlasHook || typeof plot.on !== 'function') return;
    plot.dataset.atlasHook = '1';
    plot.on('plotly_click', (event) => {
      const point = event.points && event.points[0];
      const input = document.querySelector('#atlas-index input');
      const button = document.querySelector('#atlas-open');
      if (!point || point.customdata === undefined || !input || !button) return;
      input.value = String(Number(point.customdata) + 1);
      input.dispatchEvent(new Event('input', {bubbles: true}));
      setTimeout(() => button.click(), 100);
    });
  };
  setInterval(hook, 700);
}
"""
MAX_SAMPLES = 16
# Interpolate's default ends: a dining chair (seed 4) to an armchair (seed 28), IoU 0.12 at the
# default truncation with chair32, so the strip shows a visible change.
INTERPOLATE_SEEDS = (("Start", 4), ("End", 28))
MAX_SEED = 2**31 - 1
THUMB_SIDE = 160
THUMB_POINTS = 12_000  # splats per thumbnail: enough at 160 px, ~5x cheaper than the default
# Truncation 1 draws from the prior as shipped, the draws `train eval-gen` scores (at 0.8: COV-CD
# 49.1 % against 51.4 % over 10 seeds, 1-NNA-CD level; model card).
DEFAULT_LEVEL, DEFAULT_SMOOTH, DEFAULT_TRUNCATION = 0.5, 0.0, 1.0
# The 3D view: a gr.HTML whose js_on_load (web/chair_viewer.js) keeps one WebGL canvas for the
# page's life and swaps the chair's buffers in place; its value is a `vaegan.web_mesh` payload.
WEB = Path(__file__).resolve().parent / "web"
VIEWER_HTML = ('<div class="chair-viewer"><div class="chair-viewer-note"></div>'
               '<div class="chair-viewer-hint">drag to orbit · scroll to zoom · double-click: reset</div></div>')
SESSION_DIR = "chair-studio"  # under Gradio's cache folder: the sessions' output files (vaegan.session_files)
KEEPALIVE_S = 30  # an open tab's timer tick: its session (and the chair on screen) stays alive
# Gradio's own temporary files are now only uploads (outputs are served in place from
# SESSION_DIR): a photo stays usable as an operand for an hour, the sweep runs every 10 minutes.
DELETE_CACHE = (600, 3600)

CSS = """
#notice {border-left: 4px solid #e0a030; padding: 4px 12px; background: rgba(224,160,48,0.08);}
#chair-info {min-height: 1.6em;}
.thumbs .thumbnail-item {background: white;}
/* Every tab on one row from 1280 px: Gradio moves what does not fit into a "..." menu. */
#tabs .tab-container button[role=tab] {padding: 0 10px;}
"""


class ChairSelectionError(ValueError):
    """An operand or action refers to a chair that does not exist in this session."""


class TrainingChairs:
    """The training chairs for the novelty check: read from ``folder`` on first use (about
    2 s for ModelNet's 888 chairs) and kept as packed bits (4 KB per chair); and the scores of
    the folder's test chairs for the realism line (`realism_reference`). Unavailable when the
    folder is missing or the model's resolution is not a multiple of 32."""

    def __init__(self, folder: str | os.PathLike | None, resolution: int):
        self.folder = Path(folder) if folder else None
        self.resolution = resolution
        self._packed: novelty.PackedGrids | None = None
        self._scores: np.ndarray | None = None  # (n,) sorted, `realism_reference`
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.folder is not None and self.folder.is_dir() and self.resolution % 32 == 0

    def preload(self) -> None:
        """Read the chairs in a background thread, so the first novelty check does not wait;
        a failure is left for that first check to report."""
        def load():
            try:
                self.packed()
            except (ValueError, OSError):
                pass

        if self.available:
            threading.Thread(target=load, name="training-chairs", daemon=True).start()

    def packed(self) -> novelty.PackedGrids:
        with self._lock:
            if self._packed is None:
                grids, names = datasets.load_chairs(self.folder, "train", self.resolution)
                self._packed = novelty.pack(grids, names=names)
            return self._packed

    def realism_reference(self, pipe: ChairPipeline) -> np.ndarray | None:
        """The discriminator's P(real) of the real chairs it never saw (the folder's test split),
        sorted (n,): what a chair's own score is ranked against, so the page can say "more
        typical than 40 % of real chairs". None without a test split. Made on the first realism
        request (~0.3 s for ModelNet's 100 test chairs), in the worker thread that scores chairs
        anyway: a thread of its own at start-up raised the app's memory by 30-90 MB (torch's
        per-thread buffers)."""
        with self._lock:
            if self._scores is None:
                if not (self.folder / REFERENCE_SPLIT).is_dir():
                    return None
                grids, _ = datasets.load_chairs(self.folder, REFERENCE_SPLIT, self.resolution)  # (n, R, R, R)
                # 8 chairs a pass: larger batches raise the app's peak memory for no gain.
                scores = [pipe.realism(grids[start:start + 8].astype(np.float32)) for start in range(0, len(grids), 8)]
                self._scores = np.sort(np.concatenate(scores))
            return self._scores


# A server path in an error message (a Gradio upload lives under /tmp/gradio/<hash>/name):
# the user is shown the file's own name only.
_SERVER_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:)?(?:[/\\][^\s/\\'\"]+)*[/\\]([^\s/\\'\"]+)")
# What to do next, after the message of each kind of bad input.
_NEXT_STEP = {ImageError: "Upload a photo of a chair (JPEG, PNG or WebP).",
              VoxelError: f"Upload a voxel chair ({', '.join(VOXEL_TYPES)}).",
              LatentError: "Upload a chair .json saved with Prepare downloads."}


def plain(err: Exception) -> str:
    """An exception -> a message for the page: no server paths, with what to do next."""
    message = _SERVER_PATH.sub(r"\1", str(err)).strip()
    hint = next((text for kind, text in _NEXT_STEP.items() if isinstance(err, kind)), "")
    if not hint:
        return message
    return f"{message}{'' if message.endswith(('.', '!', '?')) else '.'} {hint}"


def friendly(fn):
    """Turn every vaegan/validation error (ValueError, CheckpointError) into a gr.Error with a
    plain message (`plain`), so the user sees a sentence instead of a traceback or a path."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(plain(err), title="Cannot do that", print_exception=False) from err
        except Image.DecompressionBombError as err:  # PIL refuses > ~179 MP before vaegan's check
            raise gr.Error("The image is far too large. Upload a photo under 40 megapixels.",
                           title="Cannot do that", print_exception=False) from err

    return wrapper


def _number(value, name: str, lo: float, hi: float, integer: bool = False):
    """A user-supplied number (possibly None or a string from the API) within [lo, hi]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    if integer:
        if number != int(number):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(number)
    return number


def _view(view) -> str:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    return view


def _image_input(payload):
    """What gr.Image sends with preprocess=False (a FileData dict, a data: URL) -> path/bytes."""
    if payload is None or payload == "":
        raise ValueError("no photo: upload one, take one with the webcam, or paste from the clipboard")
    if isinstance(payload, dict):
        url = payload.get("url") or ""
        if payload.get("path"):
            return payload["path"]
        if url.startswith("data:"):
            import base64

            return base64.b64decode(url.split(",", 1)[1])
        raise ValueError("the photo upload arrived without a file")
    return payload  # a path (the unit tests, a local call)


def _upload_name(payload) -> str:
    """The user's own file name of an upload (FileData dict or path), without its folder."""
    if isinstance(payload, dict):
        return Path(payload.get("orig_name") or payload.get("path") or "").stem
    return Path(payload).stem if isinstance(payload, (str, os.PathLike)) else ""


def _slug(text: str) -> str:
    """A piece of a download's file name: letters, digits, + - _ only, at most 60 characters."""
    return re.sub(r"[^A-Za-z0-9+\-]+", "_", str(text)).strip("_")[:60] or "chair"


def download_stem(chair: dict) -> str:
    """A download's file name (no suffix) that says which chair it is: chair_seed7_3,
    chair_photo_<stem>, chair_A-B+C, ..., with _edit when the sliders moved it."""
    name = _slug(chair.get("name") or "chair")
    edited = chair.get("base") is not None and chair.get("base") != chair.get("z")
    return f"chair_{name}" + ("_edit" if edited else "")


def _upload_path(file, what: str) -> Path:
    """What gr.File sends (a path, a tempfile wrapper or a FileData dict) -> its path."""
    if not file:
        raise ValueError(f"no file: upload {what}")
    path = file if isinstance(file, str) else getattr(file, "name", None) or file.get("path")
    return Path(path)


class Studio:
    """The app's state-free logic: one instance per process, handlers per session."""

    def __init__(self, pipe: ChairPipeline, notice: str = "", workdir: str | os.PathLike | None = None,
                 checkpoint: str = "", data: str | os.PathLike | None = None):
        self.pipe = pipe
        self.notice = notice
        self.checkpoint = checkpoint
        self.directions = latent_directions.slider_directions(pipe, N_DIRECTIONS, named_k=MAX_NAMED)
        self.slider_range = latent_directions.slider_range(pipe)  # ± (the directions file's max_strength)
        self.named = not self.directions[0].name.startswith("PC ")
        root = getattr(pipe, "root", None)
        self.atlas = latent_atlas.load_atlas(root, pipe.z_dim) if latent_atlas.has_atlas(root) else None
        self.training = TrainingChairs(data if data is not None else os.environ.get(DATA_ENV) or DEFAULT_DATA,
                                       pipe.resolution)
        self._bank: projection.LatentBank | None = None
        self._bank_lock = threading.Lock()
        workdir = Path(workdir) if workdir else Path(gr.utils.get_upload_folder()) / SESSION_DIR
        self.files = SessionFiles(workdir)  # the sweeper thread starts with the server (main)

    # ------------------------------------------------------------------ helpers
    def output(self, request: gr.Request | None, slot: str):
        """A fresh folder for this response's files of ``slot``; it replaces the slot's
        previous files once the response is ready (`vaegan.session_files`)."""
        return self.files.output(getattr(request, "session_hash", None), slot)

    def cleanup(self, request: gr.Request):
        """demo.unload: remove the closing session's files (idle sessions go by themselves)."""
        if getattr(request, "session_hash", None):
            self.files.close(request.session_hash)

    def keepalive(self, request: gr.Request):
        """An open tab's timer tick: keep this session's files (the chair on screen)."""
        self.files.touch(getattr(request, "session_hash", None))

    def _latent(self, value, name: str = "latent") -> np.ndarray:
        return latents.as_latent(value, self.pipe.z_dim, name=name)

    def _prior(self, seed, truncation, n: int = 1) -> np.ndarray:
        seed = _number(seed, "seed", 0, MAX_SEED, integer=True)
        truncation = _number(truncation, "truncation", 0.0, 3.0)
        return np.asarray(self.pipe.sample_latents(n, seed=seed, truncation=truncation), dtype=np.float32)

    def _encode(self, payload) -> tuple[np.ndarray, Image.Image]:
        _, seen = self.pipe.preprocess(_image_input(payload))  # ImageError for bad files
        return latents.as_latent(self.pipe.encode(seen)[0]), seen

    def _picture(self, vox, level: float, smooth: float) -> Image.Image:
        """One grid -> its THUMB_SIDE-pixel thumbnail (a note where nothing reaches ``level``)."""
        try:
            mesh = self.pipe.mesh(vox, level=level, smooth=smooth)
            return Image.fromarray(render.render_mesh(mesh, size=THUMB_SIDE, points=THUMB_POINTS))
        except EmptyShapeError:
            image = Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), "white")
            ImageDraw.Draw(image).text((8, THUMB_SIDE // 2 - 6), "empty at this level", fill=(120, 120, 120))
            return image

    def _thumbnail(self, vox, level: float, smooth: float, folder: Path, name: str) -> str:
        path = folder / f"{name}.png"
        self._picture(vox, level, smooth).save(path, compress_level=1)
        return str(path)

    def _thumbnails(self, zs: np.ndarray, captions: list[str], level, smooth, folder: Path):
        level, smooth = self._mesh_settings(level, smooth)
        vox = self.pipe.generate(zs)
        return [(self._thumbnail(v, level, smooth, folder, f"{i + 1:02d}"), c)
                for i, (v, c) in enumerate(zip(vox, captions))], vox

    @staticmethod
    def _mesh_settings(level, smooth) -> tuple[float, float]:
        level = meshing.check_level(_number(level, "iso-level", 0.0, 1.0))
        return level, _number(smooth, "smoothing", 0.0, 1.0)

    def _present(self, chair: dict, level, smooth, view, vox=None):
        """The current chair -> (chair state, viewer payload, info markdown).

        One generator pass and one marching-cubes pass (or the voxel cubes); the payload goes to
        the page's one WebGL view, no file is written. An empty shape at this iso-level is a
        warning and a message over the last chair, not an error (the latent is fine, the level is
        too high). The realism score and the novelty check follow in their own event (`about`)
        once the chair has settled on screen, so they never delay the 3D."""
        level, smooth = self._mesh_settings(level, smooth)
        view = _view(view)
        z = self._latent(chair["z"])
        vox = self.pipe.generate(z)[0] if vox is None else vox
        label = chair.get("label", "chair")
        try:
            if view == "Mesh":
                payload = web_mesh.mesh_payload(self.pipe.mesh(vox, level=level, smooth=smooth), label)
            else:
                payload = web_mesh.mesh_payload(web_mesh.voxel_cube_mesh(vox, level), label, flat=True)
        except EmptyShapeError as err:
            gr.Warning(str(err))
            return chair, web_mesh.message_payload(str(err), label), f"**{label}** · empty at iso-level {level:g}"
        return chair, payload, f"**{label}** · {payload['face_count']:,} triangles"

    def _zeros(self):
        return [0.0] * len(self.directions)

    @staticmethod
    def _require(chair) -> dict:
        if not chair or "z" not in chair:
            raise ChairSelectionError("there is no chair yet: sample one, upload a photo or load a latent first")
        return chair

    def _listed(self, name: str, listing, index, what: str, missing: str) -> tuple[np.ndarray, str]:
        """Operand `name` = chair #index of a listing state ({"z": [...]}: the Sample gallery or
        the photo's candidates)."""
        zs = (listing or {}).get("z") or []
        if not zs:
            raise ChairSelectionError(f"{name}: {missing}")
        i = _number(index, f"{name} {what} #", 1, len(zs), integer=True)
        return self._latent(zs[i - 1]), f"{name}: {what} #{i}"

    def _operand(self, name, source, seed, index, photo, batch, candidates, chair, truncation) -> tuple[np.ndarray, str]:
        if source == "Seed":
            seed_value = _number(seed, f"{name} seed", 0, MAX_SEED, integer=True)
            return self._prior(seed_value, truncation)[0], f"{name}: seed {seed_value}"
        if source == "Gallery pick":
            return self._listed(name, batch, index, "gallery", "sample a gallery on the Sample tab first")
        if source == "Photo candidate":
            return self._listed(name, candidates, index, "photo candidate",
                                "make a chair from a photo on the Photo tab first")
        if source == "Photo":
            try:
                return self._encode(photo)[0], f"{name}: photo"
            except ValueError as err:
                raise ValueError(f"{name}: {err}") from err
        if source == "Current chair":
            return self._latent(self._require(chair)["z"]), f"{name}: current chair"
        raise ValueError(f"{name}: source must be one of {', '.join(SOURCES)}, got {source!r}")

    # ------------------------------------------------------------------ handlers
    @friendly
    def about(self, request: gr.Request, chair):
        """The follow-ups of a chair that has settled on screen, from one generator pass ->
        (realism line, nearest training chair's thumbnail, its line)."""
        if not chair or "z" not in chair:
            return "", None, ""
        vox = self.pipe.generate(self._latent(chair["z"]))[0]
        return (self.realism(chair, vox), *self.nearest(request, chair, vox))

    def realism(self, chair, vox=None) -> str:
        """How typical the current chair looks to the discriminator, ranked among the scores of
        real chairs it never saw. Left out where the checkpoint has no discriminator or those
        chairs are not here: a bare P(real) means little to a user."""
        if self.pipe.discriminator is None or not self.training.available or not chair or "z" not in chair:
            return ""
        reference = self.training.realism_reference(self.pipe)
        if reference is None:
            return ""
        vox = self.pipe.generate(self._latent(chair["z"]))[0] if vox is None else vox
        share = 100.0 * np.searchsorted(reference, float(self.pipe.realism(vox)[0])) / len(reference)
        return f"looks more typical than **{share:.0f} %** of real chairs it never saw (to the discriminator)"

    @staticmethod
    def random_seed() -> int:
        return random.randint(0, 99_999)

    @friendly
    def sample(self, request: gr.Request, seed, truncation, n, level, smooth, view):
        n = _number(n, "number of chairs", 1, MAX_SAMPLES, integer=True)
        zs = self._prior(seed, truncation, n)
        captions = [f"seed {int(seed)} · #{i + 1}" for i in range(n)]
        with self.output(request, "gallery") as folder:
            thumbs, vox = self._thumbnails(zs, captions, level, smooth, folder)
        batch = {"z": zs.tolist(), "labels": captions, "names": [f"seed{int(seed)}_{i + 1}" for i in range(n)]}
        chair = {"z": zs[0].tolist(), "base": zs[0].tolist(), "label": captions[0], "name": batch["names"][0]}
        return (thumbs, batch, 1, *self._present(chair, level, smooth, view, vox[0]), *self._zeros())

    @staticmethod
    def selected_index(evt: gr.SelectData) -> int:
        return int(evt.index) + 1

    @friendly
    def pick(self, request: gr.Request, index, batch, level, smooth, view):
        zs = (batch or {}).get("z") or []
        if not zs:
            raise ChairSelectionError("nothing to pick from: sample a gallery first")
        i = _number(index, "chair #", 1, len(zs), integer=True)
        z = self._latent(zs[i - 1]).tolist()
        label = (batch.get("labels") or [f"#{i}"] * len(zs))[i - 1]
        name = (batch.get("names") or [f"pick{i}"] * len(zs))[i - 1]
        chair = {"z": z, "base": z, "label": label, "name": name}
        return (*self._present(chair, level, smooth, view), *self._zeros())

    @friendly
    def explore(self, request: gr.Request, chair, level, smooth, view,
                dir1=0.0, dir2=0.0, dir3=0.0, dir4=0.0, dir5=0.0, dir6=0.0, dir7=0.0, dir8=0.0):
        """Slider values dir1..dir8 (one per direction, in prior standard deviations)."""
        chair = self._require(chair)
        values = (dir1, dir2, dir3, dir4, dir5, dir6, dir7, dir8)[: len(self.directions)]
        alphas = [_number(a, d.name, -self.slider_range, self.slider_range) for a, d in zip(values, self.directions)]
        z = latents.apply_directions(chair.get("base", chair["z"]), self.directions, alphas)
        moved = ", ".join(f"{d.name} {a:+.1f}" for d, a in zip(self.directions, alphas) if a)
        label = chair["label"].split(" · edit")[0] + (f" · edit {moved}" if moved else "")
        return self._present({**chair, "z": z.tolist(), "label": label}, level, smooth, view)

    @friendly
    def reset(self, request: gr.Request, chair, level, smooth, view):
        chair = self._require(chair)
        base = chair.get("base", chair["z"])
        restored = {**chair, "z": base, "label": chair["label"].split(" · edit")[0]}
        return (*self._zeros(), *self._present(restored, level, smooth, view))

    @friendly
    def rerender(self, request: gr.Request, chair, level, smooth, view):
        return self._present(self._require(chair), level, smooth, view)[1:]

    @friendly
    def photo(self, request: gr.Request, image, level, smooth, view):
        """A photo -> its k candidate chairs (best first), the first opened at once; what the
        encoder saw and the thumbnails follow in `photo_thumbnails`, so the 3D view never waits
        for them."""
        _, seen = self.pipe.preprocess(_image_input(image))  # ImageError for bad files
        k = min(PHOTO_CANDIDATES, 1 + self.pipe.encoder.config.e_gallery) if self.pipe.encoder is not None else 1
        zs = np.asarray(self.pipe.candidates(seen, k=k), dtype=np.float32)  # (k, z_dim), the photo's own code first
        captions = ["from photo"] + [f"alternative {i}" for i in range(1, k)]
        with self.output(request, "photo") as folder:  # session files, not ones in Gradio's cache
            seen_path = folder / "seen.png"
            seen.save(seen_path, compress_level=1)
        stem = _slug(_upload_name(image) or "photo")
        candidates = {"z": zs.tolist(), "labels": [f"photo: {c}" for c in captions], "seen": str(seen_path),
                      "names": [f"photo_{stem}"] + [f"photo_{stem}_alt{i}" for i in range(1, k)]}
        chair = {"z": zs[0].tolist(), "base": zs[0].tolist(), "label": "from photo", "name": f"photo_{stem}"}
        return (candidates, 1, *self._present(chair, level, smooth, view), *self._zeros())

    @friendly
    def photo_thumbnails(self, request: gr.Request, candidates, level, smooth):
        """The photo's candidates (`photo`) -> (the picture as the encoder saw it, their
        gallery thumbnails)."""
        zs = np.asarray((candidates or {}).get("z") or [], dtype=np.float32)
        if not len(zs):
            return None, []
        captions = [label.removeprefix("photo: ") for label in candidates["labels"]]
        with self.output(request, "photo-candidates") as folder:
            return candidates.get("seen"), self._thumbnails(zs, captions, level, smooth, folder)[0]

    @friendly
    def arithmetic(self, request: gr.Request, batch, candidates, chair, truncation, level, smooth, view,
                   a_source, a_seed, a_index, a_photo, b_source, b_seed, b_index, b_photo,
                   c_source, c_seed, c_index, c_photo):
        specs = (("A", a_source, a_seed, a_index, a_photo), ("B", b_source, b_seed, b_index, b_photo),
                 ("C", c_source, c_seed, c_index, c_photo))
        operands = [self._operand(*spec, batch, candidates, chair, truncation) for spec in specs]
        result = latents.arithmetic(*(z for z, _ in operands))
        zs = np.stack([z for z, _ in operands] + [result])
        captions = [label for _, label in operands] + ["A − B + C"]
        with self.output(request, "arithmetic") as folder:
            thumbs, vox = self._thumbnails(zs, captions, level, smooth, folder)
        new = {"z": result.tolist(), "base": result.tolist(), "label": "A − B + C", "name": "A-B+C"}
        return (thumbs, *self._present(new, level, smooth, view, vox[3]), *self._zeros())

    @friendly
    def interpolate(self, request: gr.Request, batch, candidates, chair, truncation, steps, method, level, smooth,
                    a_source, a_seed, a_index, a_photo, b_source, b_seed, b_index, b_photo):
        steps = _number(steps, "steps", 2, 16, integer=True)
        (za, la), (zb, lb) = (self._operand(*spec, batch, candidates, chair, truncation) for spec in
                              (("start", a_source, a_seed, a_index, a_photo), ("end", b_source, b_seed, b_index, b_photo)))
        zs = latents.interpolate(za, zb, steps, method)
        captions = [f"{i + 1}/{steps}" for i in range(steps)]
        with self.output(request, "strip") as folder:
            thumbs, _ = self._thumbnails(zs, captions, level, smooth, folder)
            frames = []
            for path, _ in thumbs:
                with Image.open(path) as frame:
                    frames.append(frame.convert("RGB"))
            frames += frames[-2:0:-1]  # ping-pong, so the loop has no jump
            gif = folder / "interpolation.gif"
            frames[0].save(gif, save_all=True, append_images=frames[1:], duration=160, loop=0)
        strip = {"z": zs.tolist(), "labels": [f"{la} → {lb}, step {c}" for c in captions],
                 "names": [_slug(f"{la.split(': ', 1)[-1]}-{lb.split(': ', 1)[-1]}") + f"_step{i + 1}"
                           for i in range(steps)]}
        return thumbs, str(gif), strip

    @friendly
    def export(self, request: gr.Request, chair, level, smooth, formats):
        chair = self._require(chair)
        level, smooth = self._mesh_settings(level, smooth)
        formats = [f for f in FORMATS if f in (formats or [])]
        if not formats:
            raise ValueError("choose at least one file format")
        z = self._latent(chair["z"])
        with self.output(request, "export") as folder:
            paths = write_chair(self.pipe, z, self.pipe.generate(z)[0], folder / download_stem(chair), formats, level,
                                smooth, checkpoint=self.checkpoint or None, label=chair.get("label"))
        return [str(p) for p in paths]

    @friendly
    def load_latent(self, request: gr.Request, file, level, smooth, view):
        path = _upload_path(file, "a chair .json saved with Prepare downloads")
        z, meta = latents.load_latent(path, self.pipe.z_dim)
        level = meta.get("level", level) if isinstance(meta.get("level"), (int, float)) else level
        smooth = meta.get("smooth", smooth) if isinstance(meta.get("smooth"), (int, float)) else smooth
        level, smooth = self._mesh_settings(level, smooth)
        label = str(meta.get("label") or Path(path).stem)[:80]
        chair = {"z": z.tolist(), "base": z.tolist(), "label": f"loaded: {label}", "name": _slug(Path(path).stem)}
        return (*self._present(chair, level, smooth, view), level, smooth, *self._zeros())

    # ------------------------------------------------------------------ latent tools
    def nearest(self, request: gr.Request | None, chair, vox=None):
        """The novelty check: the training chair with the highest IoU with the current chair
        -> (its thumbnail, a markdown line)."""
        if not self.training.available or not chair or "z" not in chair:
            return None, ""
        refs = self.training.packed()
        vox = self.pipe.generate(self._latent(chair["z"]))[0] if vox is None else vox
        index, iou = novelty.nearest(vox, refs)
        i, value = int(index[0]), float(iou[0])
        if chair.get("training") == refs.names[i] and chair.get("base") == chair["z"]:
            # An atlas chair, unedited: it *is* that training chair, as the model rebuilds it.
            verdict = "the training chair you opened, as the model rebuilds it"
        else:
            verdict = "a near-copy" if value > 0.9 else "close" if value > 0.7 else "new"
        with self.output(request, "nearest") as folder:
            thumb = folder / "nearest.png"
            thumb.write_bytes(self._training_thumbnail(i))
        return str(thumb), f"nearest training chair: **{refs.names[i]}**, IoU **{value:.2f}** ({verdict})"

    @functools.lru_cache(maxsize=256)
    def _training_thumbnail(self, index: int) -> bytes:
        """Training chair ``index`` rendered as a PNG, once: the novelty check shows the same few
        chairs again and again."""
        grid = self.training.packed().unpack(index).astype(np.float32)
        buffer = io.BytesIO()
        self._picture(grid, 0.5, 0.0).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def _require_atlas(self) -> latent_atlas.Atlas:
        if self.atlas is None:
            raise ValueError("this checkpoint has no latent atlas (python -m train atlas --checkpoint ... --data ...)")
        return self.atlas

    @friendly
    def atlas_plot(self, method, color):
        """The atlas scatter: ``method`` "PCA" or "t-SNE", points coloured by attribute ``color``."""
        return latent_atlas.atlas_figure(self._require_atlas(), method, color)

    @friendly
    def atlas_open(self, request: gr.Request, index, level, smooth, view):
        """Make atlas chair ``index`` (1-based, as in the hover text) the current chair."""
        atlas = self._require_atlas()
        i = _number(index, "atlas chair #", 1, len(atlas), integer=True)
        z = atlas.latent(i - 1).tolist()
        chair = {"z": z, "base": z, "label": f"atlas #{i}: {atlas.names[i - 1]}", "name": f"atlas{i}",
                 "training": atlas.names[i - 1]}  # which training chair it is, for the novelty line
        return (*self._present(chair, level, smooth, view), *self._zeros())

    def _latent_bank(self) -> projection.LatentBank:
        with self._bank_lock:
            if self._bank is None:
                self._bank = projection.latent_bank(self.pipe, APP_PROJECTION.bank, APP_PROJECTION.seed)
            return self._bank

    @friendly
    def load_voxels(self, request: gr.Request, file, level, smooth, view, refine=True):
        """A voxel file -> its code -> the current chair, editable with the sliders like any
        other: the shape encoder's code, refined through the generator when ``refine``
        (`vaegan.projection.encode`), or, for a checkpoint without a shape encoder, a projection
        from a bank of samples. The info line gives the IoU of the chair shown with the file's."""
        path = _upload_path(file, f"a voxel chair ({', '.join(VOXEL_TYPES)})")
        grid = voxels.load_voxels(path, self.pipe.resolution)  # VoxelError for bad files
        if self.pipe.shape_encoder is not None:
            result = projection.encode(self.pipe, grid, refine=bool(refine))  # VoxelError for an empty grid
            how = "encoded, refined" if refine else "encoded"
        else:
            result = projection.project(self.pipe, grid, APP_PROJECTION, bank=self._latent_bank())
            how = "projected"
        z = result.z[0].tolist()
        chair = {"z": z, "base": z, "label": f"{path.stem[:60]} ({how}, IoU {float(result.iou[0]):.2f})",
                 "name": _slug(path.stem)}
        return (*self._present(chair, level, smooth, view), *self._zeros())

    # ------------------------------------------------------------------ input checks
    # The first step of each event that takes a file or operands (TripoSR's pattern): it has no
    # outputs, so bad input is a toast and every output keeps the last good chair; the work
    # itself runs in a `.success(...)` step. (Make chair skips it for speed: its bad-photo error
    # marks only "What the encoder sees", its show_progress_on, and the chair stays.)
    @friendly
    def check_operands(self, batch, candidates, chair, truncation, *operands) -> None:
        names = ("A", "B", "C") if len(operands) == 12 else ("start", "end")
        for name, (source, seed, index, photo) in zip(names, zip(*[iter(operands)] * 4)):
            if source == "Photo":
                try:
                    images.open_image(_image_input(photo))
                except ValueError as err:
                    raise type(err)(f"{name}: {err}") from err
            else:
                self._operand(name, source, seed, index, photo, batch, candidates, chair, truncation)

    @friendly
    def check_sample(self, seed, truncation, n) -> None:
        _number(n, "number of chairs", 1, MAX_SAMPLES, integer=True)
        self._prior(seed, truncation, 1)

    @friendly
    def check_export(self, chair, formats) -> None:
        self._require(chair)
        if not formats:
            raise ValueError("choose at least one file format")

    @friendly
    def check_latent_file(self, file) -> None:
        latents.load_latent(_upload_path(file, "a chair .json saved with Prepare downloads"), self.pipe.z_dim)

    @friendly
    def check_voxel_file(self, file) -> None:
        voxels.load_voxels(_upload_path(file, f"a voxel chair ({', '.join(VOXEL_TYPES)})"), self.pipe.resolution)

    @staticmethod
    def operand_visibility(source):
        return (gr.update(visible=source == "Seed"), gr.update(visible=source in ("Gallery pick", "Photo candidate")),
                gr.update(visible=source == "Photo"))


def _operand_inputs(name: str, default_source: str, default_seed: int):
    """One operand: source radio + seed / gallery # / photo (only the chosen one is shown)."""
    with gr.Group():
        source = gr.Radio(list(SOURCES), value=default_source, label=name)
        seed = gr.Number(default_seed, precision=0, minimum=0, maximum=MAX_SEED, label=f"{name} seed",
                         visible=default_source == "Seed")
        index = gr.Number(1, precision=0, minimum=1, maximum=MAX_SAMPLES, label=f"{name} gallery / candidate #",
                          visible=default_source in ("Gallery pick", "Photo candidate"))
        photo = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label=f"{name} photo",
                         visible=default_source == "Photo", height=160)
    source.change(Studio.operand_visibility, source, [seed, index, photo], queue=False,
                  show_progress="hidden", api_visibility="private")
    return [source, seed, index, photo]


def build_demo(pipe: ChairPipeline, notice: str = "", checkpoint: str = "", concurrency: int = 2,
               data: str | os.PathLike | None = None) -> gr.Blocks:
    """The whole UI for ``pipe``. ``notice`` (markdown) is shown in a banner when non-empty;
    ``data`` is the training-chair folder of the novelty check (default: $CHAIR_DATA, else
    ../shared/data/modelnet10_chair_vol30 beside the repository)."""
    examples = sorted(str(p) for p in (Path(__file__).parent / "examples").glob("*.png"))
    with gr.Blocks(title="Chair Studio", delete_cache=DELETE_CACHE, analytics_enabled=False) as demo:
        studio = Studio(pipe, notice, Path(demo.GRADIO_CACHE) / SESSION_DIR, checkpoint, data)
        # Our outputs are served from where they were written: no copy into Gradio's cache
        # (half the disk, and no second copy that only Gradio's hourly sweep would remove).
        gr.set_static_paths([studio.files.parent])
        chair = gr.State(None)  # {"z": [...], "base": [...], "label": str, ...}: the current chair
        batch = gr.State(None)  # the sample gallery's latents
        strip_batch = gr.State(None)  # the interpolation strip's latents
        photo_batch = gr.State(None)  # the photo's candidate latents, best first
        model_events = dict(concurrency_id="model", concurrency_limit=concurrency)

        gr.Markdown("# Chair Studio\nA 3D-VAE-GAN (Wu et al. 2016) that dreams up chairs. "
                    "Sample, steer the latent space, turn a photo into a chair, do latent arithmetic, "
                    "morph between chairs, and download what you made.")
        if notice:
            gr.Markdown(notice, elem_id="notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=6):
                with gr.Tabs(elem_id="tabs"):
                    with gr.Tab("Sample", id="sample"):
                        with gr.Row():
                            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=3)
                            dice = gr.Button("Random seed", scale=1, min_width=80)
                        truncation = gr.Slider(0.1, 2.0, DEFAULT_TRUNCATION, step=0.05, label="Truncation (prior noise scale)",
                                               info="lower = safer, more typical chairs; higher = more variety")
                        n = gr.Slider(1, MAX_SAMPLES, 8, step=1, label="Chairs")
                        sample_btn = gr.Button("Sample", variant="primary", elem_id="sample-btn")
                        gallery = gr.Gallery(label="Pick a chair", columns=4, height=360, allow_preview=False,
                                             object_fit="contain", elem_id="gallery", elem_classes="thumbs")
                        picked = gr.Number(1, precision=0, minimum=1, maximum=MAX_SAMPLES, label="Picked chair #")
                    with gr.Tab("Explore", id="explore"):
                        gr.Markdown("Move the current chair along latent directions; it follows the slider as you "
                                    "drag. "
                                    + ("Each named direction was fitted to an attribute measured on generated "
                                       "chairs and moves it while holding the others as still as it can "
                                       "(the model card's disentanglement table says how well)."
                                       if studio.named else
                                       "These are the principal directions of the generator's first layer "
                                       "(PC 1 changes the most), not named attributes yet."))
                        sliders = [gr.Slider(-studio.slider_range, studio.slider_range, 0.0, step=0.1, label=d.name,
                                             elem_id=f"dir-{i}") for i, d in enumerate(studio.directions)]
                        reset_btn = gr.Button("Reset")
                    with gr.Tab("Photo → chair", id="photo"):
                        if pipe.encoder is None:
                            gr.Markdown("This checkpoint has no image encoder yet, so this tab cannot work.")
                        elif notice:
                            gr.Markdown("The encoder is untrained, so the chair will not resemble the photo yet.")
                        else:
                            gr.Markdown("The chair the encoder reads from the photo opens in the viewer; the other "
                                        "thumbnails are training chairs that look most like it. Click one to open "
                                        "it; each can be edited with the sliders or used in A − B + C and "
                                        "Interpolate (source \"Photo candidate\"). The model card says how close "
                                        "the chairs come; any photo gives a chair, even one without a chair in it.")
                        with gr.Row():
                            photo_in = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"],
                                                label="Photo", height=240, elem_id="photo-in")
                            photo_seen = gr.Image(label="What the encoder sees", interactive=False, height=240)
                        photo_btn = gr.Button("Make chair", variant="primary")
                        photo_gallery = gr.Gallery(label="Candidates (click one to open it)", columns=4, height=200,
                                                   allow_preview=False, object_fit="contain",
                                                   elem_id="photo-candidates", elem_classes="thumbs")
                        photo_picked = gr.Number(1, precision=0, visible=False)
                        if examples:
                            gr.Examples(examples, inputs=photo_in, label="Example photos")
                    with gr.Tab("A − B + C", id="arithmetic"):
                        gr.Markdown("Latent arithmetic: the chair at A − B + C. Each operand is a seed, a pick from "
                                    "the Sample gallery, a photo's candidate, a photo or the current chair.")
                        with gr.Row():
                            ops = [_operand_inputs(name, "Seed", s) for name, s in (("A", 1), ("B", 2), ("C", 3))]
                        arith_btn = gr.Button("Compute A − B + C", variant="primary")
                        arith_gallery = gr.Gallery(label="A, B, C and the result", columns=4, height=200,
                                                   allow_preview=False, object_fit="contain", elem_classes="thumbs")
                    with gr.Tab("Interpolate", id="interpolate"):
                        with gr.Row():
                            ends = [_operand_inputs(name, "Seed", s) for name, s in INTERPOLATE_SEEDS]
                        with gr.Row():
                            steps = gr.Slider(2, 16, 6, step=1, label="Steps")
                            method = gr.Radio(["slerp", "lerp"], value="slerp", label="Interpolation")
                        interp_btn = gr.Button("Interpolate", variant="primary")
                        strip = gr.Gallery(label="Click a step to open it", columns=4,
                                           allow_preview=False, object_fit="contain", elem_classes="thumbs")
                        strip_picked = gr.Number(1, precision=0, visible=False)
                        gif = gr.Image(label="Animation", type="filepath", interactive=False, height=200)
                    with gr.Tab("Atlas", id="atlas"):
                        if studio.atlas is None:
                            gr.Markdown("This checkpoint has no latent atlas yet "
                                        "(`python -m train atlas --checkpoint ... --data ...` makes one).")
                        else:
                            gr.Markdown(f"The latent codes of the {len(studio.atlas)} training chairs "
                                        f"({latent_atlas.codes_description(studio.atlas.meta)}), laid out in 2-D. "
                                        "Click a point, or type its number, to open that chair.")
                        with gr.Row(visible=studio.atlas is not None):
                            atlas_method = gr.Radio(list(latent_atlas.METHODS.values()), value="generator t-SNE",
                                                    label="Map")
                            atlas_color = gr.Dropdown([a.label for a in chair_attributes.ATTRIBUTES],
                                                      value=chair_attributes.ATTRIBUTES[0].label, label="Colour by")
                        atlas_fig = gr.Plot(label="Latent atlas", elem_id="atlas-plot",
                                            visible=studio.atlas is not None)
                        with gr.Row(visible=studio.atlas is not None):
                            atlas_index = gr.Number(1, precision=0, minimum=1, label="Chair #", elem_id="atlas-index")
                            atlas_btn = gr.Button("Open chair", elem_id="atlas-open")
                    with gr.Tab("Share", id="share"):
                        gr.Markdown("Download the current chair, or load a chair `.json` someone shared.")
                        formats = gr.CheckboxGroup(list(FORMATS), value=list(FORMATS), label="Formats")
                        export_btn = gr.Button("Prepare downloads", variant="primary")
                        files = gr.File(label="Downloads", file_count="multiple", interactive=False,
                                        elem_id="downloads")
                        latent_file = gr.File(label="Load a chair .json", file_types=[".json"], type="filepath")
                        voxel_file = gr.File(label="Load a voxel chair: it gets a latent code, then the "
                                                   "sliders edit it", file_types=VOXEL_TYPES, type="filepath")
                        refine = gr.Checkbox(True, visible=pipe.shape_encoder is not None,
                                             label="Refine its code through the generator (~0.4 s; off: instant)")
            with gr.Column(scale=5):
                model3d = gr.HTML(None, html_template=VIEWER_HTML, elem_id="model3d", label="Current chair",
                                  css_template=(WEB / "chair_viewer.css").read_text(),
                                  js_on_load=(WEB / "chair_viewer.js").read_text(), apply_default_css=False)
                with gr.Row():
                    info = gr.Markdown(elem_id="chair-info", label="Chair")
                    score = gr.Markdown(elem_id="chair-score", label="Realism")
                with gr.Row(visible=studio.training.available, equal_height=True):
                    nearest_img = gr.Image(label="Nearest training chair", type="filepath", interactive=False,
                                           height=110, scale=1, min_width=110, show_label=False)
                    nearest_info = gr.Markdown(elem_id="chair-nearest", label="Novelty")
                if not studio.training.available:
                    gr.Markdown("Novelty check off: no training chairs here (set `CHAIR_DATA` or `--data`).")
                with gr.Row():
                    view = gr.Radio(list(VIEWS), value="Mesh", label="Show", scale=1)
                    level = gr.Slider(0.05, 0.95, DEFAULT_LEVEL, step=0.01, label="Iso-level", scale=2)
                    smooth = gr.Slider(0.0, 1.0, DEFAULT_SMOOTH, step=0.1, label="Smoothing", scale=2)

        shown = [chair, model3d, info]
        # preprocess=False: the handlers validate the raw numbers and strings themselves, and
        # Gradio's per-input preprocess costs a thread hop each (~1 ms an input, 9 on a slider).
        fast = dict(show_progress="hidden", trigger_mode="always_last", preprocess=False, **model_events)

        dice.click(studio.random_seed, None, seed, api_name="random_seed", queue=False, show_progress="hidden")
        sample_inputs = [seed, truncation, n, level, smooth, view]
        sample_outputs = [gallery, batch, picked, *shown, *sliders]
        check = dict(outputs=None, show_progress="hidden", api_visibility="private")
        sample_btn.click(studio.check_sample, [seed, truncation, n], **check).success(
            studio.sample, sample_inputs, sample_outputs, api_name="sample", show_progress_on=gallery, **model_events)
        demo.load(studio.sample, sample_inputs, sample_outputs, api_name="initial_chair",
                  api_visibility="undocumented", **model_events)
        gallery.select(studio.selected_index, None, picked, api_name="select_gallery", queue=False,
                       show_progress="hidden", api_visibility="private").success(
            studio.pick, [picked, batch, level, smooth, view], [*shown, *sliders], api_name="pick", **fast)
        # A slider's input event fires at every new position while dragging (and for the arrow
        # keys and the number box; the release adds nothing new). trigger_mode="always_last"
        # drops the positions passed while a chair is being made, so the last one always wins.
        gr.on([s.input for s in sliders], studio.explore,
              [chair, level, smooth, view, *sliders], shown, api_name="explore", **fast)
        reset_btn.click(studio.reset, [chair, level, smooth, view], [*sliders, *shown], api_name="reset", **fast)
        gr.on([level.release, smooth.release, view.input], studio.rerender, [chair, level, smooth, view],
              [model3d, info], api_name="render", **fast)
        photo_btn.click(
            studio.photo, [photo_in, level, smooth, view], [photo_batch, photo_picked, *shown, *sliders],
            api_name="photo", preprocess=False, show_progress="hidden", show_progress_on=photo_seen,
            **model_events).success(
            studio.photo_thumbnails, [photo_batch, level, smooth], [photo_seen, photo_gallery],
            api_name="photo_thumbnails", show_progress_on=photo_gallery, **model_events)
        photo_gallery.select(studio.selected_index, None, photo_picked, api_name="select_candidate", queue=False,
                             show_progress="hidden", api_visibility="private").success(
            studio.pick, [photo_picked, photo_batch, level, smooth, view], [*shown, *sliders],
            api_name="pick_candidate", **fast)
        op_inputs = [x for op in ops for x in op]
        arith_btn.click(studio.check_operands, [batch, photo_batch, chair, truncation, *op_inputs], preprocess=False,
                        **check).success(
                        studio.arithmetic, [batch, photo_batch, chair, truncation, level, smooth, view, *op_inputs],
                        [arith_gallery, *shown, *sliders], api_name="arithmetic", preprocess=False,
                        show_progress_on=arith_gallery, **model_events)
        end_inputs = [x for op in ends for x in op]
        interp_btn.click(studio.check_operands, [batch, photo_batch, chair, truncation, *end_inputs], preprocess=False,
                         **check).success(
            studio.interpolate, [batch, photo_batch, chair, truncation, steps, method, level, smooth, *end_inputs],
            [strip, gif, strip_batch], api_name="interpolate", preprocess=False, **model_events)
        strip.select(studio.selected_index, None, strip_picked, api_name="select_step", queue=False,
                     show_progress="hidden", api_visibility="private").success(
            studio.pick, [strip_picked, strip_batch, level, smooth, view], [*shown, *sliders],
            api_name="pick_step", **fast)
        export_btn.click(studio.check_export, [chair, formats], **check).success(
            studio.export, [chair, level, smooth, formats], files, api_name="export", **model_events)
        latent_file.upload(studio.check_latent_file, latent_file, **check).success(
            studio.load_latent, [latent_file, level, smooth, view], [*shown, level, smooth, *sliders],
            api_name="load_latent", show_progress_on=latent_file, **model_events)
        # The slower follow-ups of a new current chair (realism score, nearest training chair) run
        # once it has stayed on screen for a moment (the viewer's 'settled' event), one at a time
        # in a group of their own, so a slider drag never waits for them.
        model3d.settled(studio.about, chair, [score, nearest_img, nearest_info], api_name="about",
                        show_progress="hidden", trigger_mode="always_last", concurrency_id="follow-ups",
                        concurrency_limit=1)
        voxel_file.upload(studio.check_voxel_file, voxel_file, **check).success(
            studio.load_voxels, [voxel_file, level, smooth, view, refine], [*shown, *sliders],
            api_name="load_voxels", show_progress_on=voxel_file, **model_events)
        gr.on([atlas_method.change, atlas_color.change], studio.atlas_plot, [atlas_method, atlas_color], atlas_fig,
              api_name="atlas_plot", show_progress="hidden", trigger_mode="always_last", **model_events)
        if studio.atlas is not None:
            demo.load(studio.atlas_plot, [atlas_method, atlas_color], atlas_fig, api_visibility="private",
                      show_progress="hidden", **model_events)
            demo.load(None, None, None, js=ATLAS_CLICK_JS)
        atlas_btn.click(studio.atlas_open, [atlas_index, level, smooth, view], [*shown, *sliders],
                        api_name="atlas_open", **fast)
        demo.unload(studio.cleanup)
        gr.Timer(KEEPALIVE_S).tick(studio.keepalive, None, None, queue=False, show_progress="hidden",
                                   api_visibility="private")
    demo.studio = studio  # for tests and the benchmark
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Chair Studio: the chair generator in your browser")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="bind address (default 127.0.0.1; 0.0.0.0 on a Space or in a container)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint folder or Hub repo id (default: $CHAIR_CHECKPOINT, else checkpoints/chair32, "
                             "else an untrained network with a notice)")
    parser.add_argument("--concurrency", type=int, default=2, help="model events running at once (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--max-queue", type=int, default=64, help="queued events before 'queue full' (default 64)")
    parser.add_argument("--data", default=None,
                        help=f"training chairs for the novelty check (default: ${DATA_ENV}, else "
                             "../shared/data/modelnet10_chair_vol30 beside the repository; off when absent)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    default = Path(__file__).resolve().parent / DEFAULT_CHECKPOINT  # wherever the app is started from
    try:
        pipe, notice = load_pipeline(args.checkpoint, default=default)
    except (ValueError, FileNotFoundError) as err:  # CheckpointError, ConfigError: say why, no traceback
        raise SystemExit(f"error: {err}") from None
    prepare_for_serving(pipe, args.threads)
    name = "random-init" if notice else str(args.checkpoint or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT)
    demo = build_demo(pipe, notice, checkpoint=name, concurrency=args.concurrency, data=args.data)
    demo.studio.training.preload()
    demo.studio.files.start()
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    # run_history=False: Gradio 6 otherwise keeps every call's inputs and outputs (here a mesh of
    # ~100 KB each) in the browser's localStorage, re-serialising up to 100 of them after each
    # call: a slider took 250 ms to reach the screen at first and 500 ms after 50 moves.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, css=CSS,
                max_file_size="20mb", footer_links=["api", "gradio"], run_history=False)


if __name__ == "__main__":
    main()
