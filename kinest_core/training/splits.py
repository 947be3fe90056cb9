# SPDX-License-Identifier: GPL-3.0-or-later
"""The validation split: training subjects held out by person, for honest model selection.

The test subjects (CMU 02 and 11) live in their own folder and are scored once per shipped
model; recipes, checkpoints and thresholds are chosen on validation subjects carved out of
the training folder instead. The split is a fixed list of people, so it is the same on every
machine and for every data format (BVH folders, converted caches, motion packs): a motion's
person comes from its file name (:func:`person_key`), whichever rig converted it (CMU
subject 01 in the Daz-friendly and in the MotionBuilder-friendly conversion is one person).

:data:`VALIDATION_SUBJECTS` are CMU 05 (modern dance), 08 (walks) and 14 (everyday actions,
boxing): CMU subjects on the test subjects' rig, about 13 % of the training minutes. The
salsa partners 60 and 61 dance the same takes and are always kept on one side
(:data:`PARTNERS`), as any other choice would leak their motion across the split.
"""

from __future__ import annotations

from collections.abc import Sequence

from kinest_core.training.mocap_library import subject_key
from kinest_core.types import Motion

#: People held out of training for validation (keys of :func:`person_key`).
VALIDATION_SUBJECTS: tuple[str, ...] = ("cmu:05", "cmu:08", "cmu:14")
#: People recorded in the same takes: they go to the same side of any split.
PARTNERS: dict[str, str] = {"cmu:61": "cmu:60"}
#: ``kinest evaluate --split`` choices: the training subjects, the validation subjects, or every motion.
SPLITS: tuple[str, ...] = ("train", "val", "all")


def person_key(source: str) -> str:
    """The person a motion file shows: ``cmu:05`` (any CMU conversion), ``accad:Male1``, ``file:NAME`` else.

    :func:`~kinest_core.training.mocap_library.subject_key` with the rig dropped from CMU keys.
    """
    key = subject_key(source)
    rig, _, who = key.partition(":")
    return f"cmu:{who}" if rig in ("cmu_daz", "cmu_mb") else key


def split_group(person: str) -> str:
    """The key a person is split by: their own, or their partner's (:data:`PARTNERS`)."""
    return PARTNERS.get(person, person)


def is_validation(source: str, subjects: Sequence[str] = VALIDATION_SUBJECTS) -> bool:
    """Whether the motion named ``source`` belongs to a validation subject (or their partner)."""
    groups = {split_group(s) for s in subjects}
    return split_group(person_key(source)) in groups


def motion_source(motion: Motion) -> str:
    """The file name a motion was loaded from (``info["source"]``; empty if unknown)."""
    return str(motion.info.get("source", ""))


def split_motions(
    motions: Sequence[Motion], subjects: Sequence[str] = VALIDATION_SUBJECTS
) -> tuple[list[Motion], list[Motion]]:
    """(training, validation) motions, by person; order kept within each."""
    train: list[Motion] = []
    val: list[Motion] = []
    for m in motions:
        (val if is_validation(motion_source(m), subjects) else train).append(m)
    return train, val


def select_split(motions: Sequence[Motion], split: str, subjects: Sequence[str] = VALIDATION_SUBJECTS) -> list[Motion]:
    """The motions of one split (:data:`SPLITS`): ``train``, ``val`` or ``all``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return list(motions)
    train, val = split_motions(motions, subjects)
    return val if split == "val" else train
