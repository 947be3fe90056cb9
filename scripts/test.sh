#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Set up (if needed) and run the whole test suite: lint, format check, types, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/test_ssd.py -k reverse
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
ruff check kinest_core kinest_blender tests benchmarks scripts
ruff format --check kinest_core kinest_blender tests benchmarks scripts
mypy
# One pytest-xdist worker per core (tests/conftest.py gives each one torch thread).
python -m pytest -q -n auto --dist worksteal "$@"
