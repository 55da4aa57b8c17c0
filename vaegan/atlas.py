"""The latent atlas: the training chairs' latent codes embedded in 2-D, coloured by their
measured attributes.

This module owns the `Atlas` (chair ids, codes z, 2-D coordinates per embedding method,
attributes, reconstruction IoU), its embedding (`embed`: PCA and t-SNE), how much structure a
map shows (`structure_scores`), its files (`save_atlas`, `load_atlas`), the interactive
plotly scatter of the app (`atlas_figure`) and the static PNG of the model card
(`atlas_png`). `python -m train atlas --checkpoint DIR --data DATA` builds it.

Codes: each training chair's code is the shape encoder's one pass (chair32 v3, `--steps 0`) or
is projected into z through the generator (`vaegan.projection`, v1/v2); ``iou`` records how
well G(z) reproduces the chair (`codes_description` and `encoder_codes` read which from the
atlas's record). Attributes are measured on the training chair itself (`vaegan.attributes`).

Maps: ``pca`` and ``tsne`` embed the codes (z_dim-d) as they are. ``gpca`` and ``gtsne`` first
keep only what the generator's first layer sees of them: their coordinates along the top
principal directions of the first layer under the prior (`vaegan.latents.principal_directions`,
the closed-form GANSpace), scaled by the activation std along each; ``gpca`` plots the top
two, ``gtsne`` is the t-SNE of the top ``GENERATOR_K``. The reason: most directions of z
barely change the chair, and a projected code keeps whatever its random start had along
them, which swamps the raw codes' neighbourhoods (see the model card).

Structure score: for each attribute, the R^2 of predicting a chair's attribute by the mean
over its k = 10 nearest other chairs on the map (leave-one-out). 0 means the map's
neighbourhoods say nothing about the attribute (as in a random layout); 1 means neighbours
on the map always share it. The same score in the full z space tells whether a weak map is
the embedding's fault or the codes'.

Files (checkpoint root): ``atlas.safetensors`` (``z`` float32 (n, z_dim), ``coords_<method>``
float32 (n, 2), ``attributes`` float32 (n, n_attr), ``iou`` float32 (n,)) and
``atlas.json`` (``format``, ``names``, ``methods``, ``attributes`` (definitions), the
settings and structure scores). No voxel data is stored, so no dataset is redistributed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import attributes as attrs
from .directions import finite_json, write_bytes
from .errors import LatentError

__all__ = ["FORMAT", "TENSORS_FILE", "META_FILE", "PNG_FILE", "METHODS", "Atlas", "generator_coordinates", "embed",
           "knn_r2", "projection_start", "encoder_codes", "codes_description",
           "structure_scores", "save_atlas", "load_atlas", "has_atlas", "atlas_figure", "atlas_png"]

FORMAT = "chair-studio/atlas"
VERSION = 1
TENSORS_FILE = "atlas.safetensors"
META_FILE = "atlas.json"
PNG_FILE = "atlas.png"
METHODS = {"pca": "PCA", "tsne": "t-SNE", "gpca": "generator PCA", "gtsne": "generator t-SNE"}
GENERATOR_METHODS = ("gpca", "gtsne")  # need the generator
GENERATOR_K = 8  # principal directions of the generator's first layer kept by "gtsne"
# Viridis anchors (matplotlib's colormap sampled at 9 points), for the PNG without matplotlib.
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)


@dataclass
class Atlas:
    """``names`` (n,) chair ids; ``z`` float32 (n, z_dim); ``coords`` method -> float32 (n, 2);
    ``attributes`` float64 (n, len(vaegan.attributes.NAMES)); ``iou`` float32 (n,) of the
    projection; ``meta`` the JSON document (settings, structure scores)."""

    names: tuple[str, ...]
    z: np.ndarray
    coords: dict[str, np.ndarray]
    attributes: np.ndarray
    iou: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def latent(self, index) -> np.ndarray:
        """The code of chair ``index`` (0-based) as float32 (z_dim,), else LatentError."""
        try:
            i = int(index)
        except (TypeError, ValueError):
            raise LatentError(f"atlas chair # must be a whole number, got {index!r}") from None
        if not 0 <= i < len(self) or i != index:
            raise LatentError(f"atlas chair # must be between 1 and {len(self)}, got {index!r}")
        return self.z[i].astype(np.float32)


# ------------------------------------------------------------------ embedding and structure
def generator_coordinates(generator, z: np.ndarray, k: int = GENERATOR_K) -> np.ndarray:
    """Codes (n, z_dim) -> float64 (n, k): their coordinates along the generator's top-``k``
    first-layer principal directions, times the activation std along each."""
    from .latents import principal_directions

    dirs, variance = principal_directions(generator, k, return_variance=True)  # (k, z_dim), (k,)
    return np.asarray(z, dtype=np.float64) @ dirs.T.astype(np.float64) * np.sqrt(variance)


def embed(z: np.ndarray, method: str = "pca", seed: int = 0, perplexity: float = 30.0,
          generator=None) -> np.ndarray:
    """Codes (n, z_dim) -> float32 (n, 2) by ``"pca"`` (the top two principal axes, sign-fixed),
    ``"tsne"`` (scikit-learn t-SNE, PCA initialisation, seeded), or ``"gpca"`` / ``"gtsne"``
    (the same on `generator_coordinates`; see the module docstring; need ``generator``)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 3:
        raise LatentError(f"embedding needs at least 3 codes (n, z_dim), got shape {z.shape}")
    if method in GENERATOR_METHODS:
        if generator is None:
            raise LatentError(f"the {METHODS[method]} map needs the generator")
        if method == "gpca":
            return generator_coordinates(generator, z, 2).astype(np.float32)
        return embed(generator_coordinates(generator, z), "tsne", seed, perplexity)
    if method == "pca":
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        axes = vt[:2] * np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())[:, None]
        return (zc @ axes.T).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        tsne = TSNE(2, perplexity=min(perplexity, (len(z) - 1) / 3), init="pca", random_state=seed)
        return tsne.fit_transform(z).astype(np.float32)
    raise LatentError(f"unknown embedding {method!r}; use one of {', '.join(METHODS)}")


