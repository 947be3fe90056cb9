# SPDX-License-Identifier: GPL-3.0-or-later
"""What a training run is: its config (model, schedule, loss, augmentation, data split), the network it
builds, its warm start, and the description of its data (with the attributions its licences ask for)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from kinest_core.model.checkpoint import checkpoint_base
from kinest_core.training.baselines import AvatarPoserConfig, AvatarPoserLite, MeanPose, MeanPoseConfig
from kinest_core.training.data import AugmentConfig
from kinest_core.training.losses import (
    LossConfig,
)
from kinest_core.types import Motion

#: Attributions the data licences ask for (data README); written into every checkpoint JSON.
CMU_ATTRIBUTION = "The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with funding from NSF EIA-0196217."
ACCAD_ATTRIBUTION = (
    "Motion capture data from the Open Motion Project, Advanced Computing Center for the Arts and Design (ACCAD), "
    "The Ohio State University, licensed under CC BY 3.0."
)
AMASS_NOTICE = (
    "Trained on AMASS (amass.is.tue.mpg.de) motions prepared with kinest prepare-amass: AMASS and SMPL-H are "
    "licensed for non-commercial research only; check their licences before sharing this model."
)
MODELS = ("kinest", "avatarposer", "mean_pose")


@dataclass
class TrainConfig:
    """Everything a run depends on; ``--config FILE`` is this as JSON (unknown keys are an error)."""

    model: str = "kinest"  # kinest | avatarposer | mean_pose
    model_config: dict[str, Any] = field(default_factory=dict)  # overrides; {"preset": "tiny"} for tests
    batch_size: int = 32
    iterations: int = 10_000
    lr: float = 3e-4
    weight_decay: float = 1e-5
    lr_drop_at: int = 200_000  # "step" schedule: lr / 10 from this iteration on
    lr_schedule: str = "step"  # step | cosine (cosine over the run: iterations or max_minutes, whichever ends first)
    warmup: int = 0  # iterations of linear lr warm-up from lr / 100 (fresh optimiser state on a warm start)
    min_lr_ratio: float = 0.02  # cosine ends at lr * this
    init: str = ""  # start from these weights (a checkpoint of the same architecture) with a fresh optimiser
    max_bad_steps: int = 20  # non-finite losses in a row before training stops (each such step is skipped)
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    val_every: int = 1000
    val_batch_size: int = 16
    loss: dict[str, float] = field(default_factory=lambda: LossConfig().to_dict())
    augment: dict[str, Any] = field(default_factory=lambda: AugmentConfig().to_dict())
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0: torch's default; on a busy shared CPU use 1)
    # bf16 autocast of the forward pass: true, false, or "auto" (on for CPUs with native bf16, else off;
    # kinest_core.hardware.resolve_amp); the checkpoint records what it resolved to.
    amp: bool | str = "auto"
    matmul_precision: str = "highest"  # float32 matmuls: highest | high (TF32 on CUDA) | medium
    max_minutes: float = 0.0  # stop (and save) after this much training time (0: no limit)
    # Exponential moving average of the weights, decay per iteration (e.g. 0.998; 0: off). Small-batch
    # steps are noisy; checkpoints and validation then use the averaged weights (the raw ones stay in
    # train_state.pt for resuming).
    ema: float = 0.0
    # Hold the validation subjects (kinest_core.training.splits.VALIDATION_SUBJECTS) out of the training
    # data and score them as validation: model selection never looks at the test split.
    val_split: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training config key(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def load(cls, path: str) -> TrainConfig:
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))


def build_model(config: TrainConfig) -> nn.Module:
    """The network a config names, with its overrides (``{"preset": "tiny"}`` starts from KineSTConfig.tiny())."""
    over = dict(config.model_config)
    preset = over.pop("preset", None)
    if config.model == "kinest":
        from kinest_core.model import KineST, KineSTConfig

        base = KineSTConfig.tiny() if preset == "tiny" else KineSTConfig()
        return KineST(KineSTConfig.from_dict({**base.to_dict(), **over}))
    if config.model == "avatarposer":
        base_ap = (
            AvatarPoserConfig(width=32, layers=1, heads=2, ffn_width=32, window=24)
            if preset == "tiny"
            else AvatarPoserConfig()
        )
        return AvatarPoserLite(AvatarPoserConfig.from_dict({**base_ap.to_dict(), **over}))
    if config.model == "mean_pose":
        return MeanPose(MeanPoseConfig(**over) if over else MeanPoseConfig(window=24 if preset == "tiny" else 96))
    raise ValueError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")


def load_init(model: nn.Module, path: str) -> None:
    """Weights of a checkpoint (NAME, NAME.safetensors or NAME.json) into ``model``; shapes must match."""
    from safetensors.torch import load_file

    weights = checkpoint_base(path).with_suffix(".safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"init checkpoint {weights} not found")
    state = load_file(str(weights), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{weights} does not fit the {type(model).__name__} this config builds: {e}") from None


def describe_data(motions: Sequence[Motion], paths: Sequence[str]) -> dict[str, Any]:
    """What the model was trained on: paths, counts, minutes, sources and their attributions."""
    sources = [str(m.info.get("source", "")) for m in motions]
    accad = sum(1 for s in sources if s.startswith("accad_"))
    amass = sum(1 for s in sources if "__" in s or s.endswith("_poses.npz"))
    frames = int(sum(m.num_frames for m in motions))
    attributions = []
    if accad + amass < len(sources):
        attributions.append(CMU_ATTRIBUTION)
    if accad:
        attributions.append(ACCAD_ATTRIBUTION)
    if amass:
        attributions.append(AMASS_NOTICE)
    return {
        "paths": [str(p) for p in paths],
        "motions": len(motions),
        "frames": frames,
        "minutes": round(frames / 60.0 / 60.0, 2),
        "accad_motions": accad,
        "cmu_motions": len(sources) - accad - amass,
        "amass_motions": amass,
        "attributions": attributions,
    }
