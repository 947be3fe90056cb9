# SPDX-License-Identifier: GPL-3.0-or-later
"""What the machine can do for training: native bf16 on the CPU, and what ``amp="auto"`` means there."""

from __future__ import annotations

import torch

__all__ = ["cpu_bf16_support", "resolve_amp"]


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
