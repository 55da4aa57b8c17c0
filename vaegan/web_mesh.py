"""The compact mesh payload that the app's WebGL viewer (web/chair_viewer.js) draws.

This module owns:
  * the voxel-cube surface of a grid (the "Voxels" view: one quad per exposed voxel face),
  * packing a mesh for the browser: Y-up vertices (`meshing.to_model3d_frame`, the one frame
    conversion) as little-endian float32 and triangle indices as uint16 (uint32 past 65,535
    vertices), each base64 text inside a JSON-able dict.

Why this and not a GLB file per update: the viewer keeps one WebGL context and swaps its
vertex buffers in place, so it wants raw arrays it can hand to ``gl.bufferData`` without a
file download or a glTF parser. A 32^3 chair is 60-120 KB of payload (`mesh_payload`).

Payload (a dict, what the viewer's ``props.value`` holds)::

    {"positions": b64 float32 (V, 3), "indices": b64 uint16|uint32 (F, 3),
     "index_type": "uint16" | "uint32", "vertex_count": V, "face_count": F,
     "flat": bool (shade faces flat: the voxel view), "label": str}

or ``{"message": str, "label": str}`` when there is nothing to draw (the viewer keeps its
last chair and shows the message over it).
"""

from __future__ import annotations

import base64

import numpy as np
import trimesh

from .errors import EmptyShapeError
from .meshing import check_level, to_model3d_frame
from .voxels import check_grid

__all__ = ["voxel_cube_mesh", "mesh_payload", "message_payload", "decode_payload"]

UINT16_LIMIT = 65_536  # vertex count up to which indices fit in uint16

# Corner offsets (4, 3) of each voxel face, keyed by (axis, side), counter-clockwise seen from
# outside, so the triangles (0, 1, 2), (0, 2, 3) have outward normals.
_QUADS = {
    (0, 0): np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]]),
    (0, 1): np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]]),
    (1, 0): np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]]),
    (1, 1): np.array([[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]]),
    (2, 0): np.array([[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]]),
    (2, 1): np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]),
}


def voxel_cube_mesh(vox: np.ndarray, level: float = 0.5) -> trimesh.Trimesh:
    """Voxels ``>= level`` as cubes: the faces between an occupied voxel and an empty one,
    in the unit-cube Z-up frame of `meshing.voxels_to_mesh`. EmptyShapeError if none."""
    level = check_level(level)
    grid = check_grid(vox, name="vox")  # (R, R, R) float32
    occupied = grid >= level  # (R, R, R) bool
    if not occupied.any():
        raise EmptyShapeError(f"nothing to show: no voxel reaches iso-level {level:g} "
                              f"(max {float(grid.max()):.2f}); lower the level")
    padded = np.pad(occupied, 1)  # (R+2, R+2, R+2)
    inner = (slice(1, -1),) * 3
    corners, counts = [], []
    for (axis, side), quad in _QUADS.items():
        neighbour = np.roll(padded, -1 if side else 1, axis=axis)[inner]  # the voxel at +/-1
        idx = np.argwhere(occupied & ~neighbour)  # (Q, 3) voxels with this face exposed
        corners.append((idx[:, None, :] + quad[None]).reshape(-1, 3))  # (4Q, 3)
        counts.append(len(idx))
    vertices, inverse = np.unique(np.concatenate(corners), axis=0, return_inverse=True)  # (V, 3), (4Q,)
    quads = inverse.reshape(-1, 4)  # (Q_total, 4)
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])  # (2 Q_total, 3)
    return trimesh.Trimesh(vertices / grid.shape[0] - 0.5, faces, process=False)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def mesh_payload(mesh: trimesh.Trimesh, label: str = "", flat: bool = False) -> dict:
    """A Z-up unit-cube mesh -> the viewer's payload (Y-up, see the module docstring)."""
    if mesh.is_empty or len(mesh.faces) == 0:
        raise EmptyShapeError("nothing to show: the mesh has no faces")
    frame = to_model3d_frame(mesh)
    positions = np.asarray(frame.vertices, dtype="<f4")  # (V, 3) Y-up
    index_type = "uint16" if len(positions) <= UINT16_LIMIT else "uint32"
    indices = np.asarray(frame.faces, dtype="<u2" if index_type == "uint16" else "<u4")  # (F, 3)
    return {"positions": _b64(positions), "indices": _b64(indices), "index_type": index_type,
            "vertex_count": int(len(positions)), "face_count": int(len(indices)), "flat": bool(flat),
            "label": str(label)}


def message_payload(message: str, label: str = "") -> dict:
    """Nothing to draw (e.g. empty at this iso-level): the viewer keeps its chair and says why."""
    return {"message": str(message), "label": str(label)}


def decode_payload(payload: dict) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `mesh_payload`: -> (positions float32 (V, 3) Y-up, faces int64 (F, 3)).
    For tests and tools; the browser does the same in JavaScript."""
    dtype = {"uint16": "<u2", "uint32": "<u4"}[payload["index_type"]]
    positions = np.frombuffer(base64.b64decode(payload["positions"]), dtype="<f4").reshape(-1, 3)
    faces = np.frombuffer(base64.b64decode(payload["indices"]), dtype=dtype).reshape(-1, 3)
    return positions, faces.astype(np.int64)
