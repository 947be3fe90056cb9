# SPDX-License-Identifier: GPL-3.0-or-later
"""What the machine can do: which device to run on, native bf16 on the CPU, what ``amp="auto"`` means there,
and a malloc setting that spares CPU training steps their page faults."""

from __future__ import annotations

import ctypes
import platform

import torch

__all__ = ["cpu_bf16_support", "resolve_amp", "hardware_description", "resolve_device", "retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit (``DEFAULT_MMAP_THRESHOLD_MAX``): blocks up to this size can
#: come from the heap, and so be reused, instead of being mapped afresh on each allocation.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX on x86, BF16 on Arm), and why.

    Without it torch emulates bf16 matmuls and autocast makes training slower, so bf16 timings
    are only worth taking where this is True. Reads the Linux ``/proc/cpuinfo`` flags; torch's
    own ``get_cpu_capability()`` names AMX where it uses it.
    """
    cap = torch.backends.cpu.get_cpu_capability()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    hits = sorted(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    if hits:
        return True, f"CPU flags {', '.join(hits)} (torch CPU capability {cap})"
    if "AMX" in cap.upper() or "BF16" in cap.upper():
        return True, f"torch CPU capability {cap}"
    where = "in /proc/cpuinfo" if flags else "(no /proc/cpuinfo flags to read)"
    return (
        False,
        f"no avx512_bf16, amx_bf16 or bf16 CPU flag {where}, torch CPU capability {cap}: bf16 would be emulated",
    )


def resolve_amp(amp: bool | str, device: torch.device) -> tuple[bool, str]:
    """Whether training runs its forward pass under bf16 autocast, and why.

    ``"auto"`` turns it on for CPUs with native bf16 (training steps about 1.5x faster there, the
    weights and the loss staying float32) and off elsewhere: emulated bf16 is slower, and on CUDA
    TF32 (``matmul_precision="high"``) was as fast at batch 256 on an H100 without bf16's rounding.
    """
    if isinstance(amp, bool):
        return amp, "set in the config"
    if amp != "auto":
        raise ValueError(f'amp must be true, false or "auto", got {amp!r}')
    if device.type != "cpu":
        return False, f'auto: off on {device.type} (use matmul_precision "high" for TF32)'
    ok, why = cpu_bf16_support()
    return ok, f"auto: {why}"


def retain_freed_memory(trim_threshold: int = 1 << 31) -> tuple[bool, str]:
    """Make glibc's malloc keep freed blocks of up to 32 MiB for reuse instead of unmapping them.

    A CPU training step allocates and frees hundreds of MB of activations. By default glibc
    returns blocks above its mmap threshold to the OS at once, and the next step page-faults
    them in again: about 50,000 minor faults per KineST step at batch 8 here, 5-8 % of a float32
    step and 10-12 % of a bf16 one (``docs/benchmarks.md``). With the threshold at its
    maximum, and the heap trimmed only when more than ``trim_threshold`` bytes lie free at its top,
    those blocks are reused. Process-wide and not undone: the process keeps that memory until it
    exits, so this is for training processes, not for Blender. Anywhere but glibc it does nothing.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False, f"not glibc ({platform.system()} {platform.libc_ver()[0] or 'unknown libc'}): malloc left as is"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError) as exc:
        return False, f"no mallopt ({exc}): malloc left as is"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) != 1 or mallopt(_M_TRIM_THRESHOLD, trim_threshold) != 1:
        return False, "mallopt refused the settings: malloc left as is"
    return (
        True,
        f"glibc keeps freed blocks up to {MMAP_THRESHOLD_MAX >> 20} MiB (trims above {trim_threshold >> 20} MiB)",
    )


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` (CUDA where PyTorch sees a GPU, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but this PyTorch sees no CUDA GPU; use 'cpu' or 'auto'")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def hardware_description(device: torch.device, world_size: int = 1) -> str:
    """E.g. ``"1 x NVIDIA H100 80GB HBM3"`` or ``"CPU: AMD EPYC ... (2 threads)"``."""
    if device.type == "cuda":
        return f"{world_size} x {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU: {name} ({torch.get_num_threads()} threads)" + (f" x {world_size} processes" if world_size > 1 else "")