def knn_r2(points: np.ndarray, values: np.ndarray, k: int = 10) -> float:
    """Leave-one-out R^2 of predicting ``values`` (n,) by the mean of the ``k`` nearest other
    ``points`` (n, d). NaN values are left out."""
    from scipy.spatial import cKDTree

    keep = np.isfinite(values)
    points, values = np.asarray(points, np.float64)[keep], np.asarray(values, np.float64)[keep]
    k = min(k, len(points) - 1)
    if k < 1 or values.std() == 0:
        return float("nan")
    _, idx = cKDTree(points).query(points, k=k + 1)  # (n, k+1), the first is the point itself
    pred = values[idx[:, 1:]].mean(1)
    return float(1.0 - ((values - pred) ** 2).sum() / ((values - values.mean()) ** 2).sum())


def structure_scores(atlas: Atlas, k: int = 10, generator=None) -> dict[str, dict[str, float]]:
    """{space: {attribute: kNN R^2}} for every map in ``atlas.coords``, the full z space
    (``"z"``) and, given the ``generator``, the codes' `generator_coordinates` (``"gz"``)."""
    spaces = {**atlas.coords, "z": atlas.z}
    if generator is not None:
        spaces["gz"] = generator_coordinates(generator, atlas.z)
    return {space: {name: knn_r2(points, atlas.attributes[:, j], k) for j, name in enumerate(attrs.NAMES)}
            for space, points in spaces.items()}


# ------------------------------------------------------------------ files
def projection_start(meta: dict) -> str:
    """Where the atlas's projection started, in words, from its JSON document."""
    proj = meta.get("projection") or {}
    if proj.get("start") == "encoder":
        return "the shape encoder's codes"
    return f"the best of {proj.get('config', {}).get('bank', 'many')} prior samples"


def _projection_steps(meta: dict):
    """The projection's step count from the atlas's JSON document (None if it does not say)."""
    proj = meta.get("projection") or {}
    return (proj.get("train") or {}).get("steps", (proj.get("config") or {}).get("steps"))


def encoder_codes(meta: dict) -> bool:
    """True when the codes are the shape encoder's one pass, unrefined (`train atlas --steps 0`)."""
    return _projection_steps(meta) == 0 and (meta.get("projection") or {}).get("start") == "encoder"


