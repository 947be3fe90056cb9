# SPDX-License-Identifier: GPL-3.0-or-later
"""The packaging logic that does not need a network: markers per target, staging manifest."""

from __future__ import annotations

import tomllib
from kb_helpers import build_module

build = build_module()

TORCH_REQUIRES = [
    "filelock",
    "sympy>=1.13.3",
    'nvidia-cudnn-cu13==9.20.0.48; platform_system == "Linux"',
    'triton==3.7.1; platform_system == "Linux" and python_version < "3.15"',
    'opt-einsum>=3.3; extra == "opt-einsum"',
]


def _applies(platform: str) -> list[str]:
    env = {**build.PLATFORMS[platform].marker_env(), "extra": ""}
    reqs = [build.Requirement(r) for r in TORCH_REQUIRES]
    return [r.name for r in reqs if r.marker is None or r.marker.evaluate(env)]


def test_markers_follow_the_target_not_the_build_machine():
    assert _applies("windows-x64") == ["filelock", "sympy"]
    assert _applies("macos-arm64") == ["filelock", "sympy"]
    assert _applies("linux-x64") == ["filelock", "sympy", "nvidia-cudnn-cu13", "triton"]


def test_committed_manifest_has_no_wheels_and_the_contract_fields():
    data = tomllib.loads((build.REPO / "blender_manifest.toml").read_text())
    assert data["id"] == "kinest" and data["type"] == "add-on"
    assert data["blender_version_min"] == "4.4.0"
    assert "wheels" not in data and "platforms" not in data
    assert all(not p.startswith(("tests", "kinest_core")) for p in data["build"]["paths"])
    assert (build.REPO / "__init__.py").read_text().count("\n") == 3


def test_staging_manifest_lists_wheels_and_platform(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    staging = build.stage(tmp_path / "stage", [wheel], "windows-x64")
    data = tomllib.loads((staging / "blender_manifest.toml").read_text())
    assert data["wheels"] == ["./wheels/demo-1.0-py3-none-any.whl"]
    assert data["platforms"] == ["windows-x64"]
    assert (staging / "wheels" / wheel.name).exists() and (staging / "kinest_blender" / "bake.py").exists()
    assert not (staging / "kinest_blender" / "build.py").exists()
