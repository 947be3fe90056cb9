# SPDX-License-Identifier: GPL-3.0-or-later
"""Inference modes, padding, placement, progress/cancel, seams, checkpoints and the model's size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kinest_core.bench import synthetic_tracking
from kinest_core.inference import OFFLINE_OVERLAP, Cancelled, CancelToken, InferenceStats, reconstruct, window_starts
from kinest_core.model import KineST, KineSTConfig, load_checkpoint, save_checkpoint
from kinest_core.skeleton import HEAD, PARENTS, Skeleton
from kinest_core.types import Motion, TrackingSequence


@pytest.fixture(scope="module")
def tiny_model() -> KineST:
    torch.manual_seed(0)
    model = KineST(KineSTConfig.tiny()).eval()
    with torch.no_grad():  # random but non-trivial output (the head starts at zero weight)
        model.head.weight.normal_(0, 0.3)
    return model


def test_paper_model_has_about_11m_parameters() -> None:
    n = KineST(KineSTConfig()).num_parameters()
    assert 10e6 <= n <= 13e6


def test_model_rejects_wrong_window_and_starts_at_rest_pose() -> None:
    model = KineST(KineSTConfig.tiny())
    with pytest.raises(ValueError, match="24 frames"):
        model(torch.zeros(1, 23, 54))
    out = model(torch.randn(2, 24, 54)).reshape(2, 24, 22, 6)
    assert torch.allclose(out, torch.tensor([1.0, 0, 0, 0, 1, 0]).expand_as(out))


def test_window_starts_cover_the_sequence() -> None:
    assert window_starts(200, 96, "protocol") == [0, 96, 104]
    s = window_starts(200, 96, "offline", overlap=32)
    assert s[0] == 0 and s[-1] == 104 and all(b - a <= 64 for a, b in zip(s, s[1:], strict=False))
    assert window_starts(100, 96, "online", stride=2) == [0, 2, 4]


@pytest.mark.parametrize("mode", ["offline", "online", "protocol"])
def test_modes_place_the_head_on_the_tracked_head(tiny_model: KineST, mode: str) -> None:
    tracking = synthetic_tracking(130)
    motion = reconstruct(tracking, model=tiny_model, mode=mode, device="cpu", stride=4)
    assert motion.local_rotations.shape == (130, 22, 4)
    np.testing.assert_allclose(np.linalg.norm(motion.local_rotations, axis=-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(motion.joint_positions[:, HEAD], tracking.head[:, :3, 3], atol=1e-9)
    # bone lengths are those of the body it was placed on
    bones = np.linalg.norm(motion.joint_positions[:, 1:] - motion.joint_positions[:, list(PARENTS[1:])], axis=-1)
    np.testing.assert_allclose(
        bones, np.broadcast_to(np.linalg.norm(motion.rest_offsets[1:], axis=-1), bones.shape), atol=1e-9
    )
    assert np.all(np.sum(motion.local_rotations[1:] * motion.local_rotations[:-1], axis=-1) >= 0)  # continuous signs


def test_online_mode_is_causal(tiny_model: KineST) -> None:
    a = synthetic_tracking(80)
    b = synthetic_tracking(80)
    b.head[50:, :3, 3] += 0.3  # change the future after frame 49
    ma = reconstruct(a, model=tiny_model, mode="online", device="cpu")
    mb = reconstruct(b, model=tiny_model, mode="online", device="cpu")
    np.testing.assert_allclose(ma.local_rotations[:50], mb.local_rotations[:50], atol=1e-6)
    assert not np.allclose(ma.local_rotations[50:], mb.local_rotations[50:], atol=1e-4)


def test_short_sequences_are_padded_not_refused(tiny_model: KineST) -> None:
    for n in (1, 2, 10, 23):
        motion = reconstruct(synthetic_tracking(n), model=tiny_model, device="cpu")
        assert motion.num_frames == n and np.isfinite(motion.joint_positions).all()


def _jitter_per_frame(pos: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(pos, n=3, axis=0), axis=-1).mean(axis=-1)


class WindowContextNet(torch.nn.Module):
    """A known function of the whole window, as a network is: each frame's pelvis yaw is the
    head's height in that frame plus a term from the window's mean head position. The same frame
    gets different answers from different windows, which is what makes seams."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.config = KineSTConfig.tiny()
        self.config.window = window

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        head_z = features[..., 38]
        context = (
            features[..., 45:48].mean(dim=1, keepdim=True).norm(dim=-1) * 50
            + features[..., 38].mean(1, keepdim=True) * 5
        )
        yaw = head_z + context
        out = torch.zeros(features.shape[:-1] + (22, 6))
        out[..., :, 0] = 1.0
        out[..., :, 4] = 1.0
        out[..., 0, 0], out[..., 0, 1] = torch.cos(yaw), torch.sin(yaw)
        out[..., 0, 3], out[..., 0, 4] = -torch.sin(yaw), torch.cos(yaw)
        return out.reshape(features.shape[:-1] + (132,))


