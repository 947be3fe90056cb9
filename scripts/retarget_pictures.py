# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the README's retargeting picture: the KineST take and two real characters on the same frames.

    python scripts/retarget_pictures.py --rigs DIR [--out docs/img/retarget.png] [--checkpoint CKPT]

``DIR`` holds the characters (by default the Mixamo-style ``quaternius_animated_human/Animated
Human.fbx`` and the A-pose, Rigify-metarig-named ``ojg_male_base_mesh/male_base_mesh.glb``;
``--character`` picks others, paths relative to ``DIR``). Like ``render_pictures.py`` it builds
the extension (core-only zip), installs it into a throw-away headless Blender, imports the
recording (default: the bundled ``examples/xror_sample1_cut.bsor``), reconstructs it with the
checkpoint (default: the shipped one), imports each character, plays the take on it with
``bpy.ops.kinest.retarget``, and renders a few frames with Workbench: on each frame the take's
mannequin and the characters stand side by side (each moved sideways by its object's location
only; the pose is the operator's), seen from the front of the take's pelvis. The frames are
tiled into one PNG with matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from render_pictures import ROOT, default_checkpoint, reconstructed_take, setup_scene

DEFAULT_CHARACTERS = ("quaternius_animated_human/Animated Human.fbx", "ojg_male_base_mesh/male_base_mesh.glb")
#: Captions of the default characters (others are named by their file).
LABELS = {
    DEFAULT_CHARACTERS[0]: "Quaternius Animated Human (Mixamo-style FBX, T rest)",
    DEFAULT_CHARACTERS[1]: "OJG male base mesh (Rigify metarig names, A rest)",
}
#: Workbench colours: the take's mannequin, then each character in turn.
COLOURS = ((0.36, 0.62, 0.66), (0.86, 0.62, 0.42), (0.62, 0.56, 0.78), (0.55, 0.72, 0.45))


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rigs", required=True, help="folder with the characters (FBX or glTF)")
    ap.add_argument(
        "--character",
        action="append",
        default=None,
        help=f"a character file relative to --rigs (repeatable; default: {', '.join(DEFAULT_CHARACTERS)})",
    )
    ap.add_argument("--input", default=str(ROOT / "examples" / "xror_sample1_cut.bsor"))
    ap.add_argument("--checkpoint", default="", help="KineST .safetensors (default: the shipped checkpoint)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "retarget.png"))
    ap.add_argument("--frames", default="", help="scene frames to render, comma-separated (default: 4 spread out)")
    ap.add_argument("--size", default="600x300", help="render size of one frame, WxH")
    ap.add_argument("--spacing", type=float, default=1.25, help="metres between the bodies")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    return ap.parse_args(argv)


def import_character(bpy: Any, path: Path) -> tuple[Any, list[Any]]:
    """The character's armature and the meshes it deforms (one file, imported with default options)."""
    if not path.is_file():
        raise RuntimeError(f"{path}: no such character file; check --rigs and --character")
    before = set(bpy.data.objects)
    if path.suffix.lower() == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    elif path.suffix.lower() in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:
        raise RuntimeError(f"{path}: not an FBX or glTF file; pass a .fbx, .glb or .gltf character")
    new = [o for o in bpy.data.objects if o not in before]
    arms = [o for o in new if o.type == "ARMATURE"]
    if len(arms) != 1:
        raise RuntimeError(f"{path}: brought {len(arms)} armatures, expected one character")
    arm = arms[0]
    skinned = [
        o for o in new if o.type == "MESH" and any(m.type == "ARMATURE" and m.object == arm for m in o.modifiers)
    ]
    for o in new:
        if o.type != "ARMATURE" and o not in skinned:
            o.hide_render = True  # props and helpers the file carries beside the character
    return arm, skinned


def flat_colour(bpy: Any, meshes: list[Any], name: str, colour: tuple[float, float, float]) -> None:
    """One plain material on every mesh, so Workbench shows each body in its own colour."""
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = (*colour, 1.0)
    mat.roughness = 0.6
    for m in meshes:
        m.data.materials.clear()
        m.data.materials.append(mat)
        m.data.polygons.foreach_set("material_index", [0] * len(m.data.polygons))


def rest_extent(meshes: list[Any]) -> tuple[float, float]:
    """Lowest and highest vertex of the meshes as modelled (their bind pose), in world units."""
    import numpy as np

    low, high = math.inf, -math.inf
    for m in meshes:
        co = np.empty(len(m.data.vertices) * 3, dtype=np.float64)
        m.data.vertices.foreach_get("co", co)
        mw = np.array(m.matrix_world)
        z = co.reshape(-1, 3) @ mw[2, :3] + mw[2, 3]
        low, high = min(low, float(z.min())), max(high, float(z.max()))
    return low, high


def fit_to_height(bpy: Any, arm: Any, meshes: list[Any], tall: float) -> float:
    """Scale the character (its armature object) to ``tall`` and stand it on the floor; returns the factor.

    Characters come in their authors' units and sizes (a 5 m giant, a rig whose root sits 1 m
    under the floor); the picture compares poses, so each is shown at the take's height.
    """
    bpy.context.view_layer.update()
    low, high = rest_extent(meshes)
    factor = tall / (high - low)
    arm.scale = arm.scale * factor
    bpy.context.view_layer.update()
    arm.location.z -= rest_extent(meshes)[0]
    bpy.context.view_layer.update()
    return factor


def world_head(obj: Any, bone: str) -> Any:
    return obj.matrix_world @ obj.pose.bones[bone].head


def stand_beside(bpy: Any, arm: Any, bone: str, goal: Any) -> None:
    """Move the armature object so the head of ``bone`` is at ``goal`` horizontally (its height kept)."""
    head = world_head(arm, bone)
    arm.location.x += goal.x - head.x
    arm.location.y += goal.y - head.y
    bpy.context.view_layer.update()


def tile(out: Path, frames: list[Path], labels: list[str], title: str, names: list[str]) -> None:
    """Two frames per row, a caption under each, the bodies named once at the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    imgs = [plt.imread(str(p)) for p in frames]
    h, w = imgs[0].shape[:2]
    cols = 2 if len(imgs) > 2 else len(imgs)
    rows = math.ceil(len(imgs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * w / 100, rows * (h / 100 + 0.25) + 0.5), squeeze=False)
    fig.suptitle(f"{title}\n{'   |   '.join(names)}  (left to right)", fontsize=9)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < len(imgs):
            ax.imshow(imgs[k])
            ax.set_title(labels[k], fontsize=8, pad=2)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100)
    plt.close(fig)
    # Flat Workbench shading and text: a 256-colour palette keeps the README's picture small.
    Image.open(buf).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE).save(out, optimize=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    tmp = tempfile.mkdtemp(prefix="kinest-retarget-pictures-")
    try:
        return make_picture(args, tmp)
    except (RuntimeError, subprocess.CalledProcessError) as exc:  # operator reports arrive as RuntimeError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_picture(args: argparse.Namespace, tmp: str) -> int:
    """Everything :func:`main` does, with a temporary folder for Blender's user files, the zip and frames."""
    checkpoint = os.path.abspath(args.checkpoint) if args.checkpoint else default_checkpoint()
    rigs = Path(args.rigs).resolve()
    characters = [rigs / c for c in (args.character or DEFAULT_CHARACTERS)]
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h = (int(x) for x in args.size.lower().split("x"))
    t0 = time.perf_counter()
    bpy = reconstructed_take(args.input, checkpoint, args.device, tmp, "retarget pictures")
    from mathutils import Vector

    armature = importlib.import_module("bl_ext.user_default.kinest.kinest_blender.armature")
    takes = importlib.import_module("bl_ext.user_default.kinest.kinest_blender.takes")
    take = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.get(takes.ROLE_PROP) == "armature")
    body = [o for o in bpy.data.objects if o.get(takes.ROLE_PROP) == "body"]
    motion = armature.motion_from_armature(take)

    cam = setup_scene(bpy, (w, h))
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = args.spacing * (len(characters) + 1) * 1.2
    low, high = rest_extent(body)
    tall = high - low
    flat_colour(bpy, body, "mannequin", COLOURS[0])
    bodies, names = [], ["KineST take (the add-on's mannequin)"]
    for k, path in enumerate(characters):
        arm, meshes = import_character(bpy, path)
        flat_colour(bpy, meshes, f"character_{k}", COLOURS[(k + 1) % len(COLOURS)])
        t1 = time.perf_counter()
        if bpy.ops.kinest.retarget(target=arm.name, source=take.name) != {"FINISHED"}:
            raise RuntimeError(f"{path.name}: kinest.retarget did not finish")
        scale = fit_to_height(bpy, arm, meshes, tall)  # after the retarget: the file's own action may key the object
        hips = json_map(arm)["pelvis"]
        print(
            f"[retarget pictures] {path.name}: retargeted in {time.perf_counter() - t1:.1f} s "
            f"(hips: {hips}; shown at {scale:.2f} x its size)"
        )
        bodies.append((arm, hips))
        rel = path.relative_to(rigs).as_posix() if path.is_relative_to(rigs) else path.name
        names.append(LABELS.get(rel, path.stem))

    scene = bpy.context.scene
    n = motion.num_frames
    start = int(take.get(takes.FRAME_START_PROP, scene.frame_start))
    if args.frames:
        picks = [int(x) for x in args.frames.split(",")]
    else:
        picks = [start + int(round(n * (k + 0.5) / 4)) for k in range(4)]
    rendered, labels = [], []
    for frame in picks:
        f = frame - start
        if not 0 <= f < n:
            raise RuntimeError(
                f"frame {frame} is outside the take ({start}..{start + n - 1}); pick others with --frames"
            )
        scene.frame_set(frame)
        pelvis = Vector(float(x) for x in motion.joint_positions[f, 0])
        yaw = pelvis_yaw(motion.local_rotations[f, 0])
        forward = Vector((math.cos(yaw), math.sin(yaw), 0.0))
        right = Vector((-forward.y, forward.x, 0.0))  # the camera's right when it looks back at the body
        for k, (arm, hips) in enumerate(bodies):
            stand_beside(bpy, arm, hips, pelvis + right * (args.spacing * (k + 1)))
        centre = pelvis + right * (args.spacing * len(bodies) / 2)
        target = Vector((centre.x, centre.y, 1.0))
        cam.location = target + forward * 6.0 + Vector((0.0, 0.0, 0.6))
        cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
        path = Path(tmp) / f"frame_{frame:04d}.png"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        rendered.append(path)
        labels.append(f"{f / motion.fps:.1f} s (frame {frame})")
    tile(
        out,
        rendered,
        labels,
        f"{Path(args.input).name} reconstructed by KineST and played on {len(bodies)} characters with kinest.retarget",
        names,
    )
    print(f"[retarget pictures] wrote {out} ({out.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - t0:.0f} s")
    return 0


def json_map(arm: Any) -> dict[str, str]:
    """The mapping the operator stored on the character (``{smpl_joint: bone}``)."""
    return json.loads(arm["kinest_retarget_map"])


def pelvis_yaw(pelvis_quat: Any) -> float:
    """The heading the take's pelvis faces (the rest pose faces -Y), in radians from +X."""
    from kinest_core import rotations as rot

    forward = rot.quat_to_matrix(pelvis_quat) @ [0.0, -1.0, 0.0]
    return math.atan2(forward[1], forward[0])


if __name__ == "__main__":
    sys.exit(main())
