#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Create .venv (Python 3.11, as Blender 4.4-5.0 use) and install the pinned CPU dependencies.
# Idempotent: does nothing when the installed pins already match the requirement files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${KINEST_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.kinest-setup-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # Linux CPU torch is not on PyPI: point KINEST_TORCH_INDEX at https://download.pytorch.org/whl/cpu
  # where no local wheel is configured (on this project's machines pip finds it on local disk).
  extra=()
  if [ -n "${KINEST_TORCH_INDEX:-}" ]; then extra=(--extra-index-url "$KINEST_TORCH_INDEX"); fi
  .venv/bin/python -m pip install -q "${extra[@]}" -r requirements-dev.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.kinest-setup-*
  touch "$stamp"
fi
