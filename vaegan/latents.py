"""Latent-space helpers for the app and the CLI: interpolation, arithmetic, slider directions,
and the shareable latent JSON.

Latents here are plain numpy float32 vectors ``(z_dim,)`` or stacks ``(n, z_dim)``, so callers
(the Gradio app keeps them in per-session state as lists) never touch torch.

Slider directions
-----------------
Until the latent-tools issue ships named semantic directions, the Explore sliders move along
the *principal directions of the generator's first layer*: GANSpace (Härkönen et al. 2020)
takes the PCA of early-layer activations over prior samples and maps it back to z. Our first
layer is linear in z (a ConvTranspose3d on a 1^3 volume, followed by an eval-mode BatchNorm,
i.e. a per-channel scale), so that PCA is exact and closed-form: with ``M`` the (z_dim, D)
matrix of the linear map and ``z ~ N(0, I)``, the activation covariance is ``Mᵀ M``, and its
principal axes pulled back to z are the left singular vectors of ``M``. Direction 1 is the z
direction that changes the first-layer activations most, and so on. They are *not* named
attributes: on a random-init generator they are just the dominant linear modes.

A checkpoint with named semantic directions (``directions.safetensors`` + ``directions.json``
in its root folder, written by ``python -m train directions``; format and fitting in
`vaegan.directions`) gets those instead: `vaegan.directions.slider_directions` is the one
place the app asks for its sliders, and it falls back to the principal directions here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LatentError

__all__ = [
    "LATENT_FORMAT",
    "MAX_ABS_LATENT",
    "Direction",
    "as_latent",
    "lerp",
    "slerp",
    "interpolate",
    "arithmetic",
    "apply_directions",
    "principal_directions",
    "latent_to_json",
    "latent_from_json",
    "save_latent",
    "load_latent",
]

LATENT_FORMAT = "chair-studio/latent"
LATENT_VERSION = 1
# Prior samples are N(0, 1) per entry; even a -3 sigma slider on top of A - B + C stays far
# below this. Anything larger is a corrupt or foreign file, not a chair we can draw.
MAX_ABS_LATENT = 50.0
MAX_JSON_BYTES = 1_000_000  # a 200-d latent is ~5 KB; refuse megabytes of junk early


@dataclass(frozen=True)
class Direction:
    """A named unit direction in z space (``vector`` float32 ``(z_dim,)``)."""

    name: str
    vector: np.ndarray


def as_latent(z: Any, z_dim: int | None = None, name: str = "latent") -> np.ndarray:
    """Any array-like of numbers -> float32 ``(z_dim,)``, or LatentError saying what is wrong.

    Accepts a flat vector or a single-row ``(1, z_dim)`` stack.
    """
    try:
        arr = np.asarray(z, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise LatentError(f"{name} must be a list of numbers") from err
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.size == 0:
        raise LatentError(f"{name} must be a flat list of numbers, got shape {arr.shape}")
    if z_dim is not None and arr.size != z_dim:
        raise LatentError(f"{name} has {arr.size} numbers; this model needs {z_dim}")
    if not np.isfinite(arr).all():
        raise LatentError(f"{name} contains NaN or infinite values")
    peak = float(np.abs(arr).max())
    if peak > MAX_ABS_LATENT:
        raise LatentError(f"{name} has a value of {peak:.3g}; latents stay within ±{MAX_ABS_LATENT:g}")
    return arr.astype(np.float32)


# ------------------------------------------------------------------ interpolation, arithmetic
def lerp(a: Any, b: Any, t: float) -> np.ndarray:
    """Linear interpolation ``(1 - t) a + t b``: float32 ``(z_dim,)``."""
    a, b = as_latent(a, name="a"), as_latent(b, len(np.ravel(a)), name="b")
    return ((1.0 - t) * a + t * b).astype(np.float32)


def slerp(a: Any, b: Any, t: float) -> np.ndarray:
    """Spherical interpolation (Shoemake; White 2016 for GAN latents): moves along the great
    circle between the directions of ``a`` and ``b`` while interpolating the norm linearly, so
    midpoints keep a typical prior norm instead of shrinking toward the origin as with `lerp`.
    Falls back to `lerp` for (anti)parallel or zero vectors."""
    a, b = as_latent(a, name="a").astype(np.float64), as_latent(b, len(np.ravel(a)), name="b").astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-8 or nb < 1e-8:
        return lerp(a, b, t)
    cos = float(np.clip(np.dot(a / na, b / nb), -1.0, 1.0))
    omega = math.acos(cos)
    if omega < 1e-4 or math.pi - omega < 1e-4:
        return lerp(a, b, t)
    unit = (math.sin((1 - t) * omega) * a / na + math.sin(t * omega) * b / nb) / math.sin(omega)
    return (unit * ((1 - t) * na + t * nb)).astype(np.float32)


def interpolate(a: Any, b: Any, steps: int, method: str = "slerp") -> np.ndarray:
    """``steps`` latents from ``a`` to ``b`` inclusive: float32 ``(steps, z_dim)``."""
    steps = int(steps)
    if not 2 <= steps <= 64:
        raise LatentError(f"steps must be between 2 and 64, got {steps}")
    funcs = {"slerp": slerp, "lerp": lerp}
    if method not in funcs:
        raise LatentError(f"unknown interpolation {method!r}; use 'slerp' or 'lerp'")
    a = as_latent(a, name="start")
    b = as_latent(b, a.size, name="end")
    return np.stack([funcs[method](a, b, t) for t in np.linspace(0.0, 1.0, steps)])


def arithmetic(a: Any, b: Any, c: Any) -> np.ndarray:
    """Latent arithmetic ``a - b + c`` (Radford et al. 2016; Wu et al. 2016 Fig. 7).

    No renormalisation: the result has a larger norm than a prior sample, which is what the
    papers do and what the user asked for."""
    a = as_latent(a, name="A")
    b, c = as_latent(b, a.size, name="B"), as_latent(c, a.size, name="C")
    return (a - b + c).astype(np.float32)


def apply_directions(base: Any, directions: list[Direction], alphas: list[float]) -> np.ndarray:
    """``base + sum_i alphas[i] * directions[i].vector``: float32 ``(z_dim,)``."""
    base = as_latent(base, name="base")
    if len(alphas) != len(directions):
        raise LatentError(f"{len(alphas)} slider values for {len(directions)} directions")
    out = base.astype(np.float64)
    for alpha, direction in zip(alphas, directions):
        alpha = float(alpha)
        if not math.isfinite(alpha):
            raise LatentError("slider values must be finite numbers")
        out = out + alpha * direction.vector
    return as_latent(out, base.size, name="edited latent")


# ------------------------------------------------------------------ slider directions
def principal_directions(generator, k: int = 5, return_variance: bool = False):
    """The top-``k`` principal directions of the generator's first-layer activations, pulled
    back to z (see the module docstring): float32 ``(k, z_dim)``, orthonormal rows.

    Signs are fixed so each direction's largest-magnitude entry is positive (deterministic).
    Generators whose first layer is not a ConvTranspose3d (+ BatchNorm) get the z axes.
    With ``return_variance`` also the activation variance along each, float64 ``(k,)`` (the
    eigenvalues of ``M Mᵀ``; all ones for the z-axes fallback).
    """
    import torch
    from torch import nn

    net = getattr(generator, "net", None)
    first = net[0] if net is not None and len(net) else None
    z_dim = int(generator.config.z_dim)
    k = max(1, min(int(k), z_dim))
    if not isinstance(first, nn.ConvTranspose3d):
        axes = np.eye(z_dim, dtype=np.float32)[:k]
        return (axes, np.ones(k)) if return_variance else axes
    with torch.no_grad():
        weight = first.weight.detach().double()  # (z_dim, C, 4, 4, 4)
        m = weight.reshape(z_dim, weight.shape[1], -1)  # (z_dim, C, 64)
        norm = net[1] if len(net) > 1 else None
        if isinstance(norm, nn.BatchNorm3d) and norm.running_var is not None:
            scale = norm.weight.detach().double() if norm.affine else torch.ones(m.shape[1], dtype=torch.float64)
            scale = scale / torch.sqrt(norm.running_var.double() + norm.eps)  # (C,)
            m = m * scale[None, :, None]
        m = m.reshape(z_dim, -1)
        gram = (m @ m.T).numpy()  # (z_dim, z_dim) = M M^T
    # numpy's eigh: torch's first LAPACK call costs ~1 s of lazy initialisation.
    evals, evecs = np.linalg.eigh(gram)  # ascending eigenvalues
    dirs = evecs[:, ::-1][:, :k].T.copy()  # (k, z_dim), largest variance first
    peak = np.argmax(np.abs(dirs), axis=1)
    dirs *= np.sign(dirs[np.arange(k), peak])[:, None]
    if return_variance:
        return dirs.astype(np.float32), np.maximum(evals[::-1][:k], 0.0)
    return dirs.astype(np.float32)


# ------------------------------------------------------------------ shareable JSON
def latent_to_json(z: Any, **meta: Any) -> str:
    """A latent (+ optional metadata such as resolution, checkpoint, level) -> JSON text.

    Floats are written with 9 significant digits, enough to round-trip float32 exactly."""
    z = as_latent(z)
    doc = {"format": LATENT_FORMAT, "version": LATENT_VERSION, "z_dim": int(z.size)}
    doc.update({k: v for k, v in meta.items() if v is not None})
    doc["z"] = [float(f"{v:.9g}") for v in z.tolist()]
    return json.dumps(doc, indent=1)


def _reject_constant(token: str):
    raise LatentError(f"latent JSON contains {token}; only finite numbers are allowed")


def latent_from_json(text: str | bytes, z_dim: int | None = None) -> tuple[np.ndarray, dict]:
    """JSON text from `latent_to_json` (or a bare list of numbers) -> (float32 ``(z_dim,)``,
    metadata dict). Every problem is a LatentError with a readable reason."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_JSON_BYTES:
            raise LatentError(f"latent file is {len(text):,} bytes; a latent JSON is a few KB")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise LatentError("latent file is not UTF-8 text (is it a JSON file?)") from err
    if len(text) > MAX_JSON_BYTES:
        raise LatentError(f"latent text is {len(text):,} characters; a latent JSON is a few KB")
    if not text.strip():
        raise LatentError("latent JSON is empty")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise LatentError(f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from err
    meta: dict = {}
    if isinstance(doc, dict):
        if "z" not in doc:
            raise LatentError("latent JSON has no \"z\" list")
        fmt = doc.get("format", LATENT_FORMAT)
        if fmt != LATENT_FORMAT:
            raise LatentError(f"unknown latent format {fmt!r} (expected {LATENT_FORMAT!r})")
        meta = {k: v for k, v in doc.items() if k not in ("z", "format", "version")}
        z = doc["z"]
        declared = doc.get("z_dim")
        if declared is not None and isinstance(z, list) and declared != len(z):
            raise LatentError(f"latent JSON says z_dim {declared} but holds {len(z)} numbers")
    else:
        z = doc
    if not isinstance(z, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in z):
        raise LatentError("\"z\" must be a list of numbers")
    return as_latent(z, z_dim, name="z"), meta


def save_latent(path: str | Path, z: Any, **meta: Any) -> Path:
    """Write `latent_to_json` to ``path`` (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(latent_to_json(z, **meta) + "\n", encoding="utf-8")
    return path


def load_latent(path: str | Path, z_dim: int | None = None) -> tuple[np.ndarray, dict]:
    """Read a latent JSON file -> (float32 ``(z_dim,)``, metadata)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise LatentError(f"{path.name} is {size:,} bytes; a latent JSON is a few KB")
        data = path.read_bytes()
    except OSError as err:
        raise LatentError(f"cannot read {path.name}: {err.strerror or err}") from err
    return latent_from_json(data, z_dim)
