# SPDX-License-Identifier: GPL-3.0-or-later
"""What the Blender benchmarks share: a throw-away headless Blender with the add-on, memory probes.

Peak memory is the resident set's high-water mark (Blender and torch allocate outside Python,
so ``tracemalloc`` sees little of it). On Linux the kernel's own mark (``VmHWM``) is reset
before each stage through ``/proc/self/clear_refs``; elsewhere a thread samples the RSS with
psutil every 5 ms.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[1]


def start_blender() -> ModuleType:
    """``bpy`` with the repository's add-on registered, in an empty scene (a temporary user folder)."""
    user = tempfile.mkdtemp(prefix="kinest-bench-user-")
    os.environ["BLENDER_USER_RESOURCES"] = user
    atexit.register(shutil.rmtree, user, True)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import bpy

    import kinest_blender

    kinest_blender.register()
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """Resident memory of this process now (MB)."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


class PeakRss:
    """High-water mark of this process's resident memory since :meth:`reset` (MB)."""

    def __init__(self) -> None:
        self._kernel = _status_kb("VmHWM") is not None and self._clear()
        self._peak = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @staticmethod
    def _clear() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            return True
        except OSError:
            return False

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, rss_mb())

    def reset(self) -> None:
        if self._kernel:
            self._clear()
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def peak_mb(self) -> float:
        if self._kernel:
            kb = _status_kb("VmHWM")
            return kb / 1024 if kb is not None else 0.0
        return max(self._peak, rss_mb())

    @property
    def method(self) -> str:
        return "VmHWM reset via /proc/self/clear_refs" if self._kernel else "psutil RSS sampled every 5 ms"


def machine() -> dict[str, object]:
    """What the numbers were measured on (and how busy it was)."""
    import platform

    info: dict[str, object] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "")
        info["cpu"] = model
    except OSError:
        pass
    try:
        info["load_avg_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    info["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return info


class Stopwatch:
    """Wall and CPU seconds of a stage (CPU time above wall time shows both cores were used)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def print_and_exit(res: dict[str, Any], as_json: bool, width: int) -> NoReturn:
    """Print the results (one JSON line, or aligned ``key value`` lines) and leave without Blender's
    teardown, which takes long for a large scene and adds nothing to the numbers."""
    if as_json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:{width}s} {v:.3f}" if isinstance(v, float) else f"{k:{width}s} {v}")
    sys.stdout.flush()
    os._exit(0)
