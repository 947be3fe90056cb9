# SPDX-License-Identifier: GPL-3.0-or-later
"""Coordinate conventions of tracking sources and their conversion to KineST's world.

KineST's world is Z-up, right-handed, metres. Device and joint frames follow the SMPL rest
pose: identity means "facing -Y, up +Z, the body's left at +X". A source convention is a
world basis change ``M`` (source coordinates -> KineST, possibly a mirror) plus the axes a
device with identity orientation points forward and up in its own source frame. With those,
a source pose ``(R_src, p_src)`` becomes ``(M R_src M^T C, M p_src)`` where ``C`` turns the
canonical frame into the mirrored device axes. Every preset maps "forward" to +Y and "right"
to +X (so a body facing the source's forward ends up facing +Y in KineST's world).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

#: Names accepted by ``read_tracking(convention=...)`` ("auto" picks one from the format and data).
CONVENTION_PRESETS: tuple[str, ...] = ("auto", "openxr", "openvr", "unity", "unreal", "blender", "bvh")
#: Names accepted by ``read_tracking(units=...)``.
UNIT_CHOICES: tuple[str, ...] = ("auto", "m", "cm", "mm")
#: Metres per unit.
UNIT_SCALES: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}

_AXIS_NAMES = ("X", "Y", "Z")


def _axis_label(v: NDArray) -> str:
    k = int(np.argmax(np.abs(v)))
    return ("+" if v[k] > 0 else "-") + _AXIS_NAMES[k]


@dataclass(frozen=True)
class Convention:
    """A source coordinate convention.

    - ``world``: (3, 3) matrix taking source coordinates to KineST's (det -1 for left-handed sources)
    - ``device_forward`` / ``device_up``: where a device with identity orientation points,
      in its own source-frame axes (OpenXR: forward -Z, up +Y)
    - ``units``: the unit the convention usually comes with, or None where it varies
    """

    name: str
    world: tuple[tuple[float, float, float], ...]
    device_forward: tuple[float, float, float]
    device_up: tuple[float, float, float]
    units: str | None = None
    description: str = field(default="", compare=False)

    @property
    def matrix(self) -> NDArray[np.float64]:
        return np.asarray(self.world, dtype=np.float64)

    @property
    def handedness(self) -> str:
        """Handedness of the *source* coordinates."""
        return "right" if np.linalg.det(self.matrix) > 0 else "left"

    @property
    def up_axis(self) -> str:
        """The source axis that is world up (e.g. ``+Y``)."""
        return _axis_label(self.matrix.T @ np.array([0.0, 0.0, 1.0]))

    @property
    def forward_axis(self) -> str:
        """The device-local axis that points forward (e.g. ``-Z``)."""
        return _axis_label(np.asarray(self.device_forward))

    def device_canonical(self) -> NDArray[np.float64]:
        """``C``: canonical device axes (forward -Y, up +Z, left +X) -> mirrored source device axes."""
        m = self.matrix
        f = m @ np.asarray(self.device_forward, dtype=np.float64)
        u = m @ np.asarray(self.device_up, dtype=np.float64)
        ey = -f  # canonical -Y is forward
        ez = u
        ex = np.cross(ey, ez)
        return np.stack([ex, ey, ez], axis=-1)

    def describe(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "handedness": self.handedness,
            "up_axis": self.up_axis,
            "device_forward_axis": self.forward_axis,
            "units": self.units,
            "description": self.description,
        }


_YUP_RH = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))  # (x, y, z) -> (x, -z, y)
_YUP_LH = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0))  # (x, y, z) -> (x, z, y)
_ZUP_LH_XFWD = ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0))  # (x, y, z) -> (y, x, z)
_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

PRESETS: dict[str, Convention] = {
    "openxr": Convention(
        "openxr", _YUP_RH, (0.0, 0.0, -1.0), (0.0, 1.0, 0.0), "m", "right-handed, Y up, -Z forward (OpenXR, WebXR)"
    ),
    "openvr": Convention(
        "openvr", _YUP_RH, (0.0, 0.0, -1.0), (0.0, 1.0, 0.0), "m", "right-handed, Y up, -Z forward (SteamVR/OpenVR)"
    ),
    "unity": Convention(
        "unity", _YUP_LH, (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), "m", "left-handed, Y up, +Z forward (Unity, Beat Saber)"
    ),
    "unreal": Convention(
        "unreal", _ZUP_LH_XFWD, (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), "cm", "left-handed, Z up, +X forward, cm (Unreal)"
    ),
    "blender": Convention(
        "blender", _IDENTITY, (0.0, -1.0, 0.0), (0.0, 0.0, 1.0), "m", "right-handed, Z up, -Y forward (Blender, KineST)"
    ),
    "bvh": Convention(
        "bvh", _YUP_RH, (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), None, "right-handed, Y up, rest pose facing +Z (BVH)"
    ),
}


def get_convention(convention: str | Convention) -> Convention:
    """A preset by name, or a custom :class:`Convention` passed through after a sanity check."""
    if isinstance(convention, Convention):
        m = convention.matrix
        if m.shape != (3, 3) or not np.allclose(np.abs(m @ m.T), np.eye(3), atol=1e-6):
            raise ValueError(f"convention {convention.name!r}: world matrix must be a signed axis permutation")
        return convention
    key = str(convention).lower()
    if key not in PRESETS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTION_PRESETS)}")
    return PRESETS[key]


def to_world(
    conv: Convention, positions: NDArray, rotations: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Source positions (..., 3) and rotation matrices (..., 3, 3) -> KineST world, canonical device axes."""
    m = conv.matrix
    c = conv.device_canonical()
    pos = np.einsum("ab,...b->...a", m, positions)
    rot = m @ rotations @ m.T @ c
    return pos, rot


def from_world(
    conv: Convention, positions: NDArray, rotations: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inverse of :func:`to_world` (used by tests and the synthetic-corruption study)."""
    m = conv.matrix
    c = conv.device_canonical()
    pos = np.einsum("ba,...b->...a", m, positions)
    rot = m.T @ rotations @ c.T @ m
    return pos, rot
