# SPDX-License-Identifier: GPL-3.0-or-later
"""Augmentation towards real devices and bodies: device and headset offsets, limb proportions,
speed changes, mirroring, and old configs unchanged."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core import rotations_torch as trot
from kinest_core.io.calibration import Calibration
from kinest_core.skeleton import PARENTS, forward_kinematics_torch
from kinest_core.training import augment as ka
from kinest_core.training import data as kd
from kinest_core.training.mocap import convert_bvh
from kinest_core.training.trainer import TrainConfig, train

FIX = Path(__file__).parent / "fixtures" / "mocap"
REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("generic", "quest", "vive", "index")
OFF = kd.AugmentConfig.none().to_dict()


@pytest.fixture(scope="module")
def motions() -> list:
    out = convert_bvh(str(FIX / "02_01_cut.bvh")) + convert_bvh(str(FIX / "accad_Male2_C3_Run_cut.bvh"))
    for m, name in zip(out, ("02_01_cut", "accad_Male2_C3_Run_cut"), strict=True):
        m.info["source"] = name
    return out


def _windows(motions: list, w: int = 24, b: int = 3) -> tuple[torch.Tensor, ...]:
    return tuple(t.double() for t in kd.MotionWindows(motions, w).sample(b, np.random.default_rng(0)))


def _fk(local: torch.Tensor, root: torch.Tensor, rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b, f = local.shape[:2]
    return forward_kinematics_torch(local, rest[:, None].expand(b, f, 22, 3), root)


def test_mirroring_twice_gives_back_the_original(motions: list) -> None:
    local, root, rest = _windows(motions)
    cfg = kd.AugmentConfig(**{**OFF, "mirror": 1.0})
    g = torch.Generator().manual_seed(0)
    once = kd.augment_motion(local, root, rest, cfg, g)
    twice = kd.augment_motion(*once, cfg, g)
    for a, b in zip(twice, (local, root, rest), strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    assert not torch.allclose(once[0], local)  # the first mirror did change the window
    # the left wrist of the mirrored body is the right wrist reflected across x = 0
    _, pos = _fk(local, root, rest)
    _, mpos = _fk(*once)
    assert torch.allclose(mpos[:, :, 20], pos[:, :, 21] * torch.tensor([-1.0, 1.0, 1.0], dtype=pos.dtype), atol=1e-9)


def test_device_offsets_stay_within_the_family_range(motions: list) -> None:
    local, root, rest = _windows(motions, b=4)
    margin = 0.01
    cfg = kd.AugmentConfig(**{**OFF, "device_families": FAMILIES, "device_margin_m": margin})
    glob, pos = _fk(local, root, rest)
    fam_t = np.array([Calibration.for_family(f).left.translation for f in FAMILIES])
    lo, hi = fam_t.min(0) - margin, fam_t.max(0) + margin
    r_c = np.asarray(Calibration.for_family("generic").left.rotation)  # every family's rotation is this
    mirror = np.diag([-1.0, 1.0, 1.0])
    seen = []
    for seed in range(8):
        r, p = kd.simulate_tracking(glob, pos, cfg, torch.Generator().manual_seed(seed))
        true_r, true_p = glob[:, :, [15, 20, 21]], pos[:, :, [15, 20, 21]]
        assert torch.allclose(r, true_r) and torch.allclose(p[:, :, 0], true_p[:, :, 0])  # no grip angle, head kept
        d = (true_r.transpose(-1, -2) @ (p - true_p).unsqueeze(-1)).squeeze(-1)  # in each joint's frame
        assert float((d - d[:, :1]).abs().max()) < 1e-6  # one offset per window and hand
        for hand, flip in ((1, np.eye(3)), (2, mirror)):
            for e in d[:, 0, hand].numpy():
                # the true offset the error implies, for the family the importer assumed: inside the box
                implied = fam_t - (r_c @ (flip @ e))
                inside = np.all((implied >= lo - 1e-6) & (implied <= hi + 1e-6), axis=1)
                assert inside.any(), (hand, e)
                seen.append(np.linalg.norm(e))
    assert max(seen) > 0.02 and min(seen) < max(seen)  # offsets vary and reach centimetres
    # a grip angle turns the wrists by a constant rotation per window
    cfg = kd.AugmentConfig(**{**OFF, "device_families": ("quest",), "device_rotation_deg": 10.0})
    r, _ = kd.simulate_tracking(glob, pos, cfg, torch.Generator().manual_seed(1))
    rel = glob[:, :, [20, 21]].transpose(-1, -2) @ r[:, :, 1:]
    ang = torch.rad2deg(trot.matrix_to_axis_angle(rel).norm(dim=-1))
    assert float(ang.max()) > 2.0 and float((ang - ang[:, :1]).abs().max()) < 1e-4


def test_headset_offsets_move_the_head_within_the_range(motions: list) -> None:
    local, root, rest = _windows(motions, b=4)
    glob, pos = _fk(local, root, rest)
    cfg = kd.AugmentConfig(**{**OFF, "headset_offset_m": 0.02})
    d_all = []
    for seed in range(6):
        r, p = kd.simulate_tracking(glob, pos, cfg, torch.Generator().manual_seed(seed))
        d = (glob[:, :, 15].transpose(-1, -2) @ (p[:, :, 0] - pos[:, :, 15]).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(p[:, :, 1:], pos[:, :, [20, 21]])  # hands untouched
        d_all.append(d[:, 0])
    d = torch.cat(d_all)
    assert float(d.abs().max()) <= 0.02 + 1e-9 and float(d.abs().max()) > 0.015


def test_scaled_skeleton_changes_each_segment_as_asked(motions: list) -> None:
    local, root, rest = _windows(motions, b=2)
    factors = torch.ones(2, len(ka.BONE_SEGMENTS), dtype=torch.float64)
    names = list(ka.BONE_SEGMENTS)
    factors[0, names.index("forearm")] = 1.2
    factors[0, names.index("thigh")] = 0.9
    factors[1, names.index("spine")] = 1.1
    new_rest, new_root = ka.scale_bones(rest, root, factors)
    assert new_rest.shape == rest.shape == (2, 22, 3)
    _, pos = _fk(local, root, rest)
    _, npos = _fk(local, new_root, new_rest)
    assert npos.shape == pos.shape
    length = lambda x, j: torch.linalg.vector_norm(x[:, :, j] - x[:, :, PARENTS[j]], dim=-1)  # noqa: E731
    for k, joints in enumerate(ka.BONE_SEGMENTS.values()):
        for j in joints:
            ratio = length(npos, j) / length(pos, j)
            assert torch.allclose(ratio, factors[:, k : k + 1].expand_as(ratio), atol=1e-9)
    # the pelvis moves with the legs: 0.9 thigh -> pelvis lower by the leg's length change
    leg = torch.linalg.vector_norm(rest[0, [4, 7]], dim=-1)
    expect = (0.9 * leg[0] + leg[1]) / leg.sum()
    assert torch.allclose(npos[0, :, 0], pos[0, :, 0] * expect, atol=1e-9)
    assert torch.allclose(npos[1, :, 0], pos[1, :, 0], atol=1e-12)  # legs unchanged: pelvis unchanged
    # random factors through the window maker: bone lengths differ from the source's
    cfg = kd.AugmentConfig(**{**OFF, "bone_length_std": 0.05})
    _, _, arest = kd.augment_motion(local, root, rest, cfg, torch.Generator().manual_seed(0))
    ratio = torch.linalg.vector_norm(arest[:, 1:], dim=-1) / torch.linalg.vector_norm(rest[:, 1:], dim=-1)
    assert 0.7 < float(ratio.min()) < 0.999 and 1.001 < float(ratio.max()) < 1.4


def test_time_warp_resamples_the_motion() -> None:
    g = torch.Generator().manual_seed(0)
    frames = 40
    aa = torch.cumsum(torch.randn(frames, 22, 3, generator=g, dtype=torch.float64) * 0.05, dim=0)
    local = trot.axis_angle_to_matrix(aa)
    root = torch.cumsum(torch.randn(frames, 3, generator=g, dtype=torch.float64) * 0.01, dim=0)
    same_l, same_r = ka.time_warp(local, root, 1.0, 30)
    assert torch.allclose(same_l, local[:30], atol=1e-9) and torch.allclose(same_r, root[:30])
    fast_l, fast_r = ka.time_warp(local, root, 1.25, 29)  # frame k is source frame 1.25 k
    assert torch.allclose(fast_l[::4], local[0:36:5], atol=1e-9) and torch.allclose(fast_r[::4], root[0:36:5])
    slow_l, slow_r = ka.time_warp(local, root, 0.8, 30)
    assert torch.allclose(slow_l[::5], local[0:24:4], atol=1e-9)
    # in between: on the geodesic, 0.8 of the way from source frame 0 to 1 at output frame 1
    a = trot.matrix_to_axis_angle(local[0].transpose(-1, -2) @ slow_l[1]).norm(dim=-1)
    full = trot.matrix_to_axis_angle(local[0].transpose(-1, -2) @ local[1]).norm(dim=-1)
    assert torch.allclose(a, 0.8 * full, atol=1e-6)
    assert torch.allclose(slow_r[1], root[0] + 0.8 * (root[1] - root[0]))
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(slow_l @ slow_l.transpose(-1, -2), eye.expand_as(slow_l), atol=1e-9)
    with pytest.raises(ValueError, match="too short"):
        ka.time_warp(local, root, 1.2, 40)


def test_time_warped_windows_keep_bones_and_change_speed(motions: list) -> None:
    mw = kd.MotionWindows(motions, 24)
    rng = np.random.default_rng(0)
    plain = mw.sample(64, np.random.default_rng(0))
    warped = mw.sample(64, rng, time_warp=0.2)
    assert all(a.shape == b.shape for a, b in zip(plain, warped, strict=True))
    local, root, rest = (t.double() for t in warped)
    _, pos = _fk(local, root, rest)
    bones = torch.linalg.vector_norm(pos[:, :, 1:] - pos[:, :, list(PARENTS[1:])], dim=-1)
    assert torch.allclose(bones, torch.linalg.vector_norm(rest[:, None, 1:], dim=-1).expand_as(bones), atol=1e-5)
    # windows of the running take, whose pelvis moves fast and steadily: speeds spread over +/- 20 %
    run = kd.MotionWindows(motions[1:], 24)
    speed = []
    for warp in (0.0, 0.2):
        _, r, _ = run.sample(256, np.random.default_rng(1), time_warp=warp)
        speed.append(torch.linalg.vector_norm(r[:, -1, :2] - r[:, 0, :2], dim=-1))
    ratio = float(speed[1].mean() / speed[0].mean())
    assert 0.9 < ratio < 1.1
    assert float(speed[1].std()) > float(speed[0].std())  # more varied
    # no warp: the random stream and the windows are those of the plain sampler
    again = mw.sample(64, np.random.default_rng(0), time_warp=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, again, strict=True))


def test_old_configs_leave_the_new_augmentations_off(motions: list) -> None:
    old = {k: v for k, v in kd.AugmentConfig().to_dict().items() if k in OFF and k not in _NEW}
    cfg = kd.AugmentConfig.from_dict(old)
    assert cfg == kd.AugmentConfig()
    assert not cfg.device_families and cfg.bone_length_std == 0 and cfg.time_warp == 0
    assert cfg.headset_offset_m == 0 and cfg.headset_rotation_deg == 0 and cfg.device_rotation_deg == 0
    local, root, rest = _windows(motions)
    a = kd.make_batch(local, root, rest, cfg, torch.Generator().manual_seed(5))
    on = kd.AugmentConfig(**{**cfg.to_dict(), "device_families": FAMILIES, "headset_offset_m": 0.02})
    b = kd.make_batch(local, root, rest, on, torch.Generator().manual_seed(5))
    assert not torch.allclose(a.features, b.features)
    for bad in ({"device_families": ["psvr"]}, {"time_warp": 0.6}, {"bone_length_std": -0.1}):
        with pytest.raises(ValueError, match="augment"):
            kd.AugmentConfig.from_dict({**old, **bad})


_NEW = {
    "device_families",
    "device_margin_m",
    "device_rotation_deg",
    "headset_offset_m",
    "headset_rotation_deg",
    "bone_length_std",
    "time_warp",
    "drop_min_frames",
}


def test_training_with_every_real_device_augmentation(motions: list, tmp_path: Path) -> None:
    aug = {
        **kd.AugmentConfig().to_dict(),
        "device_families": list(FAMILIES),
        "device_rotation_deg": 8.0,
        "headset_offset_m": 0.02,
        "headset_rotation_deg": 3.0,
        "bone_length_std": 0.05,
        "time_warp": 0.2,
        "drop_min_frames": 30,
        "drop_max_frames": 90,
    }
    cfg = TrainConfig(
        model_config={"preset": "tiny", "window": 24},
        batch_size=4,
        iterations=2,
        log_every=1,
        checkpoint_every=0,
        val_every=0,
        device="cpu",
        threads=1,
        augment=aug,
    )
    lines: list[str] = []
    s = train(motions, str(tmp_path / "rd"), cfg, log=lines.append)
    assert s["iterations"] == 2 and s["skipped_steps"] == 0
    assert math.isfinite(_last_loss(lines))


def _last_loss(lines: list[str]) -> float:
    loss_lines = [line for line in lines if " loss " in line]
    return float(loss_lines[-1].split(" loss ")[1].split()[0])


def test_every_shipped_config_names_known_augmentation_keys() -> None:
    """``AugmentConfig.from_dict`` ignores keys it does not know: a misspelt key in a config would train
    without the augmentation it names, so the shipped configs are checked here."""
    paths = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json"))
    assert any(p.name == "kinest_gpu_realdevice.json" for p in paths)
    for path in paths:
        aug = TrainConfig.load(str(path)).augment
        unknown = set(aug) - set(kd.AugmentConfig.__dataclass_fields__)
        assert not unknown, f"{path.name}: unknown augment keys {unknown}"
        kd.AugmentConfig.from_dict(aug)  # ranges checked
    real = kd.AugmentConfig.from_dict(TrainConfig.load(str(REPO / "configs" / "kinest_gpu_realdevice.json")).augment)
    assert real.device_families and real.time_warp > 0 and real.bone_length_std > 0 and real.headset_offset_m > 0
    assert TrainConfig.load(str(REPO / "configs" / "kinest_gpu_realdevice.json")).val_split
