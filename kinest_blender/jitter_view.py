# SPDX-License-Identifier: GPL-3.0-or-later
"""Jitter made visible: bone colours on the current frame, joint trails in the viewport, frame jumps.

The numbers come from ``kinest_core.jitter`` (computed by the bake, keyed as ``kinest_jitter``
on each pose bone). Bone colours are set by a ``frame_change_post`` handler from those curves;
the trail overlay is a ``SpaceView3D`` draw handler that only uploads what
:func:`trail_data` returns (tested headless: there is no viewport to draw in there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.app.handlers import persistent
from bpy.props import IntProperty

from . import takes
from .armature import motion_from_armature

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from kinest_core.jitter import TrailData


@dataclass
class _Cached:
    bake_id: int
    positions: NDArray  # (F, 22, 3) armature space
    jitter: NDArray  # (F, 22) metric unit
    frame_start: int


#: Per armature name: positions and jitter of its latest bake (rebuilt from the action when missing).
_CACHE: dict[str, _Cached] = {}


def remember(obj: bpy.types.Object, positions: NDArray, jitter: NDArray, frame_start: int) -> None:
    _CACHE[obj.name] = _Cached(
        int(obj.get(takes.BAKE_ID_PROP, 0)), np.asarray(positions), np.asarray(jitter), frame_start
    )


def forget_all() -> None:
    _CACHE.clear()


def take_data(obj: bpy.types.Object) -> _Cached | None:
    """Positions and jitter of an armature's take (from the cache, or read back from its action)."""
    if obj is None or obj.type != "ARMATURE" or "kinest_jitter_mean" not in obj:
        return None
    bake_id = int(obj.get(takes.BAKE_ID_PROP, 0))
    hit = _CACHE.get(obj.name)
    if hit is not None and hit.bake_id == bake_id:
        return hit
    try:
        motion = motion_from_armature(obj)
    except (ValueError, KeyError):
        return None
    from kinest_core.jitter import joint_jitter

    remember(
        obj, motion.joint_positions, joint_jitter(motion.joint_positions, motion.fps), int(obj[takes.FRAME_START_PROP])
    )
    return _CACHE[obj.name]


def take_armatures(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """This add-on's armatures in the scene that carry jitter."""
    return [o for o in scene.objects if takes.is_take_armature(o) and "kinest_jitter_mean" in o]


def trail_data(
    obj: bpy.types.Object, frame: int, before: int, after: int = 0, shaky: float | None = None
) -> TrailData | None:
    """What the overlay draws for one armature at a scene frame: world-space segments and colours."""
    from kinest_core.jitter import DEFAULT_SHAKY, trail_segments

    data = take_data(obj)
    if data is None:
        return None
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    return trail_segments(
        data.positions,
        data.jitter,
        frame - data.frame_start,
        before=before,
        after=after,
        shaky=DEFAULT_SHAKY if shaky is None else shaky,
        matrix=matrix,
    )


# ------------------------------------------------------------------------------------------------
# Bone colours


def jitter_at_frame(obj: bpy.types.Object, frame: float) -> dict[str, float]:
    """Each bone's keyed ``kinest_jitter`` at a frame (from the action's curves)."""
    cb = takes.object_channelbag(obj)
    if cb is None:
        return {}
    out = {}
    for pb in obj.pose.bones:
        fc = cb.fcurves.find(takes.jitter_path(pb.name))
        if fc is not None:
            out[pb.name] = float(fc.evaluate(frame))
    return out


def color_bones(scene: bpy.types.Scene, obj: bpy.types.Object, frame: float | None = None) -> int:
    """Colour the armature's bones by their jitter at ``frame`` (default: the current one); returns bones coloured."""
    from kinest_core.jitter import jitter_colors

    values = jitter_at_frame(obj, scene.frame_current if frame is None else frame)
    if not values:
        return 0
    names = list(values)
    if hasattr(obj.data, "show_bone_colors"):
        obj.data.show_bone_colors = True
    rgb = jitter_colors(np.array([values[n] for n in names]), scene.kinest.jitter_shaky)
    for name, c in zip(names, rgb, strict=True):
        col = obj.pose.bones[name].color
        col.palette = "CUSTOM"
        col.custom.normal = tuple(float(x) for x in c)
        col.custom.select = tuple(float(min(1.0, x * 0.6 + 0.4)) for x in c)
        col.custom.active = (1.0, 1.0, 1.0)
    return len(names)


def clear_bone_colors(obj: bpy.types.Object) -> None:
    for pb in obj.pose.bones:
        pb.color.palette = "DEFAULT"


@persistent
def _on_frame_change(scene: bpy.types.Scene, *_args: Any) -> None:
    settings = getattr(scene, "kinest", None)
    if settings is None or not settings.show_jitter_colors:
        return
    for obj in take_armatures(scene):
        color_bones(scene, obj)


def update_colors(self: Any, context: bpy.types.Context) -> None:
    """Property update: colour or uncolour every take at once."""
    scene = context.scene
    for obj in take_armatures(scene):
        if scene.kinest.show_jitter_colors:
            color_bones(scene, obj)
        else:
            clear_bone_colors(obj)


# ------------------------------------------------------------------------------------------------
# Trail overlay (thin: everything it draws comes from trail_data)

_DRAW_HANDLE: Any = None


def _draw_trails() -> None:
    context = bpy.context
    scene = context.scene
    settings = getattr(scene, "kinest", None)
    if settings is None or not settings.show_trails:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    shader = gpu.shader.from_builtin("POLYLINE_SMOOTH_COLOR")
    viewport = gpu.state.viewport_get()
    gpu.state.blend_set("ALPHA")
    gpu.state.depth_test_set("LESS_EQUAL")
    try:
        for obj in take_armatures(scene):
            if not obj.visible_get():
                continue
            data = trail_data(obj, scene.frame_current, settings.trail_frames, 0, settings.jitter_shaky)
            if data is None or data.num_segments == 0:
                continue
            batch = batch_for_shader(shader, "LINES", {"pos": data.points, "color": data.colors})
            shader.uniform_float("viewportSize", (viewport[2], viewport[3]))
            shader.uniform_float("lineWidth", 2.5)
            batch.draw(shader)
    finally:
        gpu.state.blend_set("NONE")
        gpu.state.depth_test_set("NONE")


# ------------------------------------------------------------------------------------------------
# Operators


class KINEST_OT_jump_to_frame(bpy.types.Operator):
    """Jump to this frame (one of the take's shakiest moments)"""

    bl_idname = "kinest.jump_to_frame"
    bl_label = "Jump to Frame"
    bl_options = {"INTERNAL"}

    frame: IntProperty(name="Frame", default=1)

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.frame_set(self.frame)
        return {"FINISHED"}


@persistent
def _on_load_post(*_args: Any) -> None:
    forget_all()


classes = (KINEST_OT_jump_to_frame,)


def register() -> None:
    global _DRAW_HANDLE
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.frame_change_post.append(_on_frame_change)
    bpy.app.handlers.load_post.append(_on_load_post)
    _DRAW_HANDLE = bpy.types.SpaceView3D.draw_handler_add(_draw_trails, (), "WINDOW", "POST_VIEW")


def unregister() -> None:
    global _DRAW_HANDLE
    if _DRAW_HANDLE is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_DRAW_HANDLE, "WINDOW")
        _DRAW_HANDLE = None
    for handlers, fn in (
        (bpy.app.handlers.frame_change_post, _on_frame_change),
        (bpy.app.handlers.load_post, _on_load_post),
    ):
        if fn in handlers:
            handlers.remove(fn)
    forget_all()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
