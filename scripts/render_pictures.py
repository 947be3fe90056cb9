# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the README's pictures from a real recording with the repository's own extension.

    python scripts/render_pictures.py [--checkpoint CKPT] [--input examples/xror_sample1_cut.bsor] [--out docs/img]

Builds the extension (core-only zip), installs it into a throw-away headless Blender (``bpy``
from PyPI, a temporary user folder), imports the recording, reconstructs with the checkpoint
(default: the shipped ``kinest_core/checkpoints/kinest_default``), bakes the armature with
its body mesh, renders a few frames with Workbench, and plots jitter per joint over time
(matplotlib), before and after the add-on's smoothing pass. Writes into ``--out``:

- ``frames.png``: rendered frames side by side, each body part coloured by its jitter on that
  frame (the add-on's colour scale: teal calm, yellow, red shaking); with ``--keep-frames``
  also each frame alone (``frame_NNNN.png``);
- ``jitter.png``: jitter of every joint over time (the shakiest named) and the per-frame mean
  before and after smoothing; ``pictures.json``: the numbers printed at the end.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kinest_core.jitter import JitterSummary

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", default=str(ROOT / "examples" / "xror_sample1_cut.bsor"))
    ap.add_argument("--checkpoint", default="", help="KineST .safetensors (default: the shipped checkpoint)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--frames", type=int, default=4, help="frames to render, spread over the take")
    ap.add_argument("--size", default="400x480", help="render size WxH")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--keep-frames", action="store_true", help="also keep the single frames (frame_NNNN.png)")
    return ap.parse_args(argv)


def default_checkpoint() -> str:
    path = ROOT / "kinest_core" / "checkpoints" / "kinest_default.safetensors"
    if not path.exists():
        sys.exit("error: no shipped checkpoint yet (kinest_core/checkpoints/kinest_default.*): pass --checkpoint")
    return str(path)


def build_zip(folder: str) -> Path:
    """The extension with only the kinest_core wheel (torch and SciPy come from this environment)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kinest_blender.build",
            "--output",
            folder,
            "--platform",
            "linux-x64",
            "--wheels",
            "core",
        ],
        cwd=ROOT,
        check=True,
    )
    (zp,) = sorted(Path(folder).glob("kinest-*.zip"))
    return zp


def setup_scene(bpy: Any, size: tuple[int, int]) -> Any:
    """Workbench, a floor, a camera that follows the body (one per rendered frame)."""
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "MATERIAL"
    shading.show_shadows = True
    shading.show_cavity = True
    world = bpy.data.worlds.new("KineST_pictures")
    world.color = (0.92, 0.93, 0.95)
    scene.world = world
    bpy.ops.mesh.primitive_plane_add(size=30.0, location=(0.0, 0.0, 0.0))
    floor = bpy.context.active_object
    mat = bpy.data.materials.new("floor")
    mat.diffuse_color = (0.80, 0.81, 0.83, 1.0)
    floor.data.materials.append(mat)
    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens = 50
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def colour_by_bone(bpy: Any, body: Any, names: Sequence[str]) -> list[Any]:
    """One material per bone on the body mesh (its faces by the bone their vertices follow)."""
    import numpy as np

    mesh = body.data
    mesh.materials.clear()
    mats = []
    for name in names:
        mat = bpy.data.materials.new(f"jitter_{name}")
        mesh.materials.append(mat)
        mats.append(mat)
    group_to_bone = {g.index: names.index(g.name) for g in body.vertex_groups if g.name in names}
    vert_bone = np.zeros(len(mesh.vertices), dtype=np.int64)
    for v in mesh.vertices:
        if v.groups:
            vert_bone[v.index] = group_to_bone.get(v.groups[0].group, 0)
    first = np.array([p.vertices[0] for p in mesh.polygons])
    mesh.polygons.foreach_set("material_index", vert_bone[first].astype(np.int32))
    mesh.update()
    return mats


def camera_offset(pelvis_quat: Any, distance: float = 3.3, side_deg: float = 25.0) -> tuple[float, float, float]:
    """From the body towards the camera: in front of where the pelvis faces, a little to its left."""
    from kinest_core import rotations as rot

    forward = rot.quat_to_matrix(pelvis_quat) @ [0.0, -1.0, 0.0]  # the rest pose faces -Y
    yaw = math.atan2(forward[1], forward[0]) + math.radians(side_deg)
    return (distance * math.cos(yaw), distance * math.sin(yaw), 0.2)


def aim(cam: Any, target: Sequence[float], offset: Sequence[float]) -> None:
    from mathutils import Vector

    t = Vector(target)
    cam.location = t + Vector(offset)
    cam.rotation_euler = (t - cam.location).to_track_quat("-Z", "Y").to_euler()


def plot(out: Path, summary: JitterSummary, after: JitterSummary, fps: float, names: Sequence[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pfj = summary.per_frame_joint
    t = np.arange(pfj.shape[0]) / fps
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    worst = summary.worst_joints[:4]
    for j in range(pfj.shape[1]):
        if j not in worst:
            ax1.plot(t[3:], pfj[3:, j], color="0.75", lw=0.6)
    colours = ["#d62728", "#ff7f0e", "#9467bd", "#1f77b4"]
    for c, j in zip(colours, worst, strict=False):
        ax1.plot(t[3:], pfj[3:, j], color=c, lw=1.0, label=f"{names[j]} (mean {summary.per_joint[j]:.1f})")
    ax1.set_ylabel("jitter per joint (100 m/s³)")
    ax1.set_yscale("log")
    ax1.legend(loc="lower left", fontsize=8, ncols=2, framealpha=0.85)
    ax1.set_title(f"Jitter per joint over time (22 joints, shakiest named); mean {summary.mean:.2f}")
    ax2.plot(t[3:], summary.per_frame[3:], color="0.3", lw=0.8, label=f"reconstruction (mean {summary.mean:.2f})")
    ax2.plot(t[3:], after.per_frame[3:], color="#2ca02c", lw=0.8, label=f"after Smooth (mean {after.mean:.2f})")
    for f in summary.worst_frames:
        ax2.axvline(f / fps, color="#d62728", lw=0.6, ls=":")
    ax2.set_ylabel("mean over joints")
    ax2.set_xlabel("time (s); dotted: worst frames the panel lists")
    ax2.set_yscale("log")
    ax2.legend(loc="lower left", fontsize=8, ncols=2, framealpha=0.85)
    fig.tight_layout()
    path = out / "jitter.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def montage(out: Path, frames: list[Path], labels: list[str], title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imgs = [plt.imread(str(p)) for p in frames]
    h, w = imgs[0].shape[:2]
    fig, axes = plt.subplots(1, len(imgs), figsize=(len(imgs) * w / 100, h / 100 + 0.6), squeeze=False)
    if title:
        fig.suptitle(title, fontsize=10)
    for ax, img, label in zip(axes[0], imgs, labels, strict=True):
        ax.imshow(img)
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 0.94 if title else 1))
    path = out / "frames.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    tmp = tempfile.mkdtemp(prefix="kinest-pictures-")
    try:
        return make_pictures(args, tmp)
    except (RuntimeError, subprocess.CalledProcessError) as exc:  # operator reports arrive as RuntimeError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def reconstructed_take(recording: str, checkpoint: str, device: str, tmp: str, label: str) -> Any:
    """Build and install the extension into a temporary Blender user folder, import ``recording``
    into an empty scene and reconstruct it with the add-on's operators; returns ``bpy``."""
    os.environ["BLENDER_USER_RESOURCES"] = os.path.join(tmp, "user")
    zp = build_zip(os.path.join(tmp, "zip"))
    import bpy

    bpy.ops.extensions.package_install_files(filepath=str(zp), repo="user_default", enable_on_install=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    t0 = time.perf_counter()
    bpy.ops.import_scene.kinest_tracking(filepath=os.path.abspath(recording))
    settings = bpy.context.scene.kinest
    settings.model_path = checkpoint
    settings.device = device
    bpy.ops.kinest.reconstruct()
    recon = bpy.context.window_manager.kinest_progress.last_result
    print(f"[{label}] {recon} ({time.perf_counter() - t0:.1f} s with import and bake)")
    return bpy


def make_pictures(args: argparse.Namespace, tmp: str) -> int:
    """Everything :func:`main` does, with a temporary folder for Blender's user files, the zip and frames."""
    checkpoint = os.path.abspath(args.checkpoint) if args.checkpoint else default_checkpoint()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(x) for x in args.size.lower().split("x"))
    bpy = reconstructed_take(args.input, checkpoint, args.device, tmp, "pictures")
    settings = bpy.context.scene.kinest
    recon = bpy.context.window_manager.kinest_progress.last_result
    armature = importlib.import_module("bl_ext.user_default.kinest.kinest_blender.armature")
    keys = importlib.import_module("bl_ext.user_default.kinest.kinest_blender.keys")
    smooth_op = importlib.import_module("bl_ext.user_default.kinest.kinest_blender.smooth_op")
    from kinest_core.jitter import jitter_colors, jitter_summary
    from kinest_core.postprocess.smoothing import smooth_motion

    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.get("kinest_role") == "armature")
    body = next(o for o in bpy.data.objects if o.get("kinest_role") == "body")
    motion = armature.motion_from_armature(arm)
    summary = jitter_summary(motion.joint_positions, motion.fps)
    options = smooth_op.smoothing_options(settings)
    smoothed = smooth_motion(motion, options)
    names = keys.BONE_NAME_PRESETS["SMPL"]

    cam = setup_scene(bpy, (w, h))
    materials = colour_by_bone(bpy, body, names)
    scene = bpy.context.scene
    n = motion.num_frames
    picks = [int(round(x)) for x in [n * (k + 0.5) / args.frames for k in range(args.frames)]]
    rendered, labels = [], []
    for f in picks:
        frame = scene.frame_start + f
        scene.frame_set(frame)
        rgb = jitter_colors(summary.per_frame_joint[f], settings.jitter_shaky)
        for mat, c in zip(materials, rgb, strict=True):
            mat.diffuse_color = (*(float(x) for x in c), 1.0)
        pelvis = motion.joint_positions[f, 0]
        target = (float(pelvis[0]), float(pelvis[1]), 0.95)
        aim(cam, target, camera_offset(motion.local_rotations[f, 0]))
        path = (out if args.keep_frames else Path(tmp)) / f"frame_{frame:04d}.png"
        scene.render.filepath = str(path)
        t1 = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        print(f"[pictures] rendered {path.name} in {time.perf_counter() - t1:.2f} s")
        rendered.append(path)
        labels.append(f"{f / motion.fps:.1f} s (frame {frame})")
    sheet = montage(
        out,
        rendered,
        labels,
        f"{Path(args.input).name}: body parts coloured by their jitter on that frame "
        f"(teal calm, yellow, red at {settings.jitter_shaky:.0f} x100 m/s³ and above)",
    )
    chart = plot(out, summary, smoothed.after, motion.fps, names)
    facts = {
        "input": os.path.relpath(os.path.abspath(args.input), ROOT),
        "checkpoint": os.path.basename(checkpoint),
        "reconstruction": recon,
        "frames": n,
        "jitter_mean": summary.mean,
        "worst_joints": summary.as_dict()["worst_joints"],
        "worst_frames_scene": [scene.frame_start + f for f in summary.worst_frames],
        "smoothing": {**smoothed.as_dict(), "strengths": options.strengths},
        "images": [p.name for p in [*(rendered if args.keep_frames else []), sheet, chart]],
    }
    (out / "pictures.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
