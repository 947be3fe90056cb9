# SPDX-License-Identifier: GPL-3.0-or-later
"""The network's number format at inference: bf16 by default where the CPU has it, float32 on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core import worker
from kinest_core.bench import synthetic_tracking
from kinest_core.cli import build_parser
from kinest_core.hardware import cpu_bf16_support
from kinest_core.inference import load_model, reconstruct
from kinest_core.model import KineST, KineSTConfig
from kinest_core.precision import PRECISIONS, Float32Island, inference_view, resolve_precision
from kinest_core.training.data import tracked_joints
from kinest_core.training.evaluate import tracking_from_joints
from kinest_core.training.mocap import convert_bvh

BF16, _ = cpu_bf16_support()


def _record_dtypes(net: torch.nn.Module) -> tuple[dict[str, torch.dtype], list[torch.utils.hooks.RemovableHandle]]:
    """Output dtype of the embedding and of the rotation head at their last call."""
    seen: dict[str, torch.dtype] = {}
    hooks = [
        net.embed.register_forward_hook(lambda m, i, o: seen.__setitem__("embed", o.dtype)),
        net.head.register_forward_hook(lambda m, i, o: seen.__setitem__("head", o.dtype)),
    ]
    return seen, hooks


def test_resolve_precision() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu)[0] == "float32"
    assert resolve_precision("bfloat16", cpu)[0] == "bfloat16"
    assert resolve_precision("auto", cpu)[0] == ("bfloat16" if BF16 else "float32")
    assert resolve_precision("auto", torch.device("cuda"))[0] == "float32"
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("int8", cpu)
    assert worker.PRECISIONS == PRECISIONS  # the torch-free copy the worker checks requests against


def test_default_runs_bf16_where_supported_and_float32_switch_runs_float32() -> None:
    torch.manual_seed(0)
    net = KineST(KineSTConfig.tiny()).eval()
    seen, hooks = _record_dtypes(net)
    tracking = synthetic_tracking(60)
    try:
        m = reconstruct(tracking, model=net, device="cpu", precision="float32")
        assert m.info["precision"] == "float32"
        assert seen == {"embed": torch.float32, "head": torch.float32}
        seen.clear()
        m = reconstruct(tracking, model=net, device="cpu")
        if BF16:
            assert m.info["precision"] == "bfloat16"
            # The trunk ran under bf16 autocast, the output head in float32 (a Float32Island).
            assert seen == {"embed": torch.bfloat16, "head": torch.float32}
        else:
            assert m.info["precision"] == "float32"
            assert seen == {"embed": torch.float32, "head": torch.float32}
    finally:
        for h in hooks:
            h.remove()


def test_bf16_view_shares_the_weights() -> None:
    torch.manual_seed(0)
    net = KineST(KineSTConfig.tiny()).eval()
    view = inference_view(net, "bfloat16")
    assert inference_view(net, "bfloat16") is view and inference_view(net, "float32") is net
    assert isinstance(view.head, Float32Island) and not isinstance(net.head, Float32Island)
    assert {p.data_ptr() for p in view.parameters()} == {p.data_ptr() for p in net.parameters()}
    with torch.no_grad():
        net.embed.weight.add_(1.0)  # a change to the model is seen through the view
    x = torch.randn(1, net.config.window, net.config.input_dim)
    with torch.inference_mode():
        torch.testing.assert_close(view(x), net(x))  # no autocast: the same float32 network


@pytest.mark.skipif(not BF16, reason="this CPU has no native bf16: the default is float32")
def test_default_precision_matches_float32_on_the_shipped_model(fixtures_dir: Path) -> None:
    """Offline, hands pinned, the shipped checkpoint: bf16 and float32 place the joints alike."""
    net, _ = load_model(None, device="cpu")
    (motion,) = convert_bvh(str(fixtures_dir / "mocap" / "02_01_cut.bvh"))[:1]
    r, p = tracked_joints(motion)
    tracking = tracking_from_joints(r, p)
    fast = reconstruct(tracking, model=net, device="cpu", body_height=1.7)
    ref = reconstruct(tracking, model=net, device="cpu", body_height=1.7, precision="float32")
    assert fast.info["precision"] == "bfloat16" and ref.info["precision"] == "float32"
    gap = np.linalg.norm(fast.joint_positions - ref.joint_positions, axis=-1)
    assert gap.mean() < 0.002, f"bf16 moved the joints by {100 * gap.mean():.3f} cm on average"
    assert gap.max() < 0.03
    assert not np.array_equal(fast.joint_positions, ref.joint_positions)  # it really ran another path


def test_cli_float32_switch() -> None:
    parser = build_parser()
    assert parser.parse_args(["reconstruct", "in.csv", "-o", "out.npz"]).precision == "auto"
    assert parser.parse_args(["reconstruct", "in.csv", "-o", "out.npz", "--float32"]).precision == "float32"
