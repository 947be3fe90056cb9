# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot locking: the leg IK reaches, planted feet hold still, blends are continuous, the floor holds,
the upper body is untouched, and edited contacts change the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinest_core import rotations as rot
from kinest_core.cli import main
from kinest_core.inference import reconstruct
from kinest_core.postprocess import contacts as C
from kinest_core.postprocess.foot_planting import LEG_CHAINS, PlantingOptions, leg_ik, plant_feet
from kinest_core.postprocess.smoothing import SmoothingOptions, smooth_motion
from kinest_core.skeleton import Skeleton, forward_kinematics
from kinest_core.training.data import tracked_joints
from kinest_core.training.evaluate import tracking_from_joints
from kinest_core.training.mocap import convert_bvh
from kinest_core.types import Motion
from kinest_core.worker import run_in_worker

FIX = Path(__file__).parent / "fixtures" / "mocap"
LEG_JOINTS = {j for chain in LEG_CHAINS for j in chain}
UPPER = [j for j in range(22) if j not in LEG_JOINTS]


def _motion(frames: int = 120, seed: int = 0, wobble_deg: float = 5.0, drop: float = 0.0) -> Motion:
    """The neutral body near its rest pose with smoothly wobbling joints (a prediction's small errors),
    the pelvis swaying a few centimetres; ``drop`` lowers the whole body (m)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 60.0
    freq = rng.uniform(0.3, 1.5, size=(1, 22, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 22, 3))
    rotvec = np.radians(wobble_deg) * np.sin(2 * np.pi * freq * t + phase)
    rotvec[:, 0] *= 0.3  # the pelvis turns less
    rotvec[:, [4, 5], 0] += np.radians(30.0)  # bent knees
    rotvec[:, [1, 2], 0] -= np.radians(15.0)
    rotvec[:, [7, 8], 0] -= np.radians(15.0)
    local = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(frames, 22, 3, 3)
    offsets = Skeleton.neutral(1.75).rest_offsets
    root = np.zeros((frames, 3))
    root[:, 0] = 0.03 * np.sin(np.linspace(0, 3, frames))
    root[:, 2] = -drop - 0.03
    _, pos = forward_kinematics(local, offsets, root)
    return Motion(rot.matrix_to_quat(local), root, pos, offsets)


def _spans(frames: int) -> np.ndarray:
    c = np.zeros((frames, 2), dtype=bool)
    c[10:60, 0] = True
    c[75:110, 0] = True
    c[30:100, 1] = True
    return c


def test_leg_ik_reaches_and_leaves_a_met_target_alone() -> None:
    m = _motion(40, seed=1)
    local = rot.quat_to_matrix(m.local_rotations)
    glob, pos = forward_kinematics(local, m.rest_offsets, m.root_translation)
    rng = np.random.default_rng(2)
    chain = LEG_CHAINS[0]
    target = pos[:, 7] + rng.normal(scale=0.04, size=(40, 3)) + np.array([0.0, 0.0, 0.05])
    out = local.copy()
    leg_ik(out, glob, pos, chain, target, softness=0.02)
    _, new = forward_kinematics(out, m.rest_offsets, m.root_translation)
    leg = np.linalg.norm(m.rest_offsets[4]) + np.linalg.norm(m.rest_offsets[7])
    short = np.linalg.norm(target - pos[:, 1], axis=-1) < 0.98 * leg  # short of the soft zone: met exactly
    assert short.mean() > 0.9
    np.testing.assert_allclose(new[short, 7], target[short], atol=1e-7)
    np.testing.assert_array_equal(
        out[:, [j for j in range(22) if j not in (1, 4)]], local[:, [j for j in range(22) if j not in (1, 4)]]
    )
    same = local.copy()
    leg_ik(same, glob, pos, chain, pos[:, 7], softness=0.02)
    np.testing.assert_allclose(same, local, atol=1e-7)


def test_leg_ik_out_of_reach_points_a_nearly_straight_leg_at_the_target() -> None:
    m = _motion(10, seed=3)
    local = rot.quat_to_matrix(m.local_rotations)
    glob, pos = forward_kinematics(local, m.rest_offsets, m.root_translation)
    target = pos[:, 1] + np.array([0.0, 0.0, -2.0])
    leg_ik(local, glob, pos, LEG_CHAINS[0], target, softness=0.02)
    _, new = forward_kinematics(local, m.rest_offsets, m.root_translation)
    leg = np.linalg.norm(m.rest_offsets[4]) + np.linalg.norm(m.rest_offsets[7])
    reach = np.linalg.norm(new[:, 7] - new[:, 1], axis=-1)
    assert np.all(reach > 0.98 * leg) and np.all(reach < leg)
    np.testing.assert_allclose((new[:, 7] - new[:, 1])[:, :2], 0.0, atol=1e-6)


@pytest.mark.parametrize("foot", ["motion", "flat"])
def test_planted_feet_hold_still_and_the_upper_body_does_not_move(foot: str) -> None:
    m = _motion()
    c = _spans(m.num_frames)
    # A pivot band of ~0 makes the foot pivot wholly on its heel or its toe in every frame.
    out = plant_feet(m, c, PlantingOptions(foot=foot, pivot_band=1e-9))
    p = out.joint_positions
    travel = C.horizontal_travel(p[:, [7, 10, 8, 11]])
    before = C.horizontal_travel(m.joint_positions[:, [7, 10, 8, 11]])
    for side in range(2):
        inside = c[:, side].copy()
        inside[np.flatnonzero(np.diff(c[:, side].astype(int)) == 1) + 1] = False  # travel into a span's first frame
        joints = [2 * side, 2 * side + 1]
        # the pivot (heel or toe) never slides; flat feet do not move at all
        assert travel[inside][:, joints].min(axis=-1).max() < 1e-6
        assert before[inside][:, joints].min(axis=-1).mean() > 1e-3  # it did slide before
        if foot == "flat":
            assert travel[inside][:, joints].max() < 1e-6
    np.testing.assert_allclose(p[:, UPPER], m.joint_positions[:, UPPER], atol=1e-9)
    # with the default band the pivot slides between heel and toe as the heel rises: a little
    rolled = C.horizontal_travel(plant_feet(m, c, PlantingOptions(foot=foot)).joint_positions[:, [7, 10]])
    assert rolled[12:60].min(axis=-1).max() < 0.002
    np.testing.assert_array_equal(out.root_translation, m.root_translation)
    np.testing.assert_array_equal(out.contacts, c)
    # heading held: the foot's forward direction does not turn inside a span
    fwd = p[:, 10] - p[:, 7]
    yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    assert np.ptp(yaw[10:60]) < 1e-6


def test_blends_are_continuous() -> None:
    m = _motion()
    c = _spans(m.num_frames)
    out = plant_feet(m, c, PlantingOptions(blend_frames=6))
    # Accelerations (second differences) of the feet stay in the range of the unplanted motion's plus
    # what a 6-frame fade of the corrections adds: no frame-to-frame jump anywhere, span ends included.
    acc_before = np.abs(np.diff(m.joint_positions[:, [7, 8, 10, 11]], 2, axis=0)).max()
    acc_after = np.abs(np.diff(out.joint_positions[:, [7, 8, 10, 11]], 2, axis=0)).max()
    corr = np.abs(out.joint_positions - m.joint_positions)[:, [7, 8, 10, 11]].max()
    assert acc_after < acc_before + 4 * corr / 6**2
    no_blend = plant_feet(m, c, PlantingOptions(blend_frames=0))
    jump_before = np.abs(np.diff(m.joint_positions[:, [7, 8]], axis=0)).max()
    jump_after = np.abs(np.diff(out.joint_positions[:, [7, 8]], axis=0)).max()
    jump_none = np.abs(np.diff(no_blend.joint_positions[:, [7, 8]], axis=0)).max()
    assert jump_after < jump_none and jump_after < jump_before + corr / 3


def test_no_foot_goes_below_the_floor() -> None:
    m = _motion(drop=0.06)  # the body placed 6 cm too low: feet under the floor
    stand = C.standing_heights(m.rest_offsets)
    assert (m.joint_positions[:, [7, 10], 2] < stand[[7, 10]] - 0.03).any()
    c = _spans(m.num_frames)
    out = plant_feet(m, c)
    z = out.joint_positions[..., 2]
    assert np.all(z[:, [7, 8, 10, 11]] >= stand[[7, 8, 10, 11]] - 1e-7)
    assert z.min() >= 0.0
    gaps = C.floor_gaps(out.joint_positions, c, m.rest_offsets)
    assert np.median(gaps) == pytest.approx(0.0, abs=1e-6)
    # a body hovering (within what its bent knees can reach) gets its planted feet put down onto the floor
    high = _motion(drop=-0.02)
    assert np.median(C.floor_gaps(high.joint_positions, c, high.rest_offsets)) > 0.03
    gaps_high = C.floor_gaps(plant_feet(high, c).joint_positions, c, high.rest_offsets)
    assert abs(np.median(gaps_high)) < 1e-4 and gaps_high.max() < 0.01  # a few frames at the limit of reach
    with pytest.raises(ValueError, match="one column per foot"):
        plant_feet(m, c[:, :1])


def test_edited_contacts_change_the_result() -> None:
    m = _motion()
    c = _spans(m.num_frames)
    a = plant_feet(m, c)
    edited = c.copy()
    edited[75:110, 0] = False  # the animator clears the left foot's second span
    b = plant_feet(m, edited)
    assert np.abs(a.joint_positions[80:105, 7] - b.joint_positions[80:105, 7]).max() > 1e-3
    np.testing.assert_allclose(b.joint_positions[:60, 7], a.joint_positions[:60, 7], atol=1e-12)
    np.testing.assert_allclose(b.joint_positions[:, [8, 11]], a.joint_positions[:, [8, 11]], atol=1e-12)
    # the left ankle is back where the motion had it, except where the floor holds it up
    free = b.joint_positions[85:105, 7]
    lifted = np.abs(free[:, 2] - m.joint_positions[85:105, 7, 2]) > 1e-9
    np.testing.assert_allclose(free[~lifted], m.joint_positions[85:105, 7][~lifted], atol=1e-7)
    assert np.abs(b.joint_positions[80:105, 7, :2] - m.joint_positions[80:105, 7, :2]).max() < 1e-6


def test_planting_a_perturbed_real_walk_stops_its_sliding() -> None:
    """Real CMU walk with noisy leg rotations (a stand-in for a prediction's errors), planted with the
    labels of the real walk: the feet slide less than the capture itself and stay close to it."""
    truth = convert_bvh(str(FIX / "02_01_cut.bvh"))[0]
    local = rot.quat_to_matrix(truth.local_rotations)
    rng = np.random.default_rng(0)
    noise = np.cumsum(rng.normal(scale=np.radians(0.8), size=(truth.num_frames, 22, 3)), axis=0)
    noise[:, [j for j in range(22) if j not in LEG_JOINTS]] = 0.0
    noisy = local @ Rotation.from_rotvec(noise.reshape(-1, 3)).as_matrix().reshape(local.shape)
    _, pos = forward_kinematics(noisy, truth.rest_offsets, truth.root_translation)
    pred = Motion(rot.matrix_to_quat(noisy), truth.root_translation, pos, truth.rest_offsets, truth.fps)
    labels = C.contact_labels(truth.joint_positions, truth.fps)
    out = plant_feet(pred, labels)
    slide = [C.foot_slide(x, truth.joint_positions, truth.fps) for x in (pred.joint_positions, out.joint_positions)]
    gt = C.foot_slide(truth.joint_positions, truth.joint_positions, truth.fps)
    assert slide[1][0] / slide[1][1] < gt[0] / gt[1] < slide[0][0] / slide[0][1]
    err_before = np.linalg.norm(pred.joint_positions - truth.joint_positions, axis=-1).mean()
    err_after = np.linalg.norm(out.joint_positions - truth.joint_positions, axis=-1).mean()
    assert err_after < err_before + 0.005


def test_contacts_travel_with_the_motion_file(tmp_path: Path) -> None:
    m = _motion(30)
    c = np.zeros((30, 2), dtype=bool)
    c[5:20, 1] = True
    path = str(tmp_path / "planted.npz")
    plant_feet(m, c).save_npz(path)
    np.testing.assert_array_equal(Motion.load_npz(path).contacts, c)
    m.save_npz(path)
    assert Motion.load_npz(path).contacts is None


def test_smoothing_a_planted_motion_keeps_the_feet_locked() -> None:
    m = _motion()
    c = _spans(m.num_frames)
    planted = plant_feet(m, c, PlantingOptions(pivot_band=1e-9))
    smoothed = smooth_motion(planted, SmoothingOptions.uniform(0.8)).motion
    assert smoothed.info["plant_feet"]["pivot_band"] == 1e-9
    np.testing.assert_array_equal(smoothed.contacts, c)
    travel = C.horizontal_travel(smoothed.joint_positions[:, [7, 10]])
    assert travel[12:60].min(axis=-1).max() < 1e-6
    # without the planting record the filter alone lets the foot move
    planted.info.pop("plant_feet")
    loose = smooth_motion(planted, SmoothingOptions.uniform(0.8)).motion
    assert C.horizontal_travel(loose.joint_positions[:, [7, 10]])[12:60].min(axis=-1).max() > 1e-4


def test_reconstruct_plants_feet_by_default() -> None:
    truth = convert_bvh(str(FIX / "02_01_cut.bvh"))[0]
    tracking = tracking_from_joints(*tracked_joints(truth))
    body = Skeleton(rest_offsets=truth.rest_offsets)
    free = reconstruct(tracking, device="cpu", skeleton=body, plant_feet=False)
    planted = reconstruct(tracking, device="cpu", skeleton=body)
    assert free.contacts is not None and free.contacts.shape == (truth.num_frames, 2)
    np.testing.assert_array_equal(planted.contacts, free.contacts)
    assert free.info["plant_feet"] is False and planted.info["plant_feet"]["foot"] == "motion"
    upper = [j for j in range(22) if j not in LEG_JOINTS]
    np.testing.assert_allclose(planted.joint_positions[:, upper], free.joint_positions[:, upper], atol=1e-9)
    slide = [C.foot_slide(m.joint_positions, truth.joint_positions)[0] for m in (free, planted)]
    assert slide[1] < slide[0]
    stand = C.standing_heights(body.rest_offsets)
    assert np.all(planted.joint_positions[:, [7, 8, 10, 11], 2] >= stand[[7, 8, 10, 11]] - 1e-7)


def test_cli_evaluate_plant_feet_and_ground_truth(capsys: pytest.CaptureFixture[str]) -> None:
    data = str(FIX / "02_01_cut.bvh")
    assert main(["evaluate", "--data", data, "--mode", "offline", "--pin-hands", "--json", "--device", "cpu"]) == 0
    free = json.loads(capsys.readouterr().out)
    cmd = ["evaluate", "--data", data, "--mode", "offline", "--pin-hands", "--plant-feet", "--json", "--device", "cpu"]
    assert main(cmd) == 0
    planted = json.loads(capsys.readouterr().out)
    for key in ("foot_slide_cm", "contact_precision", "contact_recall", "contact_f1", "contact_f1_always"):
        assert key in free and key in planted
    assert planted["plant_feet"] is True and "floor_gap_cm_before" in planted and "floor_gap_cm_before" not in free
    assert planted["foot_slide_cm"] < free["foot_slide_cm"]
    assert planted["contact_precision"] == free["contact_precision"]  # the same contacts, planted or not
    assert planted["ground_penetration_cm"] <= free["ground_penetration_cm"]
    assert main(["evaluate", "--data", data, "--ground-truth", "--json"]) == 0
    gt = json.loads(capsys.readouterr().out)
    assert 0.0 < gt["foot_slide_cm"] < 1.0  # by the contact rule, under 1 cm per frame


def test_cli_reconstruct_no_plant_feet(tmp_path: Path) -> None:
    truth = convert_bvh(str(FIX / "02_01_cut.bvh"))[0]
    tracking = tracking_from_joints(*tracked_joints(truth))
    src = str(tmp_path / "take.npz")
    tracking.save_npz(src)
    out = [str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]
    assert main(["reconstruct", src, "-o", out[0], "--device", "cpu", "--quiet"]) == 0
    assert main(["reconstruct", src, "-o", out[1], "--device", "cpu", "--quiet", "--no-plant-feet"]) == 0
    planted, free = Motion.load_npz(out[0]), Motion.load_npz(out[1])
    assert planted.contacts is not None and free.contacts is not None
    np.testing.assert_array_equal(planted.contacts, free.contacts)
    assert np.abs(planted.joint_positions[:, [7, 8]] - free.joint_positions[:, [7, 8]]).max() > 1e-3


def test_worker_honours_plant_feet() -> None:
    truth = convert_bvh(str(FIX / "02_01_cut.bvh"))[0]
    tracking = tracking_from_joints(*tracked_joints(truth))
    opts = {"device": "cpu", "num_threads": 1, "plant_feet": False, "body_height": 1.75}
    free = run_in_worker(sys.executable, tracking, opts)
    ref = reconstruct(tracking, device="cpu", num_threads=1, plant_feet=False, body_height=1.75)
    np.testing.assert_allclose(free.joint_positions, ref.joint_positions, atol=1e-5)
    assert free.contacts is not None and free.info["plant_feet"] is False
    planted = run_in_worker(sys.executable, tracking, {**opts, "plant_feet": True})
    assert planted.info["plant_feet"]["foot"] == "motion"
    np.testing.assert_array_equal(planted.contacts, free.contacts)


def test_chunked_planting_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from kinest_core.postprocess import foot_planting

    m = _motion(150, seed=5)
    c = _spans(150)
    whole = plant_feet(m, c)
    monkeypatch.setattr(foot_planting, "CHUNK_FRAMES", 37)
    chunked = plant_feet(m, c)
    np.testing.assert_allclose(chunked.joint_positions, whole.joint_positions, atol=1e-9)
    np.testing.assert_allclose(chunked.local_rotations, whole.local_rotations, atol=1e-9)
    q = chunked.local_rotations
    assert (np.sum(q[1:] * q[:-1], axis=-1) > 0).all()  # signs continue across chunks


def _kneeling(frames: int = 40) -> Motion:
    """Both knees bent 90 degrees (shins level, feet behind), the body sinking from knees 25 cm above the
    floor until they are 4 cm under it at the middle frame, and rising again."""
    body = Skeleton.neutral(1.75)
    local = np.tile(np.eye(3), (frames, 22, 1, 1))
    bend = Rotation.from_rotvec([np.pi / 2, 0.0, 0.0]).as_matrix()
    local[:, 4] = local[:, 5] = bend
    _, rest = forward_kinematics(local[:1], body.rest_offsets, np.zeros((1, 3)))
    if rest[0, 7, 1] > rest[0, 4, 1]:  # the feet must end behind the knees (the body faces -y here)
        local[:, 4] = local[:, 5] = bend.T
        _, rest = forward_kinematics(local[:1], body.rest_offsets, np.zeros((1, 3)))
    knee_low = 0.25 - 0.29 * np.sin(np.linspace(0.0, np.pi, frames))
    root = np.zeros((frames, 3))
    root[:, 2] = knee_low - rest[0, 4, 2]
    glob, pos = forward_kinematics(local, body.rest_offsets, root)
    q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    return Motion(q, root, pos, body.rest_offsets, fps=60.0)


def test_kneeling_knees_are_lifted_to_the_floor_without_moving_the_pelvis() -> None:
    """No joint ends below the floor: a knee that would goes no lower than the knee clearance, by turning
    the leg about its hip-to-ankle line; the pelvis, and frames where the knees are high, are untouched."""
    motion = _kneeling()
    assert motion.joint_positions[:, [4, 5], 2].min() < -0.03  # the input kneels through the floor
    opts = PlantingOptions()
    out = plant_feet(motion, np.zeros((motion.num_frames, 2), dtype=bool), opts)
    pos = out.joint_positions
    stand = C.standing_heights(motion.rest_offsets)
    assert pos[:, [4, 5], 2].min() >= opts.knee_clearance - 1e-6
    assert np.all(pos[:, [7, 8], 2] >= stand[[7, 8]] - 1e-6) and pos[..., 2].min() >= 0.0
    np.testing.assert_allclose(pos[:, :4], motion.joint_positions[:, :4], atol=1e-9)  # pelvis, hips, spine
    legs = motion.joint_positions[:, [4, 5, 7, 8, 10, 11], 2]
    high = np.all(legs > np.r_[opts.knee_clearance, opts.knee_clearance, stand[[7, 8, 10, 11]]] + 0.01, axis=1)
    assert high.any() and not high.all()
    np.testing.assert_allclose(pos[high], motion.joint_positions[high], atol=1e-6)
    thigh = np.linalg.norm(pos[:, 4] - pos[:, 1], axis=-1)
    shin = np.linalg.norm(pos[:, 7] - pos[:, 4], axis=-1)
    assert np.ptp(thigh) < 1e-9 and np.ptp(shin) < 1e-9  # bones keep their lengths
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1).max()
    assert step < 3 * np.linalg.norm(np.diff(motion.joint_positions, axis=0), axis=-1).max() + 0.01  # no pop
    off = plant_feet(motion, np.zeros((motion.num_frames, 2), dtype=bool), PlantingOptions(knee_clearance=-1.0))
    assert off.joint_positions[:, [4, 5], 2].min() < 0.0  # the clearance is what lifted them
