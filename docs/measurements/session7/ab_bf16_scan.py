# SPDX-License-Identifier: GPL-3.0-or-later
"""Same-seed A/B of the SSD op's matmul precision under bf16 autocast (session 7).

``bf16``: the default since session 7 (the op's large matmuls in bf16 under autocast);
``f32scan``: the op computing in float32 under autocast, as before. Everything else is
identical: reduced-width KineST, batch 16, lr 1e-3, 600 iterations, 1 thread, ``amp: true``,
validation on the test pack at the end. Usage:

    python docs/measurements/session7/ab_bf16_scan.py {bf16|f32scan} SEED OUT_DIR
"""

from __future__ import annotations

import functools
import json
import sys

import torch

from kinest_core.mocap import load_motions
from kinest_core.model import ssd
from kinest_core.train import TrainConfig, train

variant, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if variant == "f32scan":
    ssd.ssd_chunked = functools.partial(ssd.ssd_chunked, matmul_dtype=torch.float32)  # type: ignore[assignment]
elif variant != "bf16":
    raise SystemExit("variant: bf16 or f32scan")
cfg = TrainConfig(
    model="kinest",
    model_config={"width": 128, "joint_width": 32, "attn_ffn_width": 512, "ffn_width": 256},
    batch_size=16,
    iterations=600,
    lr=1e-3,
    seed=seed,
    threads=1,
    amp=True,
    log_every=10,
    checkpoint_every=0,
    val_every=600,
    device="cpu",
)
summary = train(load_motions("runs/data_v5/train.pack.npz"), out, cfg, val=load_motions("runs/data_v5/test.pack.npz"))
print(json.dumps(summary, indent=1))
