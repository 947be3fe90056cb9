# SPDX-License-Identifier: GPL-3.0-or-later
"""GPU parity and timing: our pure-PyTorch Mamba-2 against ``mamba_ssm`` on shared weights.

Run on a CUDA machine with ``mamba_ssm`` installed (see ../shared/notes/cuda.md for building it):

    python scripts/gpu_parity.py [--json]

For the TFM and SKFM layer shapes it builds ``kinest_core.model.mamba2.Mamba2``, copies its weights
into ``mamba_ssm.modules.mamba2_simple.Mamba2Simple(use_mem_eff_path=False)``, and reports the
max abs difference of the outputs (pass: <= 1e-3) and forward / forward+backward times of
each path. Without CUDA it says so and exits 0 (nothing to compare); without mamba_ssm, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from kinest_core.model.mamba2 import Mamba2

SHAPES = {
    # name: (d_model, headdim, batch, length)
    "tfm": (256, 64, 256, 96),
    "skfm": (64, 16, 256, 96 * 22),
}


def _time(fn, repeats: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats * 1000


def _fwd(m: torch.nn.Module, u: torch.Tensor) -> None:
    with torch.no_grad():
        m(u)


def _fwd_bwd(m: torch.nn.Module, u: torch.Tensor) -> None:
    m.zero_grad(set_to_none=True)
    m(u).square().mean().backward()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to compare (run this on a GPU machine)")
        return 0
    try:
        from mamba_ssm.modules.mamba2_simple import Mamba2Simple
    except ImportError as exc:
        print(f"mamba_ssm is not importable ({exc}); build it first (../shared/tools/build-mamba-ssm.sh)")
        return 2
    dev = torch.device("cuda")
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "layers": {}}
    ok = True
    for name, (d_model, headdim, batch, length) in SHAPES.items():
        torch.manual_seed(0)
        ours = Mamba2(d_model, d_state=16, d_conv=4, expand=2, headdim=headdim, chunk_size=64).to(dev)
        ref = Mamba2Simple(
            d_model, d_state=16, d_conv=4, expand=2, headdim=headdim, chunk_size=64, use_mem_eff_path=False
        ).to(dev)
        ref.load_state_dict(ours.state_dict(), strict=True)  # same names and shapes, or this raises
        u = torch.randn(batch, length, d_model, device=dev)
        with torch.no_grad():
            ours.use_kernels = False
            y_torch = ours(u)
            ours.use_kernels = True
            y_kernel_ours = ours(u)
            y_ref = ref(u)
        diff = (y_torch - y_ref).abs().max().item()
        diff_dispatch = (y_kernel_ours - y_ref).abs().max().item()
        ok &= diff <= 1e-3 and diff_dispatch <= 1e-3

        ours.use_kernels = False
        t_torch = (_time(lambda m=ours, x=u: _fwd(m, x)), _time(lambda m=ours, x=u: _fwd_bwd(m, x)))
        t_ref = (_time(lambda m=ref, x=u: _fwd(m, x)), _time(lambda m=ref, x=u: _fwd_bwd(m, x)))
        results["layers"][name] = {
            "shape": {"d_model": d_model, "headdim": headdim, "batch": batch, "length": length},
            "max_abs_diff_torch_vs_mamba_ssm": diff,
            "max_abs_diff_dispatch_vs_mamba_ssm": diff_dispatch,
            "torch_forward_ms": t_torch[0],
            "torch_fwd_bwd_ms": t_torch[1],
            "mamba_ssm_forward_ms": t_ref[0],
            "mamba_ssm_fwd_bwd_ms": t_ref[1],
        }
    results["pass"] = ok
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{results['device']}, torch {results['torch']}")
        for name, r in results["layers"].items():
            print(
                f"{name}: max|diff| {r['max_abs_diff_torch_vs_mamba_ssm']:.2e}; forward {r['torch_forward_ms']:.1f} ms "
                f"(torch) vs {r['mamba_ssm_forward_ms']:.1f} ms (mamba_ssm); fwd+bwd {r['torch_fwd_bwd_ms']:.1f} vs "
                f"{r['mamba_ssm_fwd_bwd_ms']:.1f} ms"
            )
        print("PASS" if ok else "FAIL: outputs differ by more than 1e-3")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
