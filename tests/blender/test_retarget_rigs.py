# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting onto the real characters in the shared data, keyed in Blender and measured as Blender evaluates them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from kb_helpers import REPO, bpy, mod

sys.path.insert(0, str(REPO / "tests"))
from retarget_rigs import sample_motion  # noqa: E402

from kinest_core import rotations as rot  # noqa: E402
from kinest_core.postprocess import retarget as rt  # noqa: E402
from kinest_core.postprocess.bone_map import map_skeleton  # noqa: E402
from kinest_core.skeleton import JOINT_NAMES, forward_kinematics  # noqa: E402

RIGS = {
    "quaternius": "quaternius_animated_human/Animated Human.fbx",
    "mannequiny": "gdquest_mannequiny/mannequiny-0.3.0.glb",
    "ojg_a_pose": "ojg_male_base_mesh/male_base_mesh.glb",
}


@pytest.mark.shared_data
@pytest.mark.parametrize("rig", sorted(RIGS))
def test_shared_character_follows_our_limbs(rig: str, clean, shared_data: Path) -> None:  # noqa: ANN001
    path = shared_data / "rigs" / RIGS[rig]
    if path.suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        bpy.ops.import_scene.gltf(filepath=str(path))
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    rb = mod("retarget_bake")
    skel = rb.target_skeleton(arm)
    bm = map_skeleton(skel)
    bm.require()
    motion = sample_motion(frames=60)
    _, ours = forward_kinematics(
        rot.quat_to_matrix(motion.local_rotations), motion.rest_offsets, motion.root_translation
    )
    frames = list(range(0, 60, 5))
    joints = [j for seg in rt.LIMB_SEGMENTS.values() for j in seg]
    for use_ik in (False, True):
        res = rt.retarget(motion, skel, bm, use_ik=use_ik)
        rb.apply_result(arm, res, 1, "KineST_retarget")
        heads = rb.world_heads(bpy.context, arm, [bm.joints[j] for j in joints], [f + 1 for f in frames])
        pos = {j: heads[:, k] for k, j in enumerate(joints)}
        if not use_ik:
            errs = []
            for a, b in rt.LIMB_SEGMENTS.values():
                t, o = pos[b] - pos[a], ours[frames, JOINT_NAMES.index(b)] - ours[frames, JOINT_NAMES.index(a)]
                cos = np.sum(t * o, -1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(o, axis=-1)
                errs.append(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())
            assert np.mean(errs) < 5.0
        else:
            _, reach = rt.hand_errors(motion, res, frames=np.array(frames))
            hips = rb.world_heads(bpy.context, arm, [bm.joints["pelvis"]], [f + 1 for f in frames])[:, 0]
            for k, side in enumerate(("left", "right")):
                goal = hips + (ours[frames, 20 + k] - ours[frames, 0]) * res.scale
                err = np.linalg.norm(pos[f"{side}_wrist"] - goal, axis=-1)
                assert err[reach[:, k]].max() < 0.02, side  # scene units are metres after import
    assert arm.animation_data.action.name.startswith("KineST_retarget")
