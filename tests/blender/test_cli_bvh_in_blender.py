# SPDX-License-Identifier: GPL-3.0-or-later
"""`kinest reconstruct` output opens in Blender's own BVH importer: 22 joints, every frame.

Runs the CLI on every VR fixture (and on all of ../shared/data/vr where it exists, with the
shipped checkpoint), then imports the BVH with ``bpy.ops.import_anim.bvh`` (io_anim_bvh).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kb_helpers import bpy

from kinest_core.cli import main
from kinest_core.io import TrackingFileError, read_tracking
from kinest_core.model import default_checkpoint_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vr"
SHARED_VR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vr"


def _import_and_check(bvh: Path, frames: int) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_anim.bvh(
        filepath=str(bvh), global_scale=0.01, use_fps_scale=False, update_scene_duration=True
    ) == {"FINISHED"}
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    assert len(arm.data.bones) == 22
    from bpy_extras.anim_utils import action_get_channelbag_for_slot

    anim = arm.animation_data
    bag = action_get_channelbag_for_slot(anim.action, anim.action_slot)
    counts = {len(fc.keyframe_points) for fc in bag.fcurves}
    assert counts == {frames}, f"keys per curve {counts}, expected {frames}"
    start = bpy.context.scene.frame_start
    # upright: after import (BVH Y-up -> Blender Z-up) the head is above the pelvis
    bpy.context.scene.frame_set(start)
    head = arm.matrix_world @ arm.pose.bones["head"].head
    pelvis = arm.matrix_world @ arm.pose.bones["pelvis"].head
    assert head.z > pelvis.z + 0.3


@pytest.mark.parametrize(
    "name", sorted(p.name for p in FIXTURES.glob("*fixed*.csv"))[:3] + ["km_boxrr_beatsaber23_first1446.bsor"]
)
def test_cli_bvh_opens_in_blender(tmp_path: Path, name: str, checkpoint: Path) -> None:
    src = FIXTURES / name
    frames = read_tracking(str(src)).num_frames
    out = tmp_path / "take.bvh"
    assert main(["reconstruct", str(src), "-o", str(out), "--checkpoint", str(checkpoint), "--quiet"]) == 0
    _import_and_check(out, frames)


SHARED_FILES = (
    sorted(p.name for p in SHARED_VR.glob("*") if p.suffix in (".csv", ".bsor")) if SHARED_VR.is_dir() else []
)


@pytest.mark.shared_data
def test_the_shared_recordings_are_all_there() -> None:
    assert len(SHARED_FILES) == 15


@pytest.mark.shared_data
@pytest.mark.skipif(default_checkpoint_path() is None, reason="no shipped checkpoint")
@pytest.mark.parametrize("name", SHARED_FILES)
def test_every_shared_recording_reconstructs_to_a_bvh_blender_opens(tmp_path: Path, name: str) -> None:
    src = SHARED_VR / name
    try:
        frames = read_tracking(str(src)).num_frames
    except TrackingFileError:
        return  # refused with a clear error: allowed by the contract
    out = tmp_path / (src.stem + ".bvh")
    assert main(["reconstruct", str(src), "-o", str(out), "--quiet"]) == 0, src.name
    _import_and_check(out, frames)