def codes_description(meta: dict) -> str:
    """How the training chairs' codes were found, for the Atlas tab: the shape encoder's one
    pass (`train atlas --steps 0`, chair32 v3) or projection through the generator."""
    steps = _projection_steps(meta)
    if encoder_codes(meta):
        return "the shape encoder's codes of them"
    if steps:
        return f"found by {steps} projection steps through the generator from {projection_start(meta)}"
    return "found by projection through the generator"


def has_atlas(folder) -> bool:
    return folder is not None and (Path(folder) / TENSORS_FILE).is_file() and (Path(folder) / META_FILE).is_file()


def save_atlas(folder: str | Path, atlas: Atlas) -> tuple[Path, Path]:
    """Write ``atlas.safetensors`` + ``atlas.json`` into ``folder`` (each atomically)."""
    from safetensors.numpy import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"z": atlas.z.astype(np.float32), "attributes": atlas.attributes.astype(np.float32),
               "iou": atlas.iou.astype(np.float32)}
    tensors.update({f"coords_{m}": c.astype(np.float32) for m, c in atlas.coords.items()})
    meta = {"format": FORMAT, "version": VERSION, "n": len(atlas), "z_dim": int(atlas.z.shape[1]),
            "methods": list(atlas.coords), "names": list(atlas.names),
            "attributes": [{"name": a.name, "label": a.label, "unit": a.unit, "definition": a.definition}
                           for a in attrs.ATTRIBUTES]}
    meta.update({k: v for k, v in atlas.meta.items() if k not in meta})
    tensors_path, meta_path = folder / TENSORS_FILE, folder / META_FILE
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    write_bytes(tensors_path, save(tensors, metadata={"format": FORMAT}))
    write_bytes(meta_path, (json.dumps(finite_json(meta), indent=1) + "\n").encode("utf-8"))
    return tensors_path, meta_path


