# SPDX-License-Identifier: GPL-3.0-or-later
"""All project benchmarks in one run: ``python benchmarks/run.py [--quick] [--json]``.

Reuses ``kinest bench``'s code and keys (``kinest_core.bench``) and adds a whole training step
of the full model with the fast scan against the same step with the plain chunked scan.
Every ratio is measured in the same process, so a noisy machine changes both sides alike;
CPU time (not wall time) is used for the training steps, which is steadier under load.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from kinest_core.bench import run_all
from kinest_core.model import KineST, KineSTConfig


def training_step_ratio(batch: int = 8, repeats: int = 2) -> dict[str, float]:
    """CPU seconds of one forward+backward+Adam step: fast scan vs the plain chunked scan."""
    x = torch.randn(batch, 96, 54)
    res: dict[str, float] = {}
    for scan in ("fast", "reference"):
        torch.manual_seed(0)
        model = KineST(KineSTConfig())
        model.set_scan(scan)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        best = float("inf")
        for _ in range(repeats + 1):
            t = time.process_time()
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            best = min(best, time.process_time() - t)
        res[f"train_step_{scan}_cpu_s"] = best
    res["train_step_speedup"] = res["train_step_reference_cpu_s"] / res["train_step_fast_cpu_s"]
    res["train_step_batch"] = float(batch)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run_all(quick=args.quick)
    res.update(training_step_ratio(batch=2 if args.quick else 8, repeats=1 if args.quick else 2))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:32s} {v:.3f}" if isinstance(v, float) else f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
