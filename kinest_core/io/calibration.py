# SPDX-License-Identifier: GPL-3.0-or-later
"""Device -> joint calibration: where the head and wrist joints sit relative to the devices.

Device frames here are canonical (see :mod:`kinest_core.io.conventions`): forward -Y, up +Z,
left +X. A joint pose is ``T_joint = T_device @ T_offset``, with the offset's rotation and
translation given in the device frame. Joint frames follow the SMPL rest pose, in which every
joint's global rotation is identity (body facing -Y, Z up, left +X, arms in T-pose, palms down):

- head: identity when looking level along -Y. The HMD's frame already is that, so the rotation
  offset is identity; the joint sits behind and below the HMD centre (the head joint is near
  the top of the neck, the HMD in front of the eyes).
- wrists: identity with the arm held straight out sideways, palm down. A controller held in a
  natural grip points along the forearm with its top (thumb side) up; turning that arm into the
  T-pose puts the controller's forward along the arm (+X left, -X right) and its top towards the
  body's front (-Y). The offset rotation encodes exactly that, and the wrist sits a few cm
  behind the grip along the controller's forward axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Device families with default offsets; "joints" means the poses already are joints (full-body mocap).
DEVICE_FAMILIES: tuple[str, ...] = ("auto", "generic", "quest", "vive", "index", "joints")
#: What each family is called by the people who own the devices (reports, dialogs).
FAMILY_NAMES: dict[str, str] = {
    "auto": "detected from the device names in the file",
    "generic": "generic headset and controllers (average offsets)",
    "quest": "Meta Quest / Oculus Touch controllers",
    "vive": "HTC Vive wand controllers",
    "index": "Valve Index controllers",
    "joints": "body joints (full-body motion capture)",
}


def _rot_from_columns(ex: tuple[float, ...], ey: tuple[float, ...], ez: tuple[float, ...]) -> NDArray[np.float64]:
    return np.stack([np.asarray(ex), np.asarray(ey), np.asarray(ez)], axis=-1).astype(np.float64)


# Device orientation when its wrist joint has identity rotation (columns: device x, y, z in world).
_LEFT_DEVICE_AT_REST = _rot_from_columns((0.0, 0.0, 1.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))
_RIGHT_DEVICE_AT_REST = _rot_from_columns((0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0))


@dataclass(frozen=True)
class DeviceOffset:
    """Joint pose in the device frame: ``rotation`` (3, 3) as nested tuples and ``translation`` (3,) in metres."""

    rotation: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def from_arrays(cls, rotation: NDArray, translation: NDArray) -> DeviceOffset:
        r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0:
            raise ValueError("calibration rotation must be a proper rotation matrix")
        rows = tuple((float(row[0]), float(row[1]), float(row[2])) for row in r)
        return cls(rows, (float(t[0]), float(t[1]), float(t[2])))

    def matrix(self) -> NDArray[np.float64]:
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.rotation, dtype=np.float64)
        m[:3, 3] = np.asarray(self.translation, dtype=np.float64)
        return m

    def as_dict(self) -> dict[str, Any]:
        return {"rotation": [list(r) for r in self.rotation], "translation_m": list(self.translation)}


def _offset(device_at_rest: NDArray, translation: tuple[float, float, float]) -> DeviceOffset:
    return DeviceOffset.from_arrays(device_at_rest.T, np.asarray(translation))


@dataclass(frozen=True)
class Calibration:
    """Per-device offsets (head, left wrist, right wrist). Edit with ``dataclasses.replace``.

    ``head_top_m`` is how far the top of the head is above the head joint, for the height estimate.
    """

    family: str = "generic"
    head: DeviceOffset = field(default_factory=lambda: DeviceOffset(translation=(0.0, 0.09, -0.08)))
    left: DeviceOffset = field(default_factory=lambda: _offset(_LEFT_DEVICE_AT_REST, (0.0, 0.05, 0.0)))
    right: DeviceOffset = field(default_factory=lambda: _offset(_RIGHT_DEVICE_AT_REST, (0.0, 0.05, 0.0)))
    head_top_m: float = 0.13

    @classmethod
    def for_family(cls, family: str) -> Calibration:
        """Defaults for a device family (see :data:`DEVICE_FAMILIES`)."""
        fam = family.lower()
        if fam in ("auto", "generic"):
            return cls(family="generic")
        if fam == "joints":
            return cls(family="joints", head=DeviceOffset(), left=DeviceOffset(), right=DeviceOffset())
        base = cls(family=fam)
        if fam == "quest":  # Touch controllers: tracking origin near the ring, grip slightly forward of the wrist
            return replace(
                base,
                left=_offset(_LEFT_DEVICE_AT_REST, (0.0, 0.06, 0.01)),
                right=_offset(_RIGHT_DEVICE_AT_REST, (0.0, 0.06, 0.01)),
            )
        if fam == "index":  # Knuckles: strapped to the hand, origin close to the palm
            return replace(
                base,
                left=_offset(_LEFT_DEVICE_AT_REST, (0.0, 0.04, 0.0)),
                right=_offset(_RIGHT_DEVICE_AT_REST, (0.0, 0.04, 0.0)),
            )
        if fam == "vive":  # wand controllers: origin at the top of the ring, further from the wrist
            return replace(
                base,
                left=_offset(_LEFT_DEVICE_AT_REST, (0.0, 0.08, 0.0)),
                right=_offset(_RIGHT_DEVICE_AT_REST, (0.0, 0.08, 0.0)),
            )
        raise ValueError(f"unknown device family {family!r}; choose one of {', '.join(DEVICE_FAMILIES)}")

    def offsets(self) -> NDArray[np.float64]:
        """(3, 4, 4) offsets in device order head, left, right."""
        return np.stack([self.head.matrix(), self.left.matrix(), self.right.matrix()])

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "head": self.head.as_dict(),
            "left_wrist": self.left.as_dict(),
            "right_wrist": self.right.as_dict(),
            "head_top_m": self.head_top_m,
        }


def detect_family(text: str) -> str:
    """Guess the family from device names in a header (e.g. a .bsor's hmd/controller strings)."""
    t = text.lower()
    if "knuckles" in t or "index" in t:
        return "index"
    if "quest" in t or "oculus" in t or "touch" in t or "rift" in t:
        return "quest"
    if "vive" in t:
        return "vive"
    return "generic"


def apply_calibration(rotations: NDArray, positions: NDArray, calib: Calibration) -> tuple[NDArray, NDArray]:
    """Device world poses (n, 3, 3, 3) and (n, 3, 3) -> joint world poses, same shapes."""
    off = calib.offsets()
    r_off = off[:, :3, :3]
    t_off = off[:, :3, 3]
    joint_r = rotations @ r_off
    joint_p = positions + np.einsum("ndab,db->nda", rotations, t_off)
    return joint_r, joint_p
