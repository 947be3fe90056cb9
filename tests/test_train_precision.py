# SPDX-License-Identifier: GPL-3.0-or-later
"""``TrainConfig.amp`` (bf16 autocast, CPU too), ``matmul_precision`` and ``threads`` in ``train``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from kinest_core.training.mocap import convert_bvh
from kinest_core.training.trainer import TrainConfig, train

FIX = Path(__file__).parent / "fixtures" / "mocap"


@pytest.fixture(scope="module")
def motions() -> list:
    out = convert_bvh(str(FIX / "02_01_cut.bvh")) + convert_bvh(str(FIX / "accad_Male2_C3_Run_cut.bvh"))
    for m, name in zip(out, ("02_01_cut", "accad_Male2_C3_Run_cut"), strict=True):
        m.info["source"] = name
    return out


def _tiny(iterations: int, **kw: object) -> TrainConfig:
    return TrainConfig(
        model="kinest",
        model_config={"preset": "tiny"},
        batch_size=4,
        iterations=iterations,
        log_every=1,
        checkpoint_every=0,
        val_every=0,
        threads=1,
        device="cpu",
        **kw,  # type: ignore[arg-type]
    )


def test_amp_on_cpu_trains_with_finite_loss_and_saves(motions: list, tmp_path: Path) -> None:
    out = tmp_path / "amp"
    s = train(motions, str(out), _tiny(3, amp=True), log=lambda s: None)
    assert s["iterations"] == 3 and s["skipped_steps"] == 0
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    meta = json.loads((out / "checkpoint_last.json").read_text())
    assert meta["training"]["config"]["amp"] is True
    assert (out / "checkpoint_last.safetensors").exists()
    # The weights stay float32 under autocast: the checkpoint is the same kind as without it.
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(out / "checkpoint_last.safetensors")).values()} == {torch.float32}


def test_unknown_matmul_precision_is_refused_with_the_choices(motions: list, tmp_path: Path) -> None:
    before = torch.get_float32_matmul_precision()
    with pytest.raises(ValueError, match="matmul_precision") as err:
        train(motions, str(tmp_path / "bad"), _tiny(1, matmul_precision="tf32"), log=lambda s: None)
    for choice in ("highest", "high", "medium"):
        assert choice in str(err.value)
    assert torch.get_float32_matmul_precision() == before
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_matmul_precision_is_restored_after_the_run(motions: list, tmp_path: Path) -> None:
    before = torch.get_float32_matmul_precision()
    assert before != "high"  # else the test could not tell a restore from a leak
    seen: list[str] = []

    def log(line: str) -> None:
        seen.append(torch.get_float32_matmul_precision())

    train(motions, str(tmp_path / "high"), _tiny(1, matmul_precision="high"), log=log)
    assert "high" in seen  # in force during the run
    assert torch.get_float32_matmul_precision() == before


def test_thread_count_is_restored_after_the_run(motions: list, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[int] = []
        train(motions, str(tmp_path / "t"), _tiny(1), log=lambda s: seen.append(torch.get_num_threads()))
        assert seen and set(seen) == {1}  # the run itself used threads=1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_amp_auto_follows_the_cpu_and_is_recorded(motions: list, tmp_path: Path) -> None:
    from kinest_core.hardware import cpu_bf16_support, resolve_amp

    native = cpu_bf16_support()[0]
    assert TrainConfig().amp == "auto"
    assert resolve_amp("auto", torch.device("cpu"))[0] is native
    assert resolve_amp("auto", torch.device("cuda"))[0] is False  # TF32 there, not bf16
    assert resolve_amp(True, torch.device("cpu"))[0] is True and resolve_amp(False, torch.device("cpu"))[0] is False
    lines: list[str] = []
    out = tmp_path / "auto"
    train(motions, str(out), _tiny(1), log=lines.append)
    meta = json.loads((out / "checkpoint_last.json").read_text())["training"]
    assert meta["config"]["amp"] == "auto" and meta["amp"] is native
    assert any(line.startswith(f"bf16 autocast {'on' if native else 'off'} (auto: ") for line in lines)
    with pytest.raises(ValueError, match="amp must be"):
        train(motions, str(tmp_path / "bad"), _tiny(1, amp="yes"), log=lambda s: None)
    assert not (tmp_path / "bad").exists()


def test_cli_amp_flags_override_the_config() -> None:
    from kinest_core.cli import build_parser

    parser = build_parser()
    base = ["train", "--data", "d", "--out", "o"]
    assert parser.parse_args(base).amp is None  # the config decides (auto by default)
    assert parser.parse_args([*base, "--amp"]).amp is True
    assert parser.parse_args([*base, "--no-amp"]).amp is False
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--amp", "--no-amp"])


_FAULTS_SCRIPT = """
import resource, sys, torch
from kinest_core.hardware import retain_freed_memory
from kinest_core.model import KineST, KineSTConfig
applied = retain_freed_memory()[0] if sys.argv[1] == "retain" else False
torch.set_num_threads(1)
torch.manual_seed(0)
model = KineST(KineSTConfig())
opt = torch.optim.Adam(model.parameters())
x = torch.randn(2, 96, 54)
def step():
    model(x).square().mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step(); step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_retained_freed_memory_spares_page_faults_of_reallocated_blocks() -> None:
    """Two KineST training steps after two others: with glibc's defaults freed activations go back to
    the OS and are faulted in afresh (10,000-40,000 faults here); retained, they are reused (under 1,000)."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    runs = {}
    for mode in ("default", "retain"):
        proc = subprocess.run(
            [sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True, timeout=120
        )
        applied, faults = proc.stdout.split()
        runs[mode] = (applied == "True", int(faults))
    assert runs["retain"][0] is True
    assert runs["default"][1] > 5000
    assert runs["retain"][1] < runs["default"][1] / 5


def test_cpu_training_logs_the_malloc_setting(motions: list, tmp_path: Path) -> None:
    lines: list[str] = []
    train(motions, str(tmp_path / "m"), _tiny(1), log=lines.append)
    assert any(line.startswith("malloc: ") for line in lines)
