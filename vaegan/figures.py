"""Plotly previews of meshes and voxel grids for the UI.

This module owns the interactive 3-D figures: `mesh_figure` (a marching-cubes mesh),
`voxel_figure` (the grid drawn as cubes) and `empty_figure` (a placeholder message). Both
3-D figures are drawn in the project's Z-up unit-cube frame (see `vaegan.meshing`) and share
one `_layout()`, so the camera, ranges and background match and the camera survives updates.
"""

from __future__ import annotations

import functools

import numpy as np
import plotly.graph_objects as go
import trimesh
from _plotly_utils.utils import to_typed_array_spec
from plotly.io.json import to_json_plotly

from .meshing import check_level
from .voxels import check_grid

__all__ = ["DEFAULT_COLOR", "mesh_figure", "mesh_figure_json", "voxel_figure", "empty_figure"]

DEFAULT_COLOR = "#c8875a"  # warm wood
_UIREVISION = "chair-studio"
# Front three-quarter view: the chair's front faces -x, so the eye sits at -x, a bit to the
# side (-y) and above.
_CAMERA = dict(
    eye=dict(x=-1.55, y=-1.15, z=0.85),
    center=dict(x=0.0, y=0.0, z=-0.05),
    up=dict(x=0.0, y=0.0, z=1.0),
)
_LIGHTING = dict(ambient=0.45, diffuse=0.85, specular=0.15, roughness=0.6, fresnel=0.1)
_LIGHT_POSITION = dict(x=-1000.0, y=-600.0, z=1500.0)
_HIDDEN_AXIS = dict(
    visible=False, range=[-0.5, 0.5], showbackground=False, showgrid=False, zeroline=False
)

# Unit-cube corner offsets and, per face direction (axis, side), the 4 corners of the quad
# ordered counter-clockwise seen from outside.
_QUADS: dict[tuple[int, int], np.ndarray] = {
    (0, 0): np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]]),
    (0, 1): np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]]),
    (1, 0): np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]]),
    (1, 1): np.array([[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]]),
    (2, 0): np.array([[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]]),
    (2, 1): np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]),
}


def _layout(title: str | None = None) -> go.Layout:
    """Shared layout: fixed unit-cube scene, hidden axes, light background, fixed camera."""
    return go.Layout(
        title=dict(text=title, x=0.5, font=dict(size=14)) if title else None,
        scene=dict(
            xaxis=_HIDDEN_AXIS,
            yaxis=_HIDDEN_AXIS,
            zaxis=_HIDDEN_AXIS,
            aspectmode="cube",
            camera=_CAMERA,
            bgcolor="rgba(0,0,0,0)",
            uirevision=_UIREVISION,
        ),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        margin=dict(l=0, r=0, t=30 if title else 0, b=0),
        showlegend=False,
        uirevision=_UIREVISION,
    )


def _mesh3d(vertices: np.ndarray, faces: np.ndarray, color: str, name: str) -> go.Mesh3d:
    """One flat-shaded Mesh3d trace from ``(V, 3)`` vertices and ``(F, 3)`` faces."""
    return go.Mesh3d(
        x=vertices[:, 0],
        y=vertices[:, 1],
        z=vertices[:, 2],
        i=faces[:, 0],
        j=faces[:, 1],
        k=faces[:, 2],
        color=color,
        flatshading=True,
        lighting=_LIGHTING,
        lightposition=_LIGHT_POSITION,
        hoverinfo="skip",
        name=name,
    )


def mesh_figure(
    mesh: trimesh.Trimesh, color: str = DEFAULT_COLOR, title: str | None = None
) -> go.Figure:
    """Interactive preview of a mesh in our Z-up unit-cube frame."""
    vertices = np.asarray(mesh.vertices, dtype=np.float32)  # (V, 3)
    faces = np.asarray(mesh.faces, dtype=np.int64)  # (F, 3)
    return go.Figure(data=[_mesh3d(vertices, faces, color, "mesh")], layout=_layout(title))


