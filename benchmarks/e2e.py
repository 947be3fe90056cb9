# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end in headless Blender: import -> reconstruct -> bake -> FBX export of one long take.

    python benchmarks/e2e.py --seconds 3600 --json

The take is the bundled Beat Saber replay looped to the length asked for (``looped.py``),
read by the add-on's importer. Reconstruction runs as the panel's Reconstruct does: the
worker thread, then the bake in main-thread steps, driven here by the same ``step`` calls the
modal operator's timer makes (headless, so torch may use every core). Each ``step`` call is
timed: the longest is how long Blender's UI would have been blocked. Then what Blender does
after any bake, outside the add-on, is timed on its own: the dependency graph's evaluated copy
of the new action and the undo step the operator's 'UNDO' option makes. Memory is the resident
set (``common.PeakRss``) above that of the empty Blender, torch and the network included
(loaded first, as a session's first Reconstruct does); the bake's share is the RSS it adds
(Blender's keyframes, mostly).
Run one length per process, so every length starts from the same memory.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakRss, Stopwatch, machine, print_and_exit, rss_mb, start_blender  # noqa: E402
from looped import write_looped_bsor  # noqa: E402


def run(seconds: float, fbx: bool = True, device: str = "cpu") -> dict[str, Any]:
    bpy = start_blender()
    from kinest_blender import reconstruct_op

    out: dict[str, Any] = {"motion_s": seconds}
    with tempfile.TemporaryDirectory(prefix="kinest-e2e-") as tmp:
        src = Path(tmp) / "looped.bsor"
        out["source_samples"] = write_looped_bsor(src, seconds)
        out["file_mb"] = src.stat().st_size / 2**20
        context = bpy.context
        peak = PeakRss()
        gc.collect()
        blender_mb = rss_mb()
        # What the first Reconstruct of a session pays once: torch and the network (cached after).
        from kinest_core.inference import load_model

        sw = Stopwatch()
        load_model(None, device)
        out["model_load_s"] = sw.lap()[0]
        gc.collect()
        base = rss_mb()
        out["model_load_mb"] = base - blender_mb
        out["blender_rss_mb"] = blender_mb
        peak.reset()
        start = Stopwatch()

        sw = Stopwatch()
        assert bpy.ops.import_scene.kinest_tracking(filepath=str(src)) == {"FINISHED"}
        out["import_s"], out["import_cpu_s"] = sw.lap()
        out["import_rss_delta_mb"] = rss_mb() - base
        out["import_peak_mem_mb"] = peak.peak_mb() - base
        overall = peak.peak_mb()
        gc.collect()
        stage_base = rss_mb()
        peak.reset()
        out["frames"] = context.scene.frame_end - context.scene.frame_start + 1
        context.scene.kinest.device = device

        sw = Stopwatch()
        t = time.perf_counter()
        job = reconstruct_op.start_job(context)
        blocks: dict[str, float] = {"start_job": time.perf_counter() - t, "reconstruct_step": 0.0, "bake_step": 0.0}
        bake_sw: Stopwatch | None = None
        rss_before_bake = 0.0
        steps = 0
        while True:
            job.poll()  # idempotent: lets the keys' arrival be seen before the first bake step
            if job.plan is not None and bake_sw is None:
                out["reconstruct_s"], out["reconstruct_cpu_s"] = sw.lap()
                out["reconstruct_peak_mem_mb"] = peak.peak_mb() - stage_base
                overall = max(overall, peak.peak_mb())
                gc.collect()
                rss_before_bake = rss_mb()
                peak.reset()
                bake_sw = Stopwatch()
            kind = "reconstruct_step" if bake_sw is None else "bake_step"
            t = time.perf_counter()
            state = reconstruct_op.step(context, job)
            dt = time.perf_counter() - t
            steps += 1
            if state != reconstruct_op.RUNNING:
                blocks["last_step"] = dt  # the bake's final step: armature, action, body, scene range
                break
            blocks[kind] = max(blocks[kind], dt)
            job.wait(0.05)
        if state != reconstruct_op.FINISHED or bake_sw is None:
            raise RuntimeError(f"reconstruction ended {state}: {context.window_manager.kinest_progress.message}")
        out["bake_s"], out["bake_cpu_s"] = bake_sw.lap()
        out["file_to_bake_s"], out["file_to_bake_cpu_s"] = start.lap()
        gc.collect()
        out["bake_rss_delta_mb"] = rss_mb() - rss_before_bake
        out["bake_peak_mem_mb"] = peak.peak_mb() - rss_before_bake
        overall = max(overall, peak.peak_mb())
        out["peak_mem_mb"] = overall - blender_mb
        out["peak_mem_excl_model_mb"] = overall - base
        motion = job.motion
        assert motion is not None
        out["inference_s"] = float(motion.info.get("seconds") or 0.0)
        out["inference_x_realtime"] = motion.num_frames / 60.0 / out["inference_s"] if out["inference_s"] else 0.0
        out["main_thread_max_block_ms"] = 1000 * max(blocks.values())
        for kind, dt in blocks.items():
            out[f"main_thread_{kind}_ms"] = 1000 * dt
        out["main_thread_steps"] = steps
        # What Blender itself does next, outside the add-on: the first redraw evaluates the
        # dependency graph, which keeps an evaluated copy of every animated data-block (the
        # action with all its keys included); and as the modal operator returns FINISHED
        # ('UNDO' in its options) global undo stores the new data in an undo step.
        before = rss_mb()
        t = time.perf_counter()
        context.view_layer.update()
        out["depsgraph_update_s"] = time.perf_counter() - t
        out["depsgraph_rss_delta_mb"] = rss_mb() - before
        before = rss_mb()
        t = time.perf_counter()
        bpy.ops.ed.undo_push(message="Reconstruct")
        out["undo_push_s"] = time.perf_counter() - t
        out["undo_push_rss_delta_mb"] = rss_mb() - before
        out["peak_mem_with_blender_copies_mb"] = max(overall, peak.peak_mb()) - blender_mb
        arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
        cb = arm.animation_data.action.layers[0].strips[0].channelbag(arm.animation_data.action_slot)
        out["keys_baked"] = sum(len(fc.keyframe_points) for fc in cb.fcurves)
        out["bake_bytes_per_key"] = out["bake_rss_delta_mb"] * 2**20 / max(out["keys_baked"], 1)

        if fbx:
            gc.collect()
            before = rss_mb()
            peak.reset()
            path = Path(tmp) / "take.fbx"
            sw = Stopwatch()
            assert bpy.ops.kinest.export_fbx(filepath=str(path), preset="UNITY") == {"FINISHED"}
            out["fbx_export_s"], out["fbx_export_cpu_s"] = sw.lap()
            out["fbx_peak_mem_mb"] = peak.peak_mb() - before
            out["fbx_mb"] = path.stat().st_size / 2**20
            out["fbx_peak_mem_total_mb"] = peak.peak_mb() - blender_mb
    out["memory_method"] = peak.method
    out["machine"] = machine()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the looped take (s)")
    ap.add_argument("--no-fbx", action="store_true", help="skip the FBX export")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run(args.seconds, fbx=not args.no_fbx, device=args.device)
    print_and_exit(res, args.json, width=28)


if __name__ == "__main__":
    raise SystemExit(main())
