# SPDX-License-Identifier: GPL-3.0-or-later
"""Fused C loops for the factorised SSD op on CPU, compiled on demand for training.

PyTorch runs each elementwise step of :class:`~kinest_core.model.ops.ssd_cpu._FactorisedSSD` as its own
pass over multi-megabyte tensors; ``ssd_fused_cpu.c`` does each group of steps that reads the
same rows in one pass (the matmuls stay in PyTorch). It is plain C with no Python or PyTorch
headers, so building it takes a C compiler and under a second; the shared library is cached per
source, compiler flags and CPU under :func:`cache_dir`.

Nothing builds or loads unless asked: ``kinest train`` and the benchmarks call :func:`enable`;
everything else (inference, the Blender extension) keeps the pure-PyTorch op, which computes the
same values. Without a compiler :func:`enable` says why and the PyTorch op runs.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from kinest_core.outputs import staged_outputs

SOURCE = Path(__file__).with_name("ssd_fused_cpu.c")
#: ``-march=native``: the library is built for, and cached per, the CPU it runs on.
CFLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=gnu11", "-fPIC", "-shared", "-fvisibility=hidden")
_FUNCTIONS = ("scale_rows", "scale_add_rows", "grad_in_rows", "states_forward", "states_backward")

_LIB: ctypes.CDLL | None = None
_LIB_NAME = ""  # the loaded library's file name, for status lines
_LOCK = threading.Lock()
_POOL: tuple[ThreadPoolExecutor, int] | None = None  # (pool, its size)


class FusedKernelError(RuntimeError):
    """The fused CPU loops could not be built or loaded (no compiler, a failed build, ...)."""


def cache_dir() -> Path:
    """Where built libraries live: ``$KINEST_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/kinest``, else ``~/.cache/kinest``."""
    env = os.environ.get("KINEST_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kinest" / "kernels"


def _cpu_id() -> str:
    """The CPU's model and feature flags (``-march=native`` code only runs where they match)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(dict.fromkeys(keep))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise FusedKernelError("no C compiler found (set CC, or install gcc/clang); the PyTorch SSD op is used")
    return cc


def library_path() -> Path:
    """The cached library for this source, compiler, flags and CPU (it may not exist yet)."""
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise FusedKernelError(f"C compiler {cc!r} does not run: {exc}") from exc
    key = hashlib.sha256(
        "\0".join([SOURCE.read_text(), cc, version, " ".join(CFLAGS), _cpu_id(), sys.platform]).encode()
    ).hexdigest()[:16]
    return cache_dir() / f"ssd_fused_cpu_{key}.so"


def build(force: bool = False) -> Path:
    """Compile ``ssd_fused_cpu.c`` into :func:`cache_dir` (atomically) unless already there."""
    if sys.platform == "win32":
        raise FusedKernelError("building the fused CPU loops is supported on Linux and macOS only")
    out = library_path()
    if out.exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_outputs(out) as (tmp,):  # renamed into place: a process loading it never sees half a library
        cmd = [_compiler(), *CFLAGS, str(SOURCE), "-o", str(tmp)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            raise FusedKernelError(f"building the fused CPU loops failed ({' '.join(cmd)}): {exc}") from exc
        if proc.returncode != 0:
            raise FusedKernelError(f"building the fused CPU loops failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
    return out


def _bind(lib: ctypes.CDLL) -> None:
    for name in _FUNCTIONS:
        for suffix in ("f32", "bf16"):
            fn = getattr(lib, f"kinest_{name}_{suffix}")
            fn.restype = None
    if lib.kinest_ssd_fused_version() != 1:
        raise FusedKernelError("the cached fused CPU library has an unexpected version")


def enable(build_if_missing: bool = True) -> str:
    """Load (building first if needed) the fused loops for :class:`_FactorisedSSD`; returns a status line.

    Raises :class:`FusedKernelError` with the reason when they cannot be had; the PyTorch op stays
    in use then. ``KINEST_FUSED_CPU=0`` turns them off.
    """
    global _LIB, _LIB_NAME
    if os.environ.get("KINEST_FUSED_CPU", "1") == "0":
        raise FusedKernelError("turned off by KINEST_FUSED_CPU=0")
    with _LOCK:
        if _LIB is None:
            path = build() if build_if_missing else library_path()
            if not path.exists():
                raise FusedKernelError(f"{path} is not built")
            try:
                lib = ctypes.CDLL(str(path))
                _bind(lib)
            except (OSError, AttributeError) as exc:
                raise FusedKernelError(f"loading {path} failed: {exc}") from exc
            _LIB, _LIB_NAME = lib, path.name
        return f"fused CPU SSD loops on ({_LIB_NAME})"


def try_enable() -> str:
    """:func:`enable`, for callers that go on either way: the status line, or why the PyTorch ops run."""
    try:
        return enable()
    except FusedKernelError as exc:
        return f"PyTorch ops (fused CPU loops off: {exc})"


def disable() -> None:
    """Go back to the pure-PyTorch op (the library stays loaded in the process)."""
    global _LIB
    _LIB = None


def active() -> bool:
    return _LIB is not None


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def _arg(a: Any) -> Any:
    if isinstance(a, torch.Tensor) or a is None:
        return _ptr(a)
    return ctypes.c_int64(int(a))


def run(name: str, bf16: bool, total: int, *args: Any) -> None:
    """Call ``kinest_<name>_<dtype>(start, stop, *args)`` over ``range(total)`` split across torch's threads.

    ctypes drops the GIL during the call, so the pieces run in parallel; with one torch thread
    (how ``kinest train`` runs on small CPUs) it is one direct call.
    """
    global _POOL
    lib = _LIB
    if lib is None:
        raise FusedKernelError("fused CPU loops are not enabled")
    fn = getattr(lib, f"kinest_{name}_{'bf16' if bf16 else 'f32'}")
    cargs = [_arg(a) for a in args]
    threads = min(torch.get_num_threads(), total)
    if threads <= 1:
        fn(ctypes.c_int64(0), ctypes.c_int64(total), *cargs)
        return
    with _LOCK:
        if _POOL is None or _POOL[1] < threads:
            _POOL = (ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kinest-ssd"), threads)
        pool = _POOL[0]
    bounds = [total * k // threads for k in range(threads + 1)]
    futures = [
        pool.submit(fn, ctypes.c_int64(bounds[k]), ctypes.c_int64(bounds[k + 1]), *cargs) for k in range(threads)
    ]
    for fut in futures:
        fut.result()