@functools.lru_cache(maxsize=16)
def _mesh_figure_frame(color: str, title: str | None) -> dict:
    """`mesh_figure` of a one-triangle mesh as a dict: the validated layout + trace style."""
    tiny = trimesh.Trimesh([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[0, 1, 2]], process=False)
    return mesh_figure(tiny, color, title).to_dict()


def mesh_figure_json(
    mesh: trimesh.Trimesh, color: str = DEFAULT_COLOR, title: str | None = None
) -> str:
    """``mesh_figure(mesh, color, title).to_json()``, the same JSON, about 15x faster.

    For latency-critical UI updates (the app's sliders): plotly validates every property of
    a new figure, which costs far more than the data. Here the layout and trace style are
    built (and validated) once per color/title by `mesh_figure` itself and cached; only the
    vertex and face arrays are swapped in, encoded exactly as plotly encodes them.
    """
    frame = _mesh_figure_frame(color, title)
    vertices = np.asarray(mesh.vertices, dtype=np.float32)  # (V, 3)
    faces = np.asarray(mesh.faces, dtype=np.int64)  # (F, 3)
    trace = dict(frame["data"][0])
    for key, column in zip("xyz", vertices.T):
        trace[key] = to_typed_array_spec(np.ascontiguousarray(column))
    for key, column in zip("ijk", faces.T):
        trace[key] = to_typed_array_spec(np.ascontiguousarray(column))
    return to_json_plotly({"data": [trace], "layout": frame["layout"]})


def _exposed_faces(occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean grid -> (vertices (V, 3) in voxel-corner units, triangles (F, 3)) of the
    faces between an occupied voxel and an empty one (or the grid border)."""
    padded = np.pad(occupied, 1)  # (R+2, R+2, R+2)
    inner = (slice(1, -1),) * 3
    corners, quads = [], []
    for (axis, side), quad in _QUADS.items():
        shift = 1 if side else -1
        neighbour = np.roll(padded, -shift, axis=axis)[inner]  # value of the voxel at +/-1
        idx = np.argwhere(occupied & ~neighbour)  # (Q, 3) voxels with this face exposed
        corners.append((idx[:, None, :] + quad[None]).reshape(-1, 3))  # (4Q, 3)
        quads.append(len(idx))
    corners_all = np.concatenate(corners)  # (4Q_total, 3) integer corners
    vertices, inverse = np.unique(corners_all, axis=0, return_inverse=True)  # (V, 3), (4Q,)
    quad_idx = inverse.reshape(-1, 4)  # (Q_total, 4)
    triangles = np.concatenate([quad_idx[:, [0, 1, 2]], quad_idx[:, [0, 2, 3]]])  # (2Q, 3)
    return vertices, triangles


def voxel_figure(vox: np.ndarray, level: float = 0.5, color: str = DEFAULT_COLOR) -> go.Figure:
    """Voxels ``>= level`` drawn as cubes: one Mesh3d holding only the exposed faces."""
    level = check_level(level)
    grid = check_grid(vox, name="vox")  # (R, R, R) float32
    occupied = grid >= level  # (R, R, R)
    if not occupied.any():
        return empty_figure(f"no voxel reaches level {level:g} (max {float(grid.max()):.2f})")
    corners, triangles = _exposed_faces(occupied)
    vertices = corners / grid.shape[0] - 0.5  # voxel corners -> unit-cube frame
    return go.Figure(data=[_mesh3d(vertices, triangles, color, "voxels")], layout=_layout())


def empty_figure(message: str) -> go.Figure:
    """A blank figure showing ``message``, for when there is nothing to draw."""
    layout = _layout()
    layout.update(
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
        annotations=[
            dict(
                text=message,
                x=0.5,
                y=0.5,
                xref="paper",
                yref="paper",
                showarrow=False,
                font=dict(size=15, color="#777777"),
            )
        ],
    )
    return go.Figure(layout=layout)
