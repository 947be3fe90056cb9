# SPDX-License-Identifier: GPL-3.0-or-later
"""Training KineST (and the baselines) on converted full-body motion.

Why a small hand-written loop rather than a framework: the whole pipeline (sampling,
augmentation, features) runs on batched tensors in the main process, so the loop stays
readable and the same on one CPU, one GPU or several GPUs under ``torchrun`` (DDP).
Every run writes ``OUT/checkpoint_last`` (+ ``OUT/checkpoint_best`` by validation MPJPE),
``OUT/train_state.pt`` for ``--resume`` and ``OUT/log.jsonl``; the checkpoint JSON says
how the model was trained and carries the data attributions.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kinest_core.hardware import hardware_description, resolve_amp, resolve_device, retain_freed_memory
from kinest_core.model.checkpoint import save_checkpoint
from kinest_core.model.ops import ssd_fused_cpu
from kinest_core.outputs import staged_outputs
from kinest_core.training.baselines import MeanPose
from kinest_core.training.config import (
    ACCAD_ATTRIBUTION,
    CMU_ATTRIBUTION,
    TrainConfig,
    build_model,
    describe_data,
    load_init,
)
from kinest_core.training.data import AugmentConfig, Batch, MotionWindows, make_batch, make_overlapping_batches
from kinest_core.training.evaluate import model_window
from kinest_core.training.losses import (
    LossConfig,
    contact_loss,
    kinest_loss,
    window_consistency,
    window_contact_labels,
)
from kinest_core.training.splits import VALIDATION_SUBJECTS, is_validation, motion_source, split_motions
from kinest_core.types import Motion


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group; NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(rank, world, local), device


def consistency_pairs(batch_size: int, share: float) -> int:
    """Overlapping window pairs in a batch for the window-consistency loss: ``share`` of the batch
    in pairs, at least one pair and at most half the batch."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"window_consistency_share must be in (0, 1], got {share}")
    return max(1, min(batch_size // 2, round(batch_size * share / 2)))


def _lr_at(config: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """Learning rate at ``step``; cosine progress is the larger of the iteration and time fractions."""
    warm = min(1.0, 0.01 + 0.99 * step / config.warmup) if config.warmup > 0 else 1.0
    if config.lr_schedule == "step":
        return config.lr * warm * (0.1 if step >= config.lr_drop_at else 1.0)
    if config.lr_schedule == "cosine":
        progress = step / max(config.iterations, 1)
        if config.max_minutes > 0:
            progress = max(progress, elapsed_s / (config.max_minutes * 60.0))
        cos = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return config.lr * warm * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cos)
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; choose step or cosine")


@contextlib.contextmanager
def _torch_settings(config: TrainConfig) -> Iterator[None]:
    """torch's process-wide CPU threads and float32 matmul precision for one run, restored afterwards."""
    if config.matmul_precision not in ("highest", "high", "medium"):
        raise ValueError(f"unknown matmul_precision {config.matmul_precision!r}; choose highest, high or medium")
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.set_float32_matmul_precision(config.matmul_precision)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)


def train(
    data: Sequence[Motion],
    out_dir: str,
    config: TrainConfig,
    val: Sequence[Motion] | None = None,
    resume: bool = False,
    data_info: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config.model`` on ``data`` and write checkpoints to ``out_dir``; returns a summary.

    ``val`` motions are scored with the evaluation protocol every ``val_every`` iterations;
    ``config.val_split`` moves the validation subjects from ``data`` to them first.
    """
    if config.val_split:
        data, held = split_motions(data)
        val = [*(val or []), *held]
        if not held and not any(is_validation(motion_source(m)) for m in val):
            raise ValueError(
                f"val_split: no motion of the validation subjects ({', '.join(VALIDATION_SUBJECTS)}) in the data"
            )
    with _torch_settings(config):
        return _train(data, out_dir, config, val, resume, data_info, log)


def _train(
    data: Sequence[Motion],
    out_dir: str,
    config: TrainConfig,
    val: Sequence[Motion] | None,
    resume: bool,
    data_info: dict[str, Any] | None,
    log: Callable[[str], None] | None,
) -> dict[str, Any]:
    say = log or (lambda s: print(s, flush=True))
    device = resolve_device(config.device)
    dist_info, device = _init_distributed(device)
    use_amp, amp_why = resolve_amp(config.amp, device)  # a bad value fails before anything is written
    out = Path(out_dir)
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_model(config)
    if config.init and not (resume and (out / "train_state.pt").exists()):
        load_init(model, config.init)
        say(f"initialised {config.model} from {config.init} (fresh optimiser)")
    model = model.to(device)
    window = model_window(model)
    windows = MotionWindows(data, window)
    loss_cfg = LossConfig.from_dict(config.loss)
    aug_cfg = AugmentConfig.from_dict(config.augment)
    info = data_info or describe_data(data, [])
    rng = np.random.default_rng([config.seed, dist_info.rank])
    gen = torch.Generator().manual_seed(config.seed * 1000 + dist_info.rank)
    learned = config.model != "mean_pose"
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay) if learned else None
    step, seen, elapsed = 0, 0, 0.0
    bad_in_row, skipped = 0, 0
    _lr_at(config, 0)  # an unknown schedule fails here, not mid-run
    if loss_cfg.contact > 0 and getattr(model, "contact", None) is None:
        raise ValueError("the contact loss needs a model with a contact output (model config contact_head: true)")
    pairs = 0  # overlapping window pairs per batch for the window-consistency loss
    if loss_cfg.window_consistency > 0:
        if config.batch_size < 2:
            raise ValueError("the window_consistency loss needs batch_size >= 2 (it trains on window pairs)")
        pairs = consistency_pairs(config.batch_size, loss_cfg.window_consistency_share)  # a bad share fails here
    if not 0.0 <= config.ema < 1.0:
        raise ValueError(f"ema must be in [0, 1) (a decay per iteration, e.g. 0.998), got {config.ema}")
    averaged = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema), use_buffers=True
        )
        if config.ema > 0 and learned
        else None
    )
    best = math.inf
    state_path = out / "train_state.pt"
    if resume and state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)  # tensors and plain values only: no code
        model.load_state_dict(st["model"])
        if opt is not None and st.get("optimizer"):
            opt.load_state_dict(st["optimizer"])
        step, seen, elapsed = int(st["step"]), int(st["windows_seen"]), float(st["elapsed_s"])
        best = float(st.get("best_val_mpjpe_cm", math.inf))
        skipped = int(st.get("skipped_steps", 0))
        rng.bit_generator.state = (
            st["numpy_rng"][dist_info.rank] if dist_info.rank < len(st["numpy_rng"]) else rng.bit_generator.state
        )
        gen.set_state(st["torch_rng"])
        if averaged is not None and st.get("ema"):
            averaged.load_state_dict(st["ema"])
        say(f"resumed from {state_path} at iteration {step}")
    elif resume:
        say(f"nothing to resume in {out} (no train_state.pt): starting fresh")
    net: nn.Module = model
    if dist_info.world > 1 and learned:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    hardware = hardware_description(device, dist_info.world)
    heap = retain_freed_memory() if device.type == "cpu" else None  # no page faults for reused activations
    fused = ssd_fused_cpu.try_enable() if device.type == "cpu" else None
    if dist_info.main:
        n_params = sum(p.numel() for p in model.parameters())
        say(
            f"training {config.model} ({n_params / 1e6:.2f}M parameters) on {hardware}: {len(windows)} motions, "
            f"{windows.frames} frames, batch {config.batch_size} x {dist_info.world}, {config.iterations} iterations"
        )
        say(f"bf16 autocast {'on' if use_amp else 'off'} ({amp_why})")
        if heap is not None:
            say(f"malloc: {heap[1]}")
        if fused is not None:
            say(f"SSD op: {fused}")
    started = _dt.datetime.now(_dt.timezone.utc)
    last_val: dict[str, Any] = {}
    logf = open(out / "log.jsonl", "a", encoding="utf-8") if dist_info.main else None  # noqa: SIM115
    t_log, seen_log = time.perf_counter(), seen
    tty = sys.stdout.isatty()

    def meta(kind: str) -> dict[str, Any]:
        return {
            "training": {
                "model": config.model,
                "iterations": step,
                "windows_seen": seen,
                "batch_size": config.batch_size * dist_info.world,
                "hardware": hardware,
                "amp": use_amp,
                "time_s": round(elapsed, 1),
                "started_utc": started.isoformat(timespec="seconds"),
                "saved_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "torch": torch.__version__,
                "config": config.to_dict(),
                "kind": kind,
                "skipped_steps": skipped,
                "init": config.init or None,
                "summary": (
                    f"{step} iterations x {config.batch_size * dist_info.world} windows of {window} frames "
                    f"({seen} windows) on {hardware} in {elapsed / 3600:.2f} h; data: {info.get('minutes', '?')} min "
                    f"({info.get('cmu_motions', '?')} CMU + {info.get('accad_motions', '?')} ACCAD motion segments)"
                ),
            },
            "data": info,
            "attributions": info.get("attributions", [CMU_ATTRIBUTION, ACCAD_ATTRIBUTION]),
            "validation": last_val,
        }

    def weights() -> nn.Module:
        """The weights that checkpoints and validation use: the moving average once it has started."""
        if averaged is not None and int(averaged.n_averaged) > 0:
            return averaged.module
        return model

    def save(kind: str) -> None:
        if not dist_info.main:
            return
        save_checkpoint(out / f"checkpoint_{kind}", weights(), meta(kind))
        if kind == "last":
            with staged_outputs(state_path) as (part,):  # a crash mid-write keeps the last whole state
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict() if opt is not None else None,
                        "step": step,
                        "windows_seen": seen,
                        "elapsed_s": elapsed,
                        "best_val_mpjpe_cm": best,
                        "skipped_steps": skipped,
                        "numpy_rng": [rng.bit_generator.state],
                        "torch_rng": gen.get_state(),
                        "ema": averaged.state_dict() if averaged is not None else None,
                        "config": config.to_dict(),
                    },
                    part,
                )

    def validate() -> None:
        nonlocal best, last_val
        if not val or not dist_info.main:
            return
        from kinest_core.training.evaluate import evaluate_motions

        t0 = time.perf_counter()
        res = evaluate_motions(weights(), val, device, config.val_batch_size)["overall"]
        last_val = {"iteration": step, **res}
        say(
            f"  validation @ {step}: MPJPE {res['mpjpe_cm']:.2f} cm, MPJRE {res['mpjre_deg']:.2f} deg, "
            f"MPJVE {res['mpjve_cms']:.1f} cm/s, jitter {res['jitter']:.2f} (gt {res['gt_jitter']:.2f}) "
            f"[{time.perf_counter() - t0:.1f} s]"
        )
        if logf is not None:
            logf.write(json.dumps({"validation": last_val}) + "\n")
            logf.flush()
        if res["mpjpe_cm"] < best:
            best = res["mpjpe_cm"]
            save("best")

    model.train()
    while step < config.iterations:
        t0 = time.perf_counter()
        offset = 0
        if pairs:  # pairs of overlapping windows first, then single windows
            offset = int(rng.integers(1, window))
            sampled = windows.sample(pairs, rng, length=window + offset, time_warp=aug_cfg.time_warp)
            local, root, rest = (t.to(device, non_blocking=True) for t in sampled)
            batch = Batch.cat(*make_overlapping_batches(local, root, rest, window, offset, aug_cfg, gen))
            if config.batch_size > 2 * pairs:
                single = windows.sample(config.batch_size - 2 * pairs, rng, time_warp=aug_cfg.time_warp)
                local, root, rest = (t.to(device, non_blocking=True) for t in single)
                batch = Batch.cat(batch, make_batch(local, root, rest, aug_cfg, gen))
        else:
            sampled = windows.sample(config.batch_size, rng, time_warp=aug_cfg.time_warp)
            local, root, rest = (t.to(device, non_blocking=True) for t in sampled)
            batch = make_batch(local, root, rest, aug_cfg, gen)
        if opt is None:
            assert isinstance(model, MeanPose)
            model.accumulate(batch.features, batch.target)
            parts: dict[str, float] = {}
            loss_value = 0.0
        else:
            for g in opt.param_groups:
                g["lr"] = _lr_at(config, step, elapsed)
            logits = None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                if loss_cfg.contact > 0:
                    pred, logits = net(batch.features, with_contacts=True)
                else:
                    pred = net(batch.features)
            loss, parts = kinest_loss(
                pred.float(), batch.target, loss_cfg, batch.rest_offsets, batch.tracked_head_error()
            )
            if logits is not None:
                term = contact_loss(logits.float(), window_contact_labels(batch.positions, batch.rest_offsets))
                loss = loss + loss_cfg.contact * term
                parts["contact"] = float(term.detach())
            if offset:
                first, second = pred[:pairs].float(), pred[pairs : 2 * pairs].float()
                term = window_consistency(first, second, offset, batch.rest_offsets[:pairs])
                loss = loss + loss_cfg.window_consistency * term
                parts["window_consistency"] = float(term.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(
                model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf
            )
            loss_value = float(loss.detach())
            if math.isfinite(loss_value) and math.isfinite(float(grad_norm)):
                opt.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                bad_in_row = 0
            else:  # one bad batch must not poison the weights or the Adam moments: skip it
                bad_in_row += 1
                skipped += 1
                say(f"  iteration {step}: non-finite loss or gradient ({loss_value}); step skipped")
                if bad_in_row >= config.max_bad_steps:
                    save("last")
                    raise FloatingPointError(
                        f"{bad_in_row} non-finite steps in a row at iteration {step}; lower the learning rate "
                        "or add warm-up (the last good weights are saved as checkpoint_last)"
                    )
        step += 1
        seen += config.batch_size * dist_info.world
        elapsed += time.perf_counter() - t0
        if dist_info.main and (step % config.log_every == 0 or step == config.iterations):
            now = time.perf_counter()
            wps = (seen - seen_log) / max(now - t_log, 1e-9)
            t_log, seen_log = now, seen
            eta = (config.iterations - step) * config.batch_size * dist_info.world / max(wps, 1e-9)
            pretty = " ".join(f"{k} {v:.4g}" for k, v in parts.items())
            line = (
                f"[{step}/{config.iterations}] loss {loss_value:.5f} ({pretty}) "
                f"{wps:.1f} windows/s lr {_lr_at(config, step, elapsed):.1e} eta {_fmt_time(eta)}"
            )
            say(("\r" + line) if tty else line)
            if logf is not None:
                logf.write(json.dumps({"iteration": step, "loss": loss_value, **parts, "windows_per_s": wps}) + "\n")
                logf.flush()
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.iterations:
            save("last")
        if config.val_every and step % config.val_every == 0 and step < config.iterations:
            validate()
            model.train()
        if config.max_minutes > 0 and elapsed >= config.max_minutes * 60.0:
            say(f"time budget of {config.max_minutes:g} min reached at iteration {step}")
            break
    validate()
    save("last")
    if dist_info.main and not val:
        save("best")
    if logf is not None:
        logf.close()
    summary = {
        "iterations": step,
        "windows_seen": seen,
        "time_s": round(elapsed, 1),
        "windows_per_s": round(seen / max(elapsed, 1e-9), 2),
        "skipped_steps": skipped,
        "validation": last_val,
        "checkpoint": str(out / "checkpoint_last"),
    }
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return summary


def _fmt_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
