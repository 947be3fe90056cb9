# SPDX-License-Identifier: GPL-3.0-or-later
"""Converted mocap as a training library: folders of BVH -> per-subject harmonised motions, caches and packs.

``python -m kinest_core.training.mocap_library SRC... CACHE_DIR`` converts folders into a cache;
:func:`load_motions` reads caches, packs or BVH back for training and evaluation.
"""

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core import rotations as rot
from kinest_core.outputs import staged_outputs
from kinest_core.skeleton import JOINT_NAMES, PARENTS, forward_kinematics
from kinest_core.training.mocap import CONVERTER_VERSION, ConversionReport, convert_bvh
from kinest_core.types import Motion

Array = NDArray[np.float64]

#: Head pitch (deg, negative = looking down) that a subject's upright frames get as their median.
HEAD_PITCH_DEG = -5.0


def subject_key(source: str) -> str:
    """Who and which rig a motion comes from (``cmu_daz:02``, ``cmu_mb:01``, ``accad:Male1``), from its file name."""
    base = os.path.basename(source)
    m = re.match(r"^accad_(Male\d+)", base)
    if m:
        return f"accad:{m.group(1)}"
    m = re.match(r"^(mb_)?(\d+)_", base)
    if m:
        return f"{'cmu_mb' if m.group(1) else 'cmu_daz'}:{m.group(2)}"
    return f"file:{_stem(base)}"


