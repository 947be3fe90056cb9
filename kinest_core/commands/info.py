# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest info``: version, device, parameter count and checkpoint, so users can check an install."""

from __future__ import annotations

import argparse
import json
import platform

import torch

from kinest_core import __version__


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="version, device, parameter count, checkpoint",
        description="Check an install: the kinest, Python and torch versions, the device inference would use "
        "(CUDA GPU or CPU threads), whether the mamba_ssm kernels load, the model's parameter count and the "
        "checkpoint in use.",
    )
    p.add_argument("--checkpoint", help="checkpoint to describe (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def collect(checkpoint: str | None = None) -> dict:
    from kinest_core.model import KineST, default_checkpoint_path
    from kinest_core.model.checkpoint import read_checkpoint_meta
    from kinest_core.model.kinest import KineSTConfig
    from kinest_core.model.ops.ssd_cuda import mamba_ssm_scan

    path = checkpoint or default_checkpoint_path()
    meta = read_checkpoint_meta(path) if path else {}
    config = KineSTConfig.from_dict(meta.get("config", {}))
    params = KineST(config).num_parameters()
    cuda = torch.cuda.is_available()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cuda" if cuda else "cpu",
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "mamba_ssm_kernels": bool(cuda and mamba_ssm_scan() is not None),
        "cpu_threads": torch.get_num_threads(),
        "parameters": params,
        "checkpoint": str(path) if path else None,
        "checkpoint_trained": meta.get("training", {}).get("summary") if meta else None,
    }


def run(args: argparse.Namespace) -> int:
    info = collect(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"kinest {info['version']} (Python {info['python']}, torch {info['torch']})")
    dev = info["device"] + (f" ({info['cuda_device']})" if info["cuda_device"] else f", {info['cpu_threads']} threads")
    print(f"device:      {dev}; mamba_ssm kernels: {'yes' if info['mamba_ssm_kernels'] else 'no (pure PyTorch scan)'}")
    print(f"parameters:  {info['parameters']:,} ({info['parameters'] / 1e6:.1f}M)")
    print(f"checkpoint:  {info['checkpoint'] or 'none installed'}")
    if info["checkpoint_trained"]:
        print(f"trained:     {info['checkpoint_trained']}")
    return 0