def test_offline_blending_hides_window_seams() -> None:
    window = 48
    net = WindowContextNet(window)
    tracking = synthetic_tracking(400, noise=0.0)
    # The network's window blending alone: no foot planting (it moves the legs after the network).
    prot = _jitter_per_frame(
        reconstruct(tracking, model=net, mode="protocol", device="cpu", plant_feet=False).joint_positions
    )
    offl = _jitter_per_frame(
        reconstruct(tracking, model=net, mode="offline", device="cpu", overlap=16, plant_feet=False).joint_positions
    )
    to_metric = 60.0**3 / 100  # the jitter metric's unit (m/s^3 / 100); real motion is about 4
    seams = np.arange(window, 400 - 3, window)
    near_prot = np.concatenate([prot[s - 3 : s] for s in seams])
    assert near_prot.max() > 1000 * np.median(prot)  # the test sees a seam when there is one
    assert near_prot.max() * to_metric > 20
    # blended: the worst frame stays far below the jitter of real human motion
    assert offl.max() * to_metric < 1.0
    assert offl.max() < 0.01 * prot.max()


def test_progress_and_cancel(tiny_model: KineST) -> None:
    tracking = synthetic_tracking(400)
    seen: list[tuple[int, int]] = []
    reconstruct(tracking, model=tiny_model, device="cpu", batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (400, 400) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    token = CancelToken()

    def stop_after_first(done: int, total: int) -> None:
        token.cancel()

    with pytest.raises(Cancelled):
        reconstruct(tracking, model=tiny_model, device="cpu", batch_size=2, progress=stop_after_first, cancel=token)


def test_thread_cap_is_restored(tiny_model: KineST) -> None:
    before = torch.get_num_threads()
    stats = InferenceStats()
    reconstruct(synthetic_tracking(50), model=tiny_model, device="cpu", num_threads=1, stats=stats)
    assert torch.get_num_threads() == before and stats.frames == 50 and stats.windows >= 1


def test_checkpoint_roundtrip_without_pickles(tmp_path, tiny_model: KineST) -> None:
    base = save_checkpoint(tmp_path / "ck", tiny_model, {"training": {"summary": "test"}})
    assert (tmp_path / "ck.safetensors").exists()
    meta = json.loads((tmp_path / "ck.json").read_text())
    assert meta["config"]["width"] == 32 and meta["parameters"] == tiny_model.num_parameters()
    loaded, _ = load_checkpoint(base)
    x = torch.randn(1, 24, 54)
    assert torch.allclose(loaded(x), tiny_model(x))
    tracking = synthetic_tracking(60)
    a = reconstruct(tracking, model=tiny_model, device="cpu")
    b = reconstruct(tracking, model=str(tmp_path / "ck.safetensors"), device="cpu")
    np.testing.assert_allclose(a.joint_positions, b.joint_positions, atol=1e-6)
    meta["config"]["width"] = 48
    (tmp_path / "ck.json").write_text(json.dumps(meta))
    with pytest.raises((ValueError, RuntimeError)):
        load_checkpoint(base)


def test_motion_and_tracking_npz_roundtrip(tmp_path, tiny_model: KineST) -> None:
    tracking = synthetic_tracking(40)
    tracking.save_npz(str(tmp_path / "t.npz"))
    t2 = TrackingSequence.load_npz(str(tmp_path / "t.npz"))
    np.testing.assert_allclose(t2.head, tracking.head)
    motion = reconstruct(t2, model=tiny_model, device="cpu", body_height=1.6)
    assert abs(Skeleton(motion.rest_offsets).height - 1.6) < 1e-9
    motion.save_npz(str(tmp_path / "m.npz"))
    with np.load(tmp_path / "m.npz") as z:
        assert {
            "local_rotations",
            "root_translation",
            "joint_positions",
            "fps",
            "joint_names",
            "parents",
            "rest_offsets",
        } <= set(z.files)
        assert z["joint_names"][15] == "head"
    m2 = Motion.load_npz(str(tmp_path / "m.npz"))
    np.testing.assert_allclose(m2.joint_positions, motion.joint_positions)


def test_bad_tracking_npz_is_refused_clearly(tmp_path) -> None:
    np.savez(tmp_path / "bad.npz", times=np.arange(3.0), head=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="left_wrist"):
        TrackingSequence.load_npz(str(tmp_path / "bad.npz"))
    h = np.tile(np.eye(4), (3, 1, 1))
    h[1, 0, 3] = np.nan
    np.savez(tmp_path / "nan.npz", times=np.arange(3.0), head=h, left_wrist=h, right_wrist=h)
    with pytest.raises(ValueError, match="frame 1"):
        TrackingSequence.load_npz(str(tmp_path / "nan.npz"))


# -- hour-long takes: windows in batches, blended as they come, post-processing in chunks ------------


def _reference_offline(net: torch.nn.Module, tracking: TrackingSequence, overlap: int = OFFLINE_OVERLAP) -> Motion:
    """Offline mode the plain way: every window's prediction held at once, blended, then one pass of
    forward kinematics over the whole take (what ``reconstruct`` does in batches and chunks)."""
    from kinest_core import rotations as rot
    from kinest_core import rotations_torch as trot
    from kinest_core.features import canonicalize_positions, tracking_features
    from kinest_core.inference import _blend_weights
    from kinest_core.skeleton import forward_kinematics

    window = net.config.window
    overlap = min(overlap, window // 2)
    n = tracking.num_frames
    t = tracking.transforms()
    starts = window_starts(n, window, "offline", overlap=overlap)
    feats = np.stack(
        [
            tracking_features(t[s : s + window, :, :3, :3], canonicalize_positions(t[s : s + window, :, :3, 3]))
            for s in starts
        ]
    )
    with torch.inference_mode():
        out = torch.cat([net(torch.from_numpy(feats[i : i + 4])) for i in range(0, len(starts), 4)])
    all_q = rot.matrix_to_quat(trot.sixd_to_matrix(out.reshape(len(starts), window, 22, 6).double()).numpy())
    acc = np.zeros((n, 22, 4))
    ref0 = all_q[0, 0]
    for k, s in enumerate(starts):
        filled = np.linalg.norm(acc[s : s + window], axis=-1, keepdims=True) > 0
        q = all_q[k]
        q = np.where(np.sum(q * np.where(filled, acc[s : s + window], ref0), axis=-1, keepdims=True) < 0, -q, q)
        w = _blend_weights(window, overlap)
        if s == 0:
            w[:overlap] = 1.0
        if s + window == n:
            w[-overlap:] = np.maximum(w[-overlap:], 1e-3)
        acc[s : s + window] += q * w[:, None, None]
    local = rot.quat_to_matrix(acc / np.linalg.norm(acc, axis=-1, keepdims=True))
    _, pos = forward_kinematics(local, Skeleton.neutral(1.75).rest_offsets)
    root = tracking.head[:, :3, 3] - pos[:, HEAD]
    quats = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    return Motion(quats, root, pos + root[:, None], Skeleton.neutral(1.75).rest_offsets, 60.0)


@pytest.fixture(scope="module")
def calm_model() -> KineST:
    """A small random network whose outputs are well-conditioned 6D rotations (nothing amplifies
    float32 round-off, so results can be compared across batch sizes)."""
    torch.manual_seed(1)
    model = KineST(KineSTConfig.tiny()).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.02)
    return model


def test_chunked_offline_equals_unchunked(calm_model: KineST, monkeypatch: pytest.MonkeyPatch) -> None:
    import kinest_core.inference as inference

    tracking = synthetic_tracking(1000)
    ref = _reference_offline(calm_model, tracking)
    monkeypatch.setattr(inference, "POST_CHUNK_FRAMES", 97)  # chunk edges inside windows and overlaps
    got = reconstruct(
        tracking,
        model=calm_model,
        device="cpu",
        batch_size=4,
        body_height=1.75,
        pin_hands=False,
        plant_feet=False,
        precision="float32",
    )
    np.testing.assert_allclose(got.local_rotations, ref.local_rotations, atol=1e-5)
    np.testing.assert_allclose(got.joint_positions, ref.joint_positions, atol=1e-5)
    np.testing.assert_allclose(got.root_translation, ref.root_translation, atol=1e-5)


@pytest.mark.parametrize("mode", ["offline", "online", "protocol"])
def test_batches_and_chunks_do_not_change_the_result(
    calm_model: KineST, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import kinest_core.inference as inference

    tracking = synthetic_tracking(700)
    # float32: bf16 matrix products may round differently for another batch size (or thread count)
    kw = {"model": calm_model, "mode": mode, "device": "cpu", "stride": 3, "precision": "float32"}
    one = reconstruct(tracking, batch_size=64, **kw)
    monkeypatch.setattr(inference, "POST_CHUNK_FRAMES", 50)
    many = reconstruct(tracking, batch_size=3, **kw)
    np.testing.assert_allclose(many.local_rotations, one.local_rotations, atol=1e-5)
    np.testing.assert_allclose(many.joint_positions, one.joint_positions, atol=1e-5)
    assert np.all(np.sum(many.local_rotations[1:] * many.local_rotations[:-1], axis=-1) >= 0)  # signs across chunks


class _LinearNet(torch.nn.Module):
    """A network in name only (one linear layer): leaves reconstruct's own memory use to measure."""

    def __init__(self) -> None:
        super().__init__()
        self.config = KineSTConfig.tiny()
        self.config.window = 96
        self.layer = torch.nn.Linear(54, 132)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        eye6 = torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(22)
        return eye6 + 0.05 * torch.tanh(self.layer(features))


def test_memory_grows_with_the_take_only_through_its_own_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy's allocations (tracemalloc sees them) stay near the output's own size: no array per
    window, no full-length temporaries after the network."""
    import tracemalloc

    import kinest_core.inference as inference

    monkeypatch.setattr(inference, "POST_CHUNK_FRAMES", 1024)
    n = 20000
    tracking = synthetic_tracking(n)
    net = _LinearNet().eval()
    tracemalloc.start()
    try:
        motion = reconstruct(tracking, model=net, device="cpu")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    own = motion.local_rotations.nbytes + motion.joint_positions.nbytes + motion.root_translation.nbytes
    inputs = tracking.transforms().nbytes  # one copy of the input poses (n, 3, 4, 4)
    assert peak < 1.3 * (own + inputs), f"peak {peak / 1e6:.0f} MB for {own / 1e6:.0f} MB of output"
