# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the Blender tests: the built zip, the installed extension, a clean scene."""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from kb_helpers import PKG, USER_RESOURCES, bpy, build_module, mod


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(USER_RESOURCES, ignore_errors=True)


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension zip with only the kinest_core wheel, through Blender's builder and validator."""
    build = build_module()

    out = tmp_path_factory.mktemp("zip")
    (zp,) = build.build(out, ["linux-x64"], wheel_set="core")
    return zp


@pytest.fixture(scope="session")
def addon(built_zip: Path) -> ModuleType:
    """Install the zip with Blender's extension operator into the temporary user repo."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(built_zip), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}
    assert PKG in sys.modules, "the extension did not register"
    return importlib.import_module(PKG + ".kinest_blender")


@pytest.fixture
def clean(addon: ModuleType) -> Iterator[bpy.types.Context]:
    """An empty scene with the extension enabled, nothing running afterwards."""
    bpy.ops.wm.read_homefile(use_empty=True)
    yield bpy.context
    mod("reconstruct_op").cancel_all(abandon=True)
    mod("reconstruct_op").close_worker_sessions()  # no worker process outlives a test


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random-weight KineST checkpoint (no trained one ships yet): real network, quick on CPU."""
    import torch

    from kinest_core.model import KineST, KineSTConfig, save_checkpoint

    torch.manual_seed(0)
    cfg = KineSTConfig(
        width=64, joint_width=16, ffn_width=128, attn_heads=4, attn_ffn_width=128, tfm_headdim=16, skfm_headdim=8
    )
    base = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", KineST(cfg), {"name": "tiny-random"})
    return base.with_suffix(".safetensors")
