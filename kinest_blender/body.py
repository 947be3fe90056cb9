# SPDX-License-Identifier: GPL-3.0-or-later
"""A low-poly body skinned to the take's armature, so the motion reads as a person.

Generated from the armature's own rest layout (no licensed data): one closed, tapered
eight-sided capsule per bone, each vertex in the vertex group named after its bone (weight 1:
a rigid "wooden mannequin", the honest look for a 22-joint skeleton), an Armature modifier
and the armature as parent. Rebuilt on every bake, so it follows the body height and bone
names of the take. When the user points to their own SMPL model file (licence-gated, never
bundled), the SMPL template mesh with its own skinning weights is used instead, via ``smplx``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import bpy
import numpy as np

from .takes import COLLECTION_NAME, ROLE_PROP, TAKE_PROP

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
        if j == 0:  # the pelvis bone points up from the pelvis joint: reach down to the hips too
            h = h - (t - h) / max(float(np.linalg.norm(t - h)), 1e-9) * 0.09 * scale
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


def smpl_geometry(
    model_path: str, heads: NDArray
) -> tuple[NDArray[np.float64], list[tuple[int, ...]], NDArray[np.float64]]:
    """The user's own SMPL / SMPL-H mesh (via ``smplx``) fitted onto this armature's rest joints.

    Returns vertices (V, 3), triangles and skinning weights (V, 22) (hand joints of SMPL /
    SMPL-H merged into the wrists). The template (Y up) is turned Z up, scaled and moved onto
    ``heads``, then each vertex moves with its own joints by its weights, so it sits on this
    skeleton's (symmetrised, height-scaled) joints exactly where the bones bend.
    """
    if not os.path.exists(model_path):
        raise FileNotFoundError(
            f"SMPL model not found at {model_path}: pick the SMPL_NEUTRAL.pkl (or SMPL-H .npz) you downloaded "
            "from smpl.is.tue.mpg.de, or clear the SMPL Model field for the built-in body"
        )
    try:
        import smplx
    except ImportError as exc:
        raise ImportError(
            "the SMPL body needs the 'smplx' package, which this Blender's Python lacks; "
            "clear the SMPL Model field to use the built-in body"
        ) from exc
    name = os.path.basename(model_path).lower()
    kind = "smplh" if "smplh" in name or "smpl_h" in name else "smpl"
    ext = "npz" if name.endswith(".npz") else "pkl"
    try:
        if os.path.isdir(model_path):  # smplx's folder layout: <folder>/smpl/SMPL_NEUTRAL.pkl
            model = smplx.create(model_path, model_type=kind, gender="neutral", ext=ext)
        elif kind == "smplh":  # by class, so any file name works (e.g. basicModel_neutral_lbs_10_207_0_v1.0.0.pkl)
            model = smplx.SMPLH(model_path, ext=ext)
        else:
            model = smplx.SMPL(model_path)
    except Exception as exc:  # smplx raises many kinds for a wrong file
        raise ValueError(
            f"{model_path} is not an SMPL model file smplx can read ({type(exc).__name__}: {exc})"
        ) from exc
    v = model.v_template.detach().cpu().numpy().astype(np.float64)
    joints = model.J_regressor.detach().cpu().numpy().astype(np.float64) @ v
    weights_all = model.lbs_weights.detach().cpu().numpy().astype(np.float64)
    parents = [int(p) for p in model.parents.detach().cpu().numpy()]
    faces = [tuple(int(i) for i in f) for f in np.asarray(model.faces, dtype=np.int64)]

    def zup(p: NDArray) -> NDArray:
        return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)

    v, joints = zup(v), zup(joints)
    n = len(heads)
    weights = np.zeros((v.shape[0], n))
    for j in range(weights_all.shape[1]):
        k = j
        while k >= n:  # hand and finger joints go to their wrist
            k = parents[k]
        weights[:, k] += weights_all[:, j]
    src = joints[:n]
    dst = np.asarray(heads, dtype=np.float64)
    scale = float(
        np.linalg.norm(dst - dst.mean(0), axis=1).sum() / max(np.linalg.norm(src - src.mean(0), axis=1).sum(), 1e-9)
    )
    moved = (v - src.mean(0)) * scale + dst.mean(0)
    joint_shift = dst - ((src - src.mean(0)) * scale + dst.mean(0))  # (22, 3): what is left per joint
    moved += weights @ joint_shift
    return moved, faces, weights


def ensure_body(
    context: bpy.types.Context, armature: bpy.types.Object, take: str, heads: NDArray, tails: NDArray,
    names: Sequence[str], scale: float, smpl_model: str = "",
) -> bpy.types.Object:  # fmt: skip
    """Build (or rebuild in place) the take's body mesh, parented and skinned to ``armature``.

    ``smpl_model``: the user's SMPL model file for the SMPL mesh; empty: the built-in capsules.
    """
    if smpl_model:
        verts, faces, weights = smpl_geometry(smpl_model, heads)
    else:
        verts, faces, groups = body_geometry(heads, tails, scale)
        weights = np.zeros((len(verts), len(names)))
        weights[np.arange(len(verts)), groups] = 1.0
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
        vg = obj.vertex_groups.new(name=name)
        col = weights[:, j]
        for w in np.unique(np.round(col[col > 1e-4], 4)):  # one call per distinct weight, not per vertex
            vg.add(np.flatnonzero(np.isclose(np.round(col, 4), w)).tolist(), float(w), "REPLACE")
    obj["kinest_body_source"] = smpl_model or "procedural"
    if smpl_model:
        mesh.shade_smooth()
    obj.parent = armature
    obj.matrix_parent_inverse.identity()
    obj.matrix_local.identity()
    mod = next((m for m in obj.modifiers if m.type == "ARMATURE"), None) or obj.modifiers.new("Armature", "ARMATURE")
    mod.object = armature
    mod.use_vertex_groups = True
    obj.hide_select = False
    armature.show_in_front = True  # the jitter-coloured bones stay visible inside the body
    return obj
