# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance: a broken checkpoint is one CheckpointError line naming the file, never a traceback or a NaN motion."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from kinest_core.cli import main
from kinest_core.errors import CheckpointError
from kinest_core.model import KineST, KineSTConfig, load_checkpoint, save_checkpoint

FIX = Path(__file__).resolve().parent / "fixtures" / "vr"
TAKE = FIX / "km_moore_cross_domain23_first300.csv"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = KineST(KineSTConfig.tiny()).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", model, {"name": "tiny"})


def _copy(good: Path, dst: Path) -> Path:
    shutil.copy(good.with_suffix(".safetensors"), dst.with_suffix(".safetensors"))
    shutil.copy(good.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def _edit_json(base: Path, fn: Callable[[dict], object]) -> None:
    doc = json.loads(base.with_suffix(".json").read_text())
    base.with_suffix(".json").write_text(json.dumps(fn(doc)))


def _set_config(key: str, value: object) -> Callable[[dict], dict]:
    def f(doc: dict) -> dict:
        doc["config"][key] = value
        return doc

    return f


def _weights_bytes(base: Path, fn: Callable[[bytes], bytes]) -> None:
    p = base.with_suffix(".safetensors")
    p.write_bytes(fn(p.read_bytes()))


def _nan_weights(base: Path, value: float) -> None:
    from safetensors.torch import load_file

    state = load_file(str(base.with_suffix(".safetensors")))
    k = sorted(state)[3]
    state[k] = state[k].clone()
    state[k].view(-1)[0] = value
    save_file(state, str(base.with_suffix(".safetensors")))


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated_half": (lambda b: _weights_bytes(b, lambda d: d[: len(d) // 2]), "safetensors"),
    "truncated_header": (lambda b: _weights_bytes(b, lambda d: d[:5]), "safetensors"),
    "empty_weights": (lambda b: _weights_bytes(b, lambda d: b""), "safetensors"),
    "random_weights": (
        lambda b: _weights_bytes(b, lambda d: bytes(np.random.default_rng(0).integers(0, 256, 999, dtype=np.uint8))),
        "safetensors",
    ),
    "header_lies": (lambda b: _weights_bytes(b, lambda d: (10**9).to_bytes(8, "little") + d[8:]), "safetensors"),
    "flipped_header_byte": (lambda b: _weights_bytes(b, lambda d: d[:20] + b"\xff" + d[21:]), "safetensors"),
    "json_list": (lambda b: _edit_json(b, lambda d: [d]), "json list"),
    "json_string": (lambda b: _edit_json(b, lambda d: "KineST"), "json str"),
    "json_number": (lambda b: _edit_json(b, lambda d: 3), "json int"),
    "json_invalid": (lambda b: b.with_suffix(".json").write_text('{"config": {'), "not readable json"),
    "json_binary": (lambda b: b.with_suffix(".json").write_bytes(b"\xff\xfe\x00junk"), "not readable json"),
    "json_deep": (lambda b: b.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000), "json"),
    "json_missing": (lambda b: b.with_suffix(".json").unlink(), "not found"),
    "weights_missing": (lambda b: b.with_suffix(".safetensors").unlink(), "not found"),
    "config_list": (lambda b: _edit_json(b, lambda d: {**d, "config": [1, 2]}), "'config' is a json list"),
    "config_string": (lambda b: _edit_json(b, lambda d: {**d, "config": "tiny"}), "'config' is a json str"),
    "width_mismatch": (lambda b: _edit_json(b, _set_config("width", 48)), "do not fit"),
    "width_absurd": (lambda b: _edit_json(b, _set_config("width", 10**9)), "'width'"),
    "width_string": (lambda b: _edit_json(b, _set_config("width", "wide")), "'width'"),
    "width_float": (lambda b: _edit_json(b, _set_config("width", 32.5)), "'width'"),
    "width_bool": (lambda b: _edit_json(b, _set_config("width", True)), "'width'"),
    "width_negative": (lambda b: _edit_json(b, _set_config("width", -32)), "'width'"),
    "window_absurd": (lambda b: _edit_json(b, _set_config("window", 10**12)), "'window'"),
    "heads_not_dividing": (lambda b: _edit_json(b, _set_config("attn_heads", 7)), "config"),
    "dropout_absurd": (lambda b: _edit_json(b, _set_config("dropout", 5)), "'dropout'"),
    "uks_order_wrong": (lambda b: _edit_json(b, _set_config("uks_order", [0] * 22)), "'uks_order'"),
    "joints_wrong": (lambda b: _edit_json(b, _set_config("num_joints", 24)), "'num_joints'"),
    "architecture_wrong": (lambda b: _edit_json(b, lambda d: {**d, "architecture": "GPT"}), "not kinest"),
    "nan_weights": (lambda b: _nan_weights(b, float("nan")), "nan or inf"),
    "inf_weights": (lambda b: _nan_weights(b, float("inf")), "nan or inf"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_checkpoint_is_one_clear_line(tmp_path: Path, good: Path, case: str) -> None:
    base = _copy(good, tmp_path / "ck")
    damage, words = CASES[case]
    damage(base)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(base)
    msg = str(ei.value)
    assert "\n" not in msg and str(tmp_path) in msg and words.lower() in msg.lower(), msg


@pytest.mark.parametrize("case", ["truncated_half", "json_list", "width_absurd", "nan_weights"])
def test_broken_checkpoint_through_the_cli(
    tmp_path: Path, good: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _copy(good, tmp_path / "ck")
    CASES[case][0](base)
    out = tmp_path / "out.npz"
    code = main(["reconstruct", str(TAKE), "-o", str(out), "--checkpoint", str(base), "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("kinest reconstruct: error:") and str(base) in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_good_checkpoint_still_loads(good: Path) -> None:
    model, meta = load_checkpoint(good)
    assert meta["name"] == "tiny" and model.config.width == 32
