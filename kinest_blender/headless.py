# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the extension headless: install a zip, import a recording, reconstruct, write FBX and BVH.

    python -m kinest_blender.headless --zip DIST/kinest-0.1.0-linux_x64.zip \\
        --input tests/fixtures/vr/km_boxrr_beatsaber23_first1446.bsor --fbx out/take.fbx --bvh out/take.bvh
    blender -b --python kinest_blender/headless.py -- --input REC --fbx out/take.fbx   # extension installed

Uses the same operators as the panel (``kinest.reconstruct`` runs to the end in background
mode), so it doubles as the batch-script example. With ``--zip`` the zip goes into a
temporary Blender user folder (the user's own Blender is never touched).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m kinest_blender.headless", description=__doc__.split("\n\n")[0])
    ap.add_argument("--zip", help="extension zip to install first (into a temporary Blender user folder)")
    ap.add_argument("--input", required=True, help="tracking recording (.csv, .bvh, .bsor, .npz)")
    ap.add_argument("--model", default="", help="KineST checkpoint (.safetensors); empty: the bundled one")
    ap.add_argument("--mode", choices=("offline", "online"), default="offline")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--height", type=float, default=0.0, help="performer height in m (0: estimate)")
    ap.add_argument("--bone-names", choices=("SMPL", "MIXAMO", "UNREAL"), default="SMPL")
    ap.add_argument(
        "--worker-python", default="", help="reconstruct in this Python (e.g. one with CUDA torch; docs/worker.md)"
    )
    ap.add_argument("--no-body", action="store_true", help="bake without the low-poly body mesh")
    ap.add_argument("--smooth", action="store_true", help="run the smoothing pass (panel defaults) after the bake")
    ap.add_argument("--fbx", help="FBX file to write")
    ap.add_argument("--preset", choices=("UNITY", "UNREAL", "BLENDER"), default="UNITY")
    ap.add_argument("--bvh", help="BVH file to write")
    ap.add_argument("--blend", help=".blend file to save")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    args = parse(argv)
    if args.zip and "bpy" not in sys.modules:
        os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="kinest-headless-")
    import bpy

    if args.zip:
        zip_path = os.path.abspath(args.zip)
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    if not hasattr(bpy.types, "KINEST_PT_main"):
        print("error: the KineST extension is not enabled here; pass --zip with the built extension", file=sys.stderr)
        return 2
    try:
        t0 = time.perf_counter()
        bpy.ops.import_scene.kinest_tracking(filepath=os.path.abspath(args.input))
        settings = bpy.context.scene.kinest
        settings.model_path = os.path.abspath(args.model) if args.model else ""
        settings.mode = args.mode
        settings.device = args.device
        settings.body_height = args.height
        settings.bone_names = args.bone_names
        settings.body_mesh = not args.no_body
        prefs = bpy.context.preferences.addons.get(_addon_id())
        if prefs is not None:
            prefs.preferences.worker_python = os.path.abspath(args.worker_python) if args.worker_python else ""
        elif args.worker_python:
            print("error: the add-on's preferences are not registered; cannot set --worker-python", file=sys.stderr)
            return 2
        bpy.ops.kinest.reconstruct()
        print(f"[kinest] {bpy.context.window_manager.kinest_progress.last_result}")
        if args.smooth:
            bpy.ops.kinest.smooth()
            arm = next(o for o in bpy.data.objects if o.get("kinest_role") == "armature" and "kinest_smoothing" in o)
            print(f"[kinest] {arm['kinest_smoothing']}")
        if args.fbx:
            bpy.ops.kinest.export_fbx(filepath=os.path.abspath(args.fbx), preset=args.preset)
            print(f"[kinest] wrote {args.fbx} ({args.preset})")
        if args.bvh:
            bpy.ops.kinest.export_bvh(filepath=os.path.abspath(args.bvh))
            print(f"[kinest] wrote {args.bvh}")
        if args.blend:
            bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.blend))
            print(f"[kinest] saved {args.blend}")
        print(f"[kinest] done in {time.perf_counter() - t0:.1f} s")
    except RuntimeError as exc:  # operator reports arrive as RuntimeError("Error: ...")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _addon_id() -> str:
    """The installed extension's module name (``bl_ext.<repo>.kinest``)."""
    import bpy

    for name in bpy.context.preferences.addons.keys():
        if name.endswith(".kinest") or name == "kinest":
            return name
    return "bl_ext.user_default.kinest"


if __name__ == "__main__":
    sys.exit(main())