def load_atlas(folder: str | Path, z_dim: int | None = None) -> Atlas:
    """Read ``atlas.safetensors`` + ``atlas.json``; every problem is a LatentError."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LatentError(f"{folder / META_FILE} is unreadable: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LatentError(f"{folder / META_FILE} is not a {FORMAT} file")
    try:
        tensors = load_file(str(folder / TENSORS_FILE))
    except (OSError, ValueError, SafetensorError) as err:
        raise LatentError(f"{folder / TENSORS_FILE} is unreadable: {err}") from err
    names = tuple(meta.get("names") or ())
    z = tensors.get("z")
    if z is None or z.ndim != 2 or len(z) != len(names):
        raise LatentError(f"{folder / TENSORS_FILE} must hold 'z' with one row per name in {META_FILE}")
    if z_dim is not None and z.shape[1] != z_dim:
        raise LatentError(f"the atlas codes have {z.shape[1]} dimensions; this model's z has {z_dim}")
    coords = {m: tensors[f"coords_{m}"] for m in meta.get("methods", []) if f"coords_{m}" in tensors}
    stored = [a["name"] for a in meta.get("attributes", [])]
    values = tensors.get("attributes", np.full((len(z), len(stored)), np.nan, np.float32)).astype(np.float64)
    # Columns in this version's NAMES order; attributes the file lacks are NaN.
    columns = [values[:, stored.index(n)] if n in stored else np.full(len(z), np.nan) for n in attrs.NAMES]
    return Atlas(names, z, coords, np.stack(columns, axis=1), tensors.get("iou", np.full(len(z), np.nan, np.float32)),
                 meta)


# ------------------------------------------------------------------ figures
def _attribute(name: str) -> tuple[int, attrs.Attribute]:
    for j, a in enumerate(attrs.ATTRIBUTES):
        if name in (a.name, a.label):
            return j, a
    raise LatentError(f"unknown attribute {name!r}; use one of {', '.join(attrs.NAMES)}")


def _method(method: str) -> str:
    for key, label in METHODS.items():
        if method in (key, label):
            return key
    raise LatentError(f"unknown embedding {method!r}; use one of {', '.join(METHODS.values())}")


def atlas_figure(atlas: Atlas, method: str = "gtsne", color: str = "seat_height"):
    """Interactive plotly scatter of one map, points coloured by one attribute. Each point's
    ``customdata`` is its 0-based index; hover shows "#i" (1-based), the chair id, its
    attributes and how well G(code) rebuilds it (reconstruction or projection IoU)."""
    import plotly.graph_objects as go

    key = _method(method)
    if key not in atlas.coords:
        raise LatentError(f"this atlas has no {METHODS[key]} map (it has: {', '.join(atlas.coords) or 'none'})")
    j, attr = _attribute(color)
    xy = atlas.coords[key]
    values = atlas.attributes[:, j]
    finite = values[np.isfinite(values)]
    lo, hi = np.percentile(finite, [2, 98]) if len(finite) else (0.0, 1.0)  # outliers do not squash the scale
    # What `iou` measures: G(code) against the chair, the code being one encoder pass or projected.
    iou_name = "reconstruction IoU" if encoder_codes(atlas.meta) else "projection IoU"
    lines = [f"#{i + 1} {name}<br>" + "<br>".join(
        f"{a.label}: {atlas.attributes[i, c]:.3g}" for c, a in enumerate(attrs.ATTRIBUTES))
        + f"<br>{iou_name} {atlas.iou[i]:.2f}" for i, name in enumerate(atlas.names)]
    trace = go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers", customdata=np.arange(len(atlas)), text=lines,
        hovertemplate="%{text}<extra></extra>",
        marker=dict(size=6, color=values, colorscale="Viridis", showscale=True,
                    cmin=float(lo), cmax=float(max(hi, lo + 1e-9)),
                    colorbar=dict(title=dict(text=f"{attr.label}<br>({attr.unit})")), line=dict(width=0)),
    )
    layout = go.Layout(
        title=dict(text=f"{METHODS[key]} of {len(atlas)} training chairs' latent codes · colour: {attr.label}",
                   x=0.5, font=dict(size=13)),
        xaxis=dict(showticklabels=False, zeroline=False, title=f"{METHODS[key]} 1"),
        yaxis=dict(showticklabels=False, zeroline=False, title=f"{METHODS[key]} 2", scaleanchor="x"),
        margin=dict(l=30, r=10, t=40, b=30), hovermode="closest", clickmode="event",
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(245,245,242,1)",
    )
    return go.Figure(data=[trace], layout=layout)


def _viridis(t: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (n,) -> uint8 RGB (n, 3) on the viridis colormap."""
    x = np.clip(np.nan_to_num(t, nan=0.0), 0, 1) * (len(_VIRIDIS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (x - lo)[:, None]
    return np.round(_VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac).astype(np.uint8)


def _panel(xy: np.ndarray, values: np.ndarray, title: str, size: int):
    from PIL import Image, ImageDraw

    top = 18  # title band; the colour range is written in a band of the same height below
    img = Image.new("RGB", (size, size + 2 * top), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), title, fill=(40, 40, 40))
    lo, hi = xy.min(0), xy.max(0)
    span = float(max(hi - lo)) or 1.0
    margin = 8
    pix = (xy - (lo + hi) / 2) / span * (size - 2 * margin) + size / 2  # equal scale on both axes
    finite = values[np.isfinite(values)]
    v_lo, v_hi = (np.percentile(finite, [2, 98]) if len(finite) else (0.0, 1.0))
    colors = _viridis((values - v_lo) / max(v_hi - v_lo, 1e-12))
    for (x, y), c in zip(pix, colors):
        y = size - y + top  # image rows grow downward
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=tuple(int(v) for v in c))
    draw.text((4, size + top + 2), f"colour {v_lo:.3g}", fill=tuple(int(v) for v in _VIRIDIS[0]))
    draw.text((size - 60, size + top + 2), f"to {v_hi:.3g}", fill=tuple(int(v) for v in _VIRIDIS[-2]))
    return img


def atlas_png(atlas: Atlas, path: str | Path, colors: tuple[str, ...] = ("seat_height", "seat_width", "armrests",
              "leg_count", "mass"), size: int = 220) -> Path:
    """The model card figure: one row per map, one column per colouring attribute."""
    from PIL import Image

    methods = [m for m in METHODS if m in atlas.coords]
    if not methods:
        raise LatentError("the atlas has no 2-D map to draw")
    panels = [[_panel(atlas.coords[m], atlas.attributes[:, _attribute(c)[0]],
                      f"{METHODS[m]} · {_attribute(c)[1].label}", size) for c in colors] for m in methods]
    w, h = panels[0][0].size
    sheet = Image.new("RGB", (w * len(colors), h * len(methods)), "white")
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            sheet.paste(panel, (c * w, r * h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return write_bytes(path, buffer.getvalue())