def harmonize(motions: Sequence[Motion], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per subject, settle how the head and hands sit on the body, in place; returns the corrections (deg).

    Rigs and subjects disagree by up to ~45 degrees on how a head or hand joint is turned
    when the person looks ahead or holds the wrist straight (marker caps and rest poses
    differ), while a headset or controller is read the same way for everyone. So, per
    subject: the hands are turned so their mean rotation relative to the forearm is the
    identity (a straight wrist); the head is turned so that, on average over upright frames,
    it faces where the chest faces without a sideways tilt, and its median pitch is
    :data:`HEAD_PITCH_DEG`. Head and hands are leaves: no joint moves.
    """
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    out: dict[str, dict[str, float]] = {}
    for key, idx in groups.items():
        mats = [rot.quat_to_matrix(motions[i].local_rotations[:, [15, 20, 21]]) for i in idx]
        corr: dict[str, float] = {}
        fixes: dict[int, Array] = {}
        for slot, joint in ((1, 20), (2, 21)):
            mean = np.concatenate([m[:, slot] for m in mats]).mean(axis=0)
            u, _, vt = np.linalg.svd(mean)
            q = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt  # chordal mean
            fixes[joint] = q.T
            corr[JOINT_NAMES[joint]] = float(np.degrees(np.linalg.norm(rot.matrix_to_axis_angle(q))))
        chest = [_global_of(motions[i], 9) for i in idx]
        necks = [_global_of(motions[i], 12) for i in idx]
        upright = []
        for i in idx:
            j = motions[i].joint_positions
            up = j[:, 12] - j[:, 0]
            upright.append(up[:, 2] / np.maximum(np.linalg.norm(up, axis=-1), 1e-9) > 0.9)
        if sum(int(u.sum()) for u in upright) >= 60:
            # 1) looking where the chest faces, head level sideways: the mean head rotation
            #    relative to the chest becomes a pure nod (turn and tilt removed)
            rel = np.concatenate(
                [
                    (np.swapaxes(c, -1, -2) @ n @ m[:, 0])[u]
                    for c, n, m, u in zip(chest, necks, mats, upright, strict=True)
                ]
            )
            u_, _, vt = np.linalg.svd(rel.mean(axis=0))
            mean_rel = u_ @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u_ @ vt))]) @ vt
            f = -mean_rel[:, 1]
            nod = rot.axis_angle_to_matrix(np.array([np.arctan2(-f[2], -f[1]), 0.0, 0.0]))
            fix_rel = mean_rel.T @ nod
            corr["head_turn_tilt"] = float(np.degrees(np.linalg.norm(rot.matrix_to_axis_angle(fix_rel))))
            # 2) the median pitch in the world over upright frames is HEAD_PITCH_DEG
            pitch = np.concatenate(
                [
                    np.degrees(np.arcsin(np.clip(-(n @ m[:, 0] @ fix_rel)[u][:, 2, 1], -1.0, 1.0)))
                    for n, m, u in zip(necks, mats, upright, strict=True)
                ]
            )
            delta = float(np.median(pitch) - HEAD_PITCH_DEG)
            fixes[15] = fix_rel @ rot.axis_angle_to_matrix(np.array([np.radians(delta), 0.0, 0.0]))
            corr["head_pitch"] = delta
        for i in idx:
            q = motions[i].local_rotations.copy()
            for joint, fix in fixes.items():
                q[:, joint] = rot.matrix_to_quat(rot.quat_to_matrix(q[:, joint]) @ fix)
            motions[i].local_rotations = rot.quat_make_continuous(q, axis=0)
        out[key] = corr
    return out


def _global_of(motion: Motion, joint: int) -> Array:
    """Global rotation (F, 3, 3) of one joint by FK of the local rotations."""
    chain = [joint]
    while PARENTS[chain[-1]] >= 0:
        chain.append(PARENTS[chain[-1]])
    g = np.tile(np.eye(3), (motion.num_frames, 1, 1))
    for j in reversed(chain):
        g = g @ rot.quat_to_matrix(motion.local_rotations[:, j])
    return g


def _is_bvh(name: str) -> bool:
    return name.endswith(".bvh") or name.endswith(".bvh.gz")


def list_bvh(paths: Iterable[str] | str) -> list[str]:
    """BVH files among ``paths`` (files or folders, not recursive into hidden folders), sorted."""
    items = [paths] if isinstance(paths, str) else list(paths)
    out: list[str] = []
    for p in items:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(os.path.join(root, f) for f in sorted(files) if _is_bvh(f))
        elif os.path.exists(p):
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def _stem(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".bvh.gz", ".bvh"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def convert_folder(
    src: Iterable[str] | str,
    cache_dir: str,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> list[str]:
    """Convert every BVH under ``src`` once into ``cache_dir`` (``<stem>_<seg>.npz`` + ``index.json``).

    Files whose cache is newer than the source are skipped, so reruns are cheap. Returns
    the cached motion paths. ``options`` go to :func:`convert_bvh`.
    """
    os.makedirs(cache_dir, exist_ok=True)
    changed = False
    index_path = os.path.join(cache_dir, "index.json")
    index: dict[str, Any] = {}
    if os.path.exists(index_path):
        with open(index_path, encoding="utf-8") as fh:
            index = json.load(fh)
    out: list[str] = []
    for path in list_bvh(src):
        stem = _stem(path)
        entry = index.get(stem)
        if (
            entry
            and entry.get("mtime") == os.path.getmtime(path)
            and entry.get("version") == CONVERTER_VERSION
            and entry.get("options", {}) == json.loads(json.dumps(options, default=str))
            and all(os.path.exists(os.path.join(cache_dir, n)) for n in entry["files"])
        ):
            out.extend(os.path.join(cache_dir, n) for n in entry["files"])
            continue
        t0 = time.perf_counter()
        for stale in entry["files"] if entry else []:  # an older conversion may have cut other segments
            if os.path.exists(os.path.join(cache_dir, stale)):
                os.remove(os.path.join(cache_dir, stale))
        reports: list[ConversionReport] = []
        motions = convert_bvh(path, report=reports, **options)
        names = []
        for i, m in enumerate(motions):
            name = f"{stem}_{i:02d}.npz"
            m.save_npz(os.path.join(cache_dir, name))  # renamed into place: ranks converting at once never clash
            names.append(name)
        rep = reports[0].as_dict()
        rep.update(
            files=names,
            mtime=os.path.getmtime(path),
            version=CONVERTER_VERSION,
            options=json.loads(json.dumps(options, default=str)),
            seconds=round(time.perf_counter() - t0, 3),
        )
        index[stem] = rep
        with staged_outputs(index_path) as (part,):  # renamed into place: torchrun ranks never read half of it
            part.write_text(json.dumps(index, indent=1), encoding="utf-8")
        out.extend(os.path.join(cache_dir, n) for n in names)
        changed = True
        if progress is not None:
            progress(
                f"{stem}: {len(motions)} segment(s), {reports[0].kept_frames} frames, max error {reports[0].max_position_error_m * 1000:.2f} mm"
            )
    if changed or not os.path.exists(os.path.join(cache_dir, "harmonize.json")):
        motions_all = [Motion.load_npz(f) for f in out]
        corr = harmonize(motions_all, [subject_key(f) for f in out])
        for f, m in zip(out, motions_all, strict=True):
            m.save_npz(f)  # written beside and renamed into place (kinest_core.outputs.write_npz)
        with staged_outputs(os.path.join(cache_dir, "harmonize.json")) as (part,):
            part.write_text(json.dumps(corr, indent=1), encoding="utf-8")
    return out


PACK_SUFFIX = ".pack.npz"
_Q_SCALE = 32767.0


def pack_motions(motions: Sequence[Motion], path: str) -> int:
    """Many motions in one small file (quaternions as int16, ~0.002 deg): for carrying data to a GPU box.

    Joint positions are not stored; :func:`load_pack` recomputes them by FK. Returns bytes written.
    """
    if not path.endswith(PACK_SUFFIX):
        raise ValueError(f"a motion pack is named *{PACK_SUFFIX}, got {path!r}")
    q = np.concatenate([rot.quat_make_continuous(m.local_rotations, axis=0) for m in motions])
    np.savez_compressed(
        path,
        quats=np.round(np.clip(q, -1.0, 1.0) * _Q_SCALE).astype(np.int16),
        root=np.concatenate([m.root_translation for m in motions]).astype(np.float32),
        rest=np.stack([m.rest_offsets for m in motions]).astype(np.float32),
        lengths=np.array([m.num_frames for m in motions], dtype=np.int64),
        fps=np.array([m.fps for m in motions]),
        names=np.array([str(m.info.get("source", i)) for i, m in enumerate(motions)]),
    )
    return os.path.getsize(path)


def load_pack(path: str) -> list[Motion]:
    """Motions from a :func:`pack_motions` file."""
    with np.load(path, allow_pickle=False) as z:
        quats = z["quats"].astype(np.float64) / _Q_SCALE
        root = z["root"].astype(np.float64)
        rest = z["rest"].astype(np.float64)
        lengths = z["lengths"]
        fps = z["fps"]
        names = [str(n) for n in z["names"]]
    out: list[Motion] = []
    start = 0
    for i, n in enumerate(lengths):
        q = rot.quat_normalize(quats[start : start + n])
        r = root[start : start + n]
        _, pos = forward_kinematics(rot.quat_to_matrix(q), rest[i], r)
        out.append(Motion(q, r, pos, rest[i], fps=float(fps[i]), info={"source": names[i]}))
        start += int(n)
    return out


def load_motions(paths: Iterable[str] | str) -> list[Motion]:
    """Motions from cached ``.npz`` files and/or BVH files (converted on the fly), folders allowed."""
    items = [paths] if isinstance(paths, str) else list(paths)
    out: list[Motion] = []
    for p in items:
        if os.path.isdir(p):
            npz = sorted(
                os.path.join(p, f)
                for f in os.listdir(p)
                if f.endswith(".npz") and not f.startswith(".") and not f.endswith((".tmp.npz", PACK_SUFFIX))
            )
            if npz:
                for f in npz:
                    m = Motion.load_npz(f)
                    m.info["source"] = os.path.basename(f)
                    out.append(m)
                continue
            out.extend(_convert_harmonized(list_bvh(p)))
        elif p.endswith(PACK_SUFFIX):
            out.extend(load_pack(p))
        elif p.endswith(".npz"):
            m = Motion.load_npz(p)
            m.info["source"] = os.path.basename(p)
            out.append(m)
        else:
            out.extend(_convert_harmonized([p]))
    return out


def _convert_harmonized(paths: Sequence[str]) -> list[Motion]:
    motions: list[Motion] = []
    for f in paths:
        motions.extend(convert_bvh(f))
    harmonize(motions, [subject_key(str(m.info.get("source", ""))) for m in motions])
    return motions


def main(argv: list[str] | None = None) -> int:
    """``python -m kinest_core.training.mocap SRC... CACHE_DIR``: convert folders into a cache."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("src", nargs="+")
    ap.add_argument("cache_dir")
    ap.add_argument("--smooth-ms", type=float, default=0.0, help="Gaussian smoothing sigma in ms (0: exact)")
    ap.add_argument("--pack", help=f"also write all motions into one small *{PACK_SUFFIX} file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    opts: dict[str, Any] = {"smooth_s": args.smooth_ms / 1000.0} if args.smooth_ms > 0 else {}
    files = convert_folder(args.src, args.cache_dir, progress=lambda s: print(s, flush=True), **opts)
    print(f"{len(files)} motion segments in {time.perf_counter() - t0:.1f} s -> {args.cache_dir}", flush=True)
    if args.pack:
        size = pack_motions(load_motions(files), args.pack)
        print(f"packed into {args.pack} ({size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
