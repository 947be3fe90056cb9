# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH files: a tolerant reader (plain or gzip) with forward kinematics, and an SMPL-22 writer.

BVH conventions (as every common exporter writes them): a joint's local rotation is the
product of its rotation channels in the order listed (``Zrotation Xrotation Yrotation``
gives ``Rz @ Rx @ Ry``), global = parent global @ local, and a joint sits at its parent's
position plus the parent's global rotation applied to its OFFSET. Angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from kinest_core import rotations as rot
from kinest_core.errors import OutputFileError, TrackingFileError
from kinest_core.io.files import MAX_FILE_BYTES, read_text_bytes
from kinest_core.outputs import staged_outputs
from kinest_core.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

MAX_BVH_BYTES = MAX_FILE_BYTES


class BvhError(ValueError):
    """A BVH file that cannot be read; the message names the file, line and problem."""


@dataclass
class BvhData:
    """A parsed BVH: joints in file order, channels, per-frame values and rate.

    - ``names``/``parents``/``offsets`` (joints, 3) in the file's units and axes
    - ``channels``: per joint, the channel names in file order
    - ``motion``: (frames, total channels) as written (degrees, file units)
    - ``end_sites``: joint index -> End Site offset, for leaf joints
    """

    path: str
    names: list[str]
    parents: list[int]
    offsets: NDArray[np.float64]
    channels: list[list[str]]
    motion: NDArray[np.float64]
    frame_time: float
    end_sites: dict[int, NDArray[np.float64]]

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        return self.names.index(name)

    def local_transforms(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per frame and joint: local rotation matrices (F, J, 3, 3) and translations (F, J, 3).

        A joint's translation is its OFFSET unless it has position channels, which replace it
        (the common reading; exporters that write absolute root positions need this).
        """
        f, j = self.num_frames, len(self.names)
        rmats = np.tile(np.eye(3), (f, j, 1, 1))
        trans = np.tile(self.offsets[None], (f, 1, 1))
        col = 0
        for k, chans in enumerate(self.channels):
            rot_axes = ""
            rot_cols = []
            for c in chans:
                axis = c[0].upper()
                if c.lower().endswith("position"):
                    trans[:, k, "XYZ".index(axis)] = self.motion[:, col]
                else:
                    rot_axes += axis
                    rot_cols.append(col)
                col += 1
            if rot_axes:
                angles = self.motion[:, rot_cols]
                rmats[:, k] = Rotation.from_euler(rot_axes, angles, degrees=True).as_matrix()
        return rmats, trans

    def global_transforms(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Forward kinematics: global rotations (F, J, 3, 3) and positions (F, J, 3), file units."""
        local_r, local_t = self.local_transforms()
        glob_r = np.empty_like(local_r)
        glob_p = np.empty_like(local_t)
        for k, p in enumerate(self.parents):
            if p < 0:
                glob_r[:, k] = local_r[:, k]
                glob_p[:, k] = local_t[:, k]
            else:
                glob_r[:, k] = glob_r[:, p] @ local_r[:, k]
                glob_p[:, k] = glob_p[:, p] + np.einsum("fab,fb->fa", glob_r[:, p], local_t[:, k])
        return glob_r, glob_p


def _open_text(path: str) -> str:
    """The file's text (gzip unpacked), its size, kind and line lengths checked before parsing."""
    try:
        raw = read_text_bytes(path, limit=MAX_BVH_BYTES)
    except TrackingFileError as exc:
        raise BvhError(str(exc)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_bvh(path: str) -> BvhData:
    """Parse a BVH file (``.bvh`` or ``.bvh.gz``); raises :class:`BvhError` with file and line."""
    text = _open_text(path)
    lines = text.splitlines()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: dict[int, NDArray[np.float64]] = {}
    stack: list[int] = []
    in_end = False
    pending: int | None = None
    i = 0

    def fail(msg: str) -> BvhError:
        return BvhError(f"{path}, line {i + 1}: {msg}")

    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip().upper() != "HIERARCHY":
        raise fail("expected 'HIERARCHY' at the start; this is not a BVH file")
    i += 1
    while i < len(lines):
        tok = lines[i].split()
        i += 1
        if not tok:
            continue
        key = tok[0].upper()
        if key in ("ROOT", "JOINT"):
            if len(tok) < 2:
                i -= 1
                raise fail(f"{key} without a name")
            names.append(" ".join(tok[1:]))
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
        elif key == "END":
            in_end = True
            pending = None
        elif key == "{":
            if in_end:
                continue
            if pending is None:
                i -= 1
                raise fail("'{' without a joint")
            stack.append(pending)
            pending = None
        elif key == "}":
            if in_end:
                in_end = False
                continue
            if not stack:
                i -= 1
                raise fail("unbalanced '}'")
            stack.pop()
        elif key == "OFFSET":
            try:
                vals = [float(v) for v in tok[1:4]]
            except ValueError:
                i -= 1
                raise fail(f"OFFSET values are not numbers: {' '.join(tok[1:])}") from None
            if len(vals) != 3:
                i -= 1
                raise fail("OFFSET needs three numbers")
            if in_end:
                if stack:
                    end_sites[stack[-1]] = np.array(vals)
            elif pending is not None:
                offsets[pending] = vals
            elif stack:
                offsets[stack[-1]] = vals
        elif key == "CHANNELS":
            target = pending if pending is not None else (stack[-1] if stack else None)
            if target is None:
                i -= 1
                raise fail("CHANNELS outside a joint")
            try:
                n = int(tok[1])
            except (IndexError, ValueError):
                i -= 1
                raise fail("CHANNELS needs a count") from None
            chans = tok[2 : 2 + n]
            valid_names = {a + k for a in "XYZ" for k in ("position", "rotation")}
            if len(chans) != n or any(c[0].upper() + c[1:].lower() not in valid_names for c in chans):
                i -= 1
                raise fail(f"bad CHANNELS line: {' '.join(tok)}")
            rot_axes = [c[0].upper() for c in chans if c.lower().endswith("rotation")]
            pos_axes = [c[0].upper() for c in chans if c.lower().endswith("position")]
            if (
                len(rot_axes) not in (0, 3)
                or len(set(rot_axes)) != len(rot_axes)
                or len(set(pos_axes)) != len(pos_axes)
            ):
                i -= 1
                raise fail(f"a joint needs 0 or 3 distinct rotation channels and no repeated position: {' '.join(tok)}")
            channels[target] = chans
        elif key == "MOTION":
            break
        else:
            i -= 1
            raise fail(f"unexpected '{tok[0]}' in HIERARCHY")
    else:
        raise fail("no MOTION section; the file is truncated")
    if not names:
        raise fail("no joints in HIERARCHY")
    if stack:
        raise fail("HIERARCHY ends with unclosed '{'")

    num_frames = frame_time = None
    while i < len(lines) and (num_frames is None or frame_time is None):
        s = lines[i].strip()
        i += 1
        if not s:
            continue
        low = s.lower()
        if not low.startswith(("frames:", "frame time:")):
            i -= 1
            raise fail(f"expected 'Frames:' / 'Frame Time:', found {s[:40]!r}")
        try:
            if low.startswith("frames:"):
                num_frames = int(s.split(":", 1)[1])
            else:
                frame_time = float(s.split(":", 1)[1])
        except ValueError:
            i -= 1
            raise fail(f"cannot read number in {s[:40]!r}") from None
        if num_frames is not None and num_frames < 0:
            i -= 1
            raise fail(f"'Frames: {num_frames}' is not a frame count; it must be the number of motion rows (0 or more)")
    if num_frames is None or frame_time is None:
        raise fail("missing 'Frames:' or 'Frame Time:' line")
    if not (frame_time > 0 and np.isfinite(frame_time)):
        raise fail(f"Frame Time {frame_time} must be a positive number of seconds")
    total = sum(len(c) for c in channels)
    if num_frames == 0:  # a skeleton without motion (a rig): valid, but holds no frames
        motion = np.zeros((0, total))
    else:
        motion = _motion_rows(path, lines, i, num_frames, total)
    return BvhData(
        path=path,
        names=names,
        parents=parents,
        offsets=np.array(offsets, dtype=np.float64),
        channels=channels,
        motion=motion,
        frame_time=float(frame_time),
        end_sites=end_sites,
    )


def _motion_rows(path: str, lines: list[str], i: int, num_frames: int, total: int) -> NDArray[np.float64]:
    """The ``num_frames`` motion rows from line ``i`` on, checked: count, numbers, width, finiteness."""
    body = [ln for ln in lines[i:] if ln.strip()]
    if len(body) < num_frames:
        raise BvhError(
            f"{path}: header says {num_frames} frames but only {len(body)} motion rows follow; "
            "the file is truncated (reading the rows that exist needs a re-export)"
        )
    try:
        motion = np.array([ln.split() for ln in body[:num_frames]], dtype=np.float64)
    except ValueError:
        for k, ln in enumerate(body[:num_frames]):
            parts = ln.split()
            try:
                [float(v) for v in parts]
            except ValueError:
                raise BvhError(f"{path}, line {i + k + 1}: motion row {k} holds a non-number") from None
            if len(parts) != total:
                raise BvhError(
                    f"{path}, line {i + k + 1}: motion row {k} has {len(parts)} values, the hierarchy needs {total}"
                ) from None
        raise
    if motion.ndim != 2 or (num_frames and motion.shape[1] != total):
        raise BvhError(f"{path}: motion rows have {motion.shape[-1]} values, the hierarchy declares {total} channels")
    if not np.all(np.isfinite(motion)):
        bad = int(np.argmax(~np.all(np.isfinite(motion), axis=1)))
        raise BvhError(f"{path}: motion frame {bad} holds NaN or inf; fix or trim that frame")
    return motion


# Z-up (x, y, z) -> BVH Y-up (x, z, -y): a proper rotation, the inverse of what Blender's
# BVH importer applies with its default forward -Z / up Y.
ZUP_TO_YUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_LEAF_END_SITES = {
    15: (0.0, 0.0, 0.13),
    20: (0.08, 0.0, 0.0),
    21: (-0.08, 0.0, 0.0),
    10: (0.0, -0.06, 0.0),
    11: (0.0, -0.06, 0.0),
}


def write_motion_bvh(
    path: str,
    local_rotations: NDArray,
    root_translation: NDArray,
    rest_offsets: NDArray,
    fps: float,
    unit_scale: float = 100.0,
) -> None:
    """Write an SMPL-22 motion as BVH: Y-up, centimetres (``unit_scale`` per metre), ZXY channels.

    ``local_rotations`` are (frames, 22, 4) wxyz quaternions in the Z-up frame.
    """
    q = np.asarray(local_rotations, dtype=np.float64)
    if not (np.isfinite(fps) and fps > 0):
        raise OutputFileError(
            path, f"the motion's fps is {fps}; nothing was written", hint="a frame rate must be above 0"
        )
    for name, a in (("rotations", q), ("root translation", root_translation), ("rest offsets", rest_offsets)):
        if not np.all(np.isfinite(np.asarray(a, dtype=np.float64))):
            raise OutputFileError(path, f"the motion's {name} hold NaN or inf; nothing was written")
    mats = rot.quat_to_matrix(q)
    c = ZUP_TO_YUP
    mats_y = c @ mats @ c.T
    offsets_y = (np.asarray(rest_offsets) @ c.T) * unit_scale
    root_y = (np.asarray(root_translation) + rest_offsets[0]) @ c.T * unit_scale
    euler = (
        Rotation.from_matrix(mats_y.reshape(-1, 3, 3)).as_euler("ZXY", degrees=True).reshape(q.shape[0], NUM_JOINTS, 3)
    )
    scale = float(np.linalg.norm(rest_offsets[1:], axis=-1).sum() / 4.25)

    out: list[str] = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        kind = "ROOT" if PARENTS[j] < 0 else "JOINT"
        off = offsets_y[j] if PARENTS[j] >= 0 else np.zeros(3)
        out.append(f"{ind}{kind} {JOINT_NAMES[j]}")
        out.append(f"{ind}{{")
        out.append(f"{ind}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        if PARENTS[j] < 0:
            out.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            out.append(f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation")
        kids = [k for k, p in enumerate(PARENTS) if p == j]
        for k in kids:
            emit(k, depth + 1)
        if not kids:
            e = (np.array(_LEAF_END_SITES.get(j, (0.0, 0.0, 0.05))) * scale) @ c.T * unit_scale
            out.append(f"{ind}  End Site")
            out.append(f"{ind}  {{")
            out.append(f"{ind}    OFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}")
            out.append(f"{ind}  }}")
        out.append(f"{ind}}}")

    emit(0, 0)
    order: list[int] = []

    def walk(j: int) -> None:
        order.append(j)
        for k, p in enumerate(PARENTS):
            if p == j:
                walk(k)

    walk(0)
    out.append("MOTION")
    out.append(f"Frames: {q.shape[0]}")
    out.append(f"Frame Time: {1.0 / fps:.8f}")
    rows = np.concatenate([root_y[:, None, :], euler[:, order, :]], axis=1).reshape(q.shape[0], -1)
    with staged_outputs(path) as (tmp,), open(tmp, "w", encoding="ascii") as fh:
        fh.write("\n".join(out) + "\n")
        np.savetxt(fh, rows, fmt="%.5f")
