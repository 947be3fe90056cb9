# SPDX-License-Identifier: GPL-3.0-or-later
"""The data that flows between readers, the model and the Blender layer.

Small dataclasses of NumPy arrays with their shapes and units in the field docs, so a
reader, the inference code and the add-on agree without passing bare tuples around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.errors import OutputFileError, TrackingFileError
from kinest_core.fixes import Fix, Spelling, python_spelling, render_hint
from kinest_core.outputs import write_npz
from kinest_core.skeleton import JOINT_NAMES, PARENTS

DEVICES: tuple[str, str, str] = ("head", "left_wrist", "right_wrist")
_MOTION_ARRAYS = ("local_rotations", "root_translation", "joint_positions", "rest_offsets")


@dataclass(frozen=True)
class TrackingWarning:
    """A plausibility or data problem with a stable ``code`` (e.g. ``UNITS_SUSPECT``).

    ``message`` says what is wrong and what the reader did; ``hint`` says what to do, naming
    options as ``{option}`` fields that ``fixes`` fill in the spelling of the interface showing it
    (:mod:`kinest_core.fixes`). ``text()`` is the whole line (Python spelling by default).
    """

    code: str
    message: str
    device: str | None = None
    frames: tuple[int, int] | None = None  # [start, end) in the sequence's frames
    hint: str = ""
    fixes: tuple[Fix, ...] = ()

    def text(self, spell: Spelling = python_spelling) -> str:
        """Message and hint, the options named as ``spell`` writes them."""
        hint = render_hint(self.hint, self.fixes, spell)
        return f"{self.message}; {hint}" if hint else self.message

    def __str__(self) -> str:
        return self.text()

    def as_dict(self, spell: Spelling = python_spelling) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.text(spell)}
        if self.hint:
            d["hint"] = render_hint(self.hint, self.fixes, spell)
            d["fixes"] = [{"option": f.option, "value": f.value} for f in self.fixes]
        if self.device is not None:
            d["device"] = self.device
        if self.frames is not None:
            d["frames"] = list(self.frames)
        return d


@dataclass
class TrackingSequence:
    """Head and wrist *joint* world transforms (not device poses): Z-up, right-handed, metres.

    - ``times``: (frames,) seconds from the first frame
    - ``head``, ``left_wrist``, ``right_wrist``: (frames, 4, 4) homogeneous world matrices
    - ``valid``: (frames, 3) bool, per device in ``DEVICES`` order; invalid frames hold a
      best-effort pose (held or interpolated) so that arrays stay finite
    - ``fps``: the sampling rate ``times`` follows (60 after resampling)
    - ``info``: what the reader detected or assumed (format, units, axes, rate, height...)
    - ``warnings``: problems found, with stable codes
    """

    times: NDArray[np.float64]
    head: NDArray[np.float64]
    left_wrist: NDArray[np.float64]
    right_wrist: NDArray[np.float64]
    valid: NDArray[np.bool_]
    fps: float = 60.0
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[TrackingWarning] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.times.shape[0])

    def transforms(self) -> NDArray[np.float64]:
        """All three devices stacked: (frames, 3, 4, 4) in ``DEVICES`` order."""
        return np.stack([self.head, self.left_wrist, self.right_wrist], axis=1)

    def save_npz(self, path: str) -> None:
        """Written beside ``path`` and renamed into place (:func:`kinest_core.outputs.write_npz`)."""
        write_npz(
            path,
            {
                "times": self.times,
                "head": self.head,
                "left_wrist": self.left_wrist,
                "right_wrist": self.right_wrist,
                "valid": self.valid,
                "fps": np.float64(self.fps),
            },
        )

    @classmethod
    def load_npz(cls, path: str) -> TrackingSequence:
        """Read a tracking ``.npz`` (arrays named as in the README); ``valid`` and ``fps`` optional."""
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("times", "head", "left_wrist", "right_wrist") if k not in z.files]
            if missing:
                raise ValueError(
                    f"{path}: tracking .npz lacks array(s) {', '.join(missing)}; it needs 'times' (frames,) "
                    "and 'head', 'left_wrist', 'right_wrist' as (frames, 4, 4) world matrices in metres, Z-up"
                )
            times = np.asarray(z["times"], dtype=np.float64)
            mats = [np.asarray(z[k], dtype=np.float64) for k in DEVICES]
            n = times.shape[0]
            for name, m in zip(DEVICES, mats, strict=True):
                if m.shape != (n, 4, 4):
                    raise ValueError(f"{path}: '{name}' has shape {m.shape}, expected ({n}, 4, 4) to match 'times'")
            valid = np.asarray(z["valid"], dtype=bool) if "valid" in z.files else np.ones((n, 3), dtype=bool)
            if valid.shape != (n, 3):
                raise ValueError(f"{path}: 'valid' has shape {valid.shape}, expected ({n}, 3)")
            fps = float(z["fps"]) if "fps" in z.files else _rate_from_times(times)
        for name, m in zip(DEVICES, mats, strict=True):
            if not np.all(np.isfinite(m)):
                bad = int(np.argmax(~np.isfinite(m).reshape(n, -1).all(axis=1)))
                raise ValueError(f"{path}: '{name}' holds NaN or inf at frame {bad}; fill or mark it invalid")
        return cls(times, mats[0], mats[1], mats[2], valid, fps=fps, info={"format": "npz"})


def _rate_from_times(times: NDArray) -> float:
    if times.shape[0] < 2:
        return 60.0
    dt = float(np.median(np.diff(times)))
    return 1.0 / dt if dt > 0 else 60.0


@dataclass
class Motion:
    """A body motion on the SMPL-22 skeleton at a fixed rate.

    - ``local_rotations``: (frames, 22, 4) wxyz quaternions; joint 0 is the global pelvis orientation
    - ``root_translation``: (frames, 3) m, added to ``rest_offsets[0]`` to place the pelvis
    - ``joint_positions``: (frames, 22, 3) m, Z-up world (forward kinematics of the above)
    - ``rest_offsets``: (22, 3) m, the body the motion is played on
    - ``contacts``: (frames, 2) bool, left and right foot on the floor (None where unknown); the
      foot-locking pass (:mod:`kinest_core.postprocess.foot_planting`) holds feet in these spans
    """

    local_rotations: NDArray[np.float64]
    root_translation: NDArray[np.float64]
    joint_positions: NDArray[np.float64]
    rest_offsets: NDArray[np.float64]
    fps: float = 60.0
    info: dict[str, Any] = field(default_factory=dict)
    contacts: NDArray[np.bool_] | None = None

    @property
    def num_frames(self) -> int:
        return int(self.local_rotations.shape[0])

    def save_npz(self, path: str) -> None:
        """Written beside ``path`` and renamed into place; a motion with NaN or inf is refused, never written."""
        for name in ("local_rotations", "root_translation", "joint_positions", "rest_offsets"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise OutputFileError(
                    path, f"the motion's {name.replace('_', ' ')} hold NaN or inf; nothing was written"
                )
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise OutputFileError(path, f"the motion's fps is {self.fps}; nothing was written")
        extra = {} if self.contacts is None else {"contacts": np.asarray(self.contacts, dtype=bool)}
        write_npz(
            path,
            {
                "local_rotations": self.local_rotations,
                "root_translation": self.root_translation,
                "joint_positions": self.joint_positions,
                "rest_offsets": self.rest_offsets,
                "fps": np.float64(self.fps),
                "joint_names": np.array(JOINT_NAMES),
                "parents": np.array(PARENTS, dtype=np.int64),
                **extra,
            },
        )

    @classmethod
    def load_npz(cls, path: str) -> Motion:
        """Read a motion ``.npz``; anything missing, mis-shaped, non-finite or damaged is a :class:`TrackingFileError`."""
        hint = "write it with Motion.save_npz (kinest reconstruct -o OUT.npz)"
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in (*_MOTION_ARRAYS, "fps") if k not in z.files]
                if missing:
                    raise TrackingFileError(path, f"motion .npz lacks array(s) {', '.join(missing)}", hint=hint)
                arrays = {k: np.asarray(z[k], dtype=np.float64) for k in _MOTION_ARRAYS}
                fps = np.asarray(z["fps"], dtype=np.float64).reshape(-1)
                contacts = np.asarray(z["contacts"], dtype=bool) if "contacts" in z.files else None
        except TrackingFileError:
            raise
        except Exception as exc:  # zipfile, zlib and numpy raise many kinds for a damaged or foreign file
            raise TrackingFileError(
                path, f"is not a readable motion .npz ({type(exc).__name__}: {exc})", hint=hint
            ) from exc
        f = arrays["local_rotations"].shape[0] if arrays["local_rotations"].ndim else -1
        expected = {
            "local_rotations": (f, len(JOINT_NAMES), 4),
            "root_translation": (f, 3),
            "joint_positions": (f, len(JOINT_NAMES), 3),
            "rest_offsets": (len(JOINT_NAMES), 3),
        }
        for k, shape in expected.items():
            if arrays[k].shape != shape or not np.all(np.isfinite(arrays[k])):
                raise TrackingFileError(
                    path, f"'{k}' has shape {arrays[k].shape} or holds NaN/inf; expected finite {shape}", hint=hint
                )
        if fps.shape != (1,) or not (np.isfinite(fps[0]) and 0 < fps[0] <= 1000):
            raise TrackingFileError(path, f"'fps' is {fps.tolist()}, not one frame rate", hint=hint)
        if contacts is not None and contacts.shape != (f, 2):
            contacts = None
        return cls(
            local_rotations=arrays["local_rotations"],
            root_translation=arrays["root_translation"],
            joint_positions=arrays["joint_positions"],
            rest_offsets=arrays["rest_offsets"],
            fps=float(fps[0]),
            contacts=contacts,
        )
