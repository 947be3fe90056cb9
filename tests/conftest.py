# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared test set-up: a small thread budget, paths to fixtures and the optional shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One core per pytest-xdist worker: threads that wait on each other across workers only spin.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is not present on this machine")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _fused_ssd_loops_off_after_each_test():
    """``kinest train`` turns the fused CPU loops on for the whole process; each test starts without."""
    yield
    from kinest_core.model.ops import ssd_fused_cpu

    ssd_fused_cpu.disable()
