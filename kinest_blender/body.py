# SPDX-License-Identifier: GPL-3.0-or-later
"""A low-poly body skinned to the take's armature, so the motion reads as a person.

Generated from the armature's own rest layout (no licensed data): one closed, tapered
eight-sided capsule per bone, each vertex in the vertex group named after its bone (weight 1:
a rigid "wooden mannequin", the honest look for a 22-joint skeleton), an Armature modifier
and the armature as parent. Rebuilt on every bake, so it follows the body height and bone
names of the take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import bpy
import numpy as np

from .bake import COLLECTION_NAME, ROLE_PROP, TAKE_PROP

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Capsule radius per bone (m, for a 1.75 m body), in SMPL-22 joint order.
BONE_RADII = (
    0.115, 0.075, 0.075, 0.105, 0.055, 0.055, 0.115, 0.045, 0.045, 0.125, 0.035, 0.035,
    0.050, 0.050, 0.050, 0.085, 0.048, 0.048, 0.040, 0.040, 0.038, 0.038,
)  # fmt: skip
#: Tail radius relative to the head radius (limbs taper towards the hands and feet).
BONE_TAPER = (
    1.0, 0.75, 0.75, 1.05, 0.8, 0.8, 1.05, 0.9, 0.9, 0.8, 0.8, 0.8,
    0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.8, 0.8, 0.6, 0.6,
)  # fmt: skip
SIDES = 8
BODY_COLOR = (0.62, 0.66, 0.72, 1.0)


def _frame(direction: NDArray) -> tuple[NDArray, NDArray]:
    """Two unit vectors perpendicular to ``direction`` (and to each other)."""
    ref = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(direction, ref)
    u /= np.linalg.norm(u)
    return u, np.cross(direction, u)


def body_geometry(
    heads: NDArray, tails: NDArray, scale: float = 1.0, sides: int = SIDES
) -> tuple[NDArray[np.float64], list[tuple[int, ...]], NDArray[np.int64]]:
    """Vertices (N, 3), faces (quads and triangles) and the bone index of each vertex.

    Each capsule: a pole slightly before the bone's head, three rings (near the head, the
    middle, near the tail) and a pole slightly past the tail, so neighbouring parts overlap
    at the joints and bending does not open gaps.
    """
    verts: list[NDArray] = []
    faces: list[tuple[int, ...]] = []
    groups: list[int] = []
    angles = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    for j, (h, t) in enumerate(zip(np.asarray(heads, float), np.asarray(tails, float), strict=True)):
        d = t - h
        length = float(np.linalg.norm(d))
        if length < 1e-6:
            continue
        d = d / length
        u, v = _frame(d)
        r = BONE_RADII[j] * scale
        ring_t = (0.12, 0.5, 0.88)
        ring_r = (r * 0.9, r, r * BONE_TAPER[j])
        base = sum(len(x) for x in verts)
        pts = [h - d * min(0.5 * r, 0.25 * length)]
        for tt, rr in zip(ring_t, ring_r, strict=True):
            c = h + d * (tt * length)
            pts.extend(c + rr * (np.cos(a) * u + np.sin(a) * v) for a in angles)
        pts.append(t + d * min(0.4 * ring_r[2], 0.25 * length))
        verts.append(np.array(pts))
        groups.extend([j] * len(pts))
        first, last = base, base + 1 + 3 * sides

        def ring(k: int, i: int, base: int = base) -> int:
            return base + 1 + k * sides + (i % sides)

        for i in range(sides):
            faces.append((first, ring(0, i + 1), ring(0, i)))
            for k in range(2):
                faces.append((ring(k, i), ring(k, i + 1), ring(k + 1, i + 1), ring(k + 1, i)))
            faces.append((ring(2, i), ring(2, i + 1), last))
    if not verts:
        return np.zeros((0, 3)), [], np.zeros(0, dtype=np.int64)
    return np.concatenate(verts), faces, np.asarray(groups, dtype=np.int64)


def ensure_body(
    context: bpy.types.Context, armature: bpy.types.Object, take: str, heads: NDArray, tails: NDArray,
    names: Sequence[str], scale: float,
) -> bpy.types.Object:  # fmt: skip
    """Build (or rebuild in place) the take's body mesh, parented and skinned to ``armature``."""
    verts, faces, groups = body_geometry(heads, tails, scale)
    mesh = bpy.data.meshes.new(f"KineST_{take}_body")
    mesh.from_pydata([tuple(p) for p in verts], [], faces)
    mesh.validate()
    mesh.update()
    mat = bpy.data.materials.get("KineST_body") or bpy.data.materials.new("KineST_body")
    mat.diffuse_color = BODY_COLOR
    mesh.materials.append(mat)
    obj = next(
        (o for o in bpy.data.objects if o.get(TAKE_PROP) == take and o.get(ROLE_PROP) == "body" and o.type == "MESH"),
        None,
    )
    if obj is None:
        obj = bpy.data.objects.new(f"KineST_{take}_body", mesh)
        obj[TAKE_PROP] = take
        obj[ROLE_PROP] = "body"
        coll = bpy.data.collections.get(COLLECTION_NAME)
        (coll or context.scene.collection).objects.link(obj)
    else:
        old = obj.data
        obj.data = mesh
        if old.users == 0:
            bpy.data.meshes.remove(old)
        obj.vertex_groups.clear()
        if not obj.users_collection:
            (bpy.data.collections.get(COLLECTION_NAME) or context.scene.collection).objects.link(obj)
    for j, name in enumerate(names):
        idx = np.flatnonzero(groups == j).tolist()
        vg = obj.vertex_groups.new(name=name)
        if idx:
            vg.add(idx, 1.0, "REPLACE")
    obj.parent = armature
    obj.matrix_parent_inverse.identity()
    obj.matrix_local.identity()
    mod = next((m for m in obj.modifiers if m.type == "ARMATURE"), None) or obj.modifiers.new("Armature", "ARMATURE")
    mod.object = armature
    mod.use_vertex_groups = True
    obj.hide_select = False
    return obj
