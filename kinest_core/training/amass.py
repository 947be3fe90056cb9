# SPDX-License-Identifier: GPL-3.0-or-later
"""AMASS (.npz, SMPL-H) -> the same SMPL-22 motions as :mod:`kinest_core.training.mocap`, and the Protocol 1 split.

For users who have AMASS access (licence-gated; never needed by this project): with their
own SMPL-H model files, ``kinest prepare-amass`` writes cached motions that ``kinest train``
and ``kinest evaluate`` read like the BVH-converted ones, so the paper's table can be
reproduced.

Frames and axes: AMASS worlds are Z-up; the SMPL model frame is Y-up facing +Z. Our rest
frame is the model frame turned by ``C`` = Rx(+90 deg) (facing -Y), so the pelvis rotation
becomes ``R_amass @ C^T``, every other local rotation ``C @ R @ C^T``, and the pelvis sits
at ``trans + J0`` (AMASS adds the model-frame pelvis joint without rotating it).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core import rotations as rot
from kinest_core.skeleton import NUM_JOINTS, PARENTS, forward_kinematics
from kinest_core.training.mocap import resample
from kinest_core.types import Motion

Array = NDArray[np.float64]
#: SMPL model frame (Y up, facing +Z) -> our rest frame (Z up, facing -Y).
MODEL_TO_REST = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
#: AMASS sub-datasets of Protocol 1 (AvatarPoser/AGRoL): 90 % train / 10 % test of each.
PROTOCOL1_DATASETS: tuple[str, ...] = ("CMU", "BMLrub", "HDM05")
TEST_FRACTION = 0.1

#: (betas (B,), gender) -> (SMPL-model-frame joints (22, 3), lowest vertex height in that frame (y)).
RestJointsFn = Callable[[NDArray, str], tuple[NDArray, float]]


class AmassError(ValueError):
    """An AMASS file without the arrays of the AMASS layout."""


def smplh_rest_joints(model_path: str) -> RestJointsFn:
    """Rest joints of a body shape from the user's SMPL-H model files (via ``smplx``), cached per shape."""
    if not os.path.exists(model_path):
        raise FileNotFoundError(
            f"SMPL-H model not found at {model_path!r}: pass the folder holding smplh/SMPLH_MALE.pkl (or .npz) "
            "files downloaded from mano.is.tue.mpg.de"
        )
    try:
        import smplx
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("reading AMASS needs the 'smplx' package: pip install smplx") from exc
    models: dict[str, Any] = {}
    cache: dict[tuple[str, bytes], tuple[NDArray, float]] = {}

    def fn(betas: NDArray, gender: str) -> tuple[NDArray, float]:
        g = gender if gender in ("male", "female", "neutral") else "neutral"
        b = np.asarray(betas, dtype=np.float32)
        key = (g, b.tobytes())
        if key in cache:
            return cache[key]
        if g not in models:
            path = _smplh_file(model_path, g)
            ext = "npz" if path.endswith(".npz") else "pkl"
            models[g] = smplx.SMPLH(path, gender=g, num_betas=int(b.shape[0]), use_pca=False, ext=ext)
        mdl = models[g]
        nb = int(mdl.shapedirs.shape[-1])  # a 10-shape SMPL-H file takes the first 10 betas
        shape = np.zeros(nb, dtype=np.float32)
        shape[: min(nb, b.shape[0])] = b[:nb]
        with torch.no_grad():  # rest pose: shaped template, joints by the regressor
            coeffs = torch.from_numpy(shape).to(mdl.shapedirs)
            verts = mdl.v_template + torch.einsum("vck,k->vc", mdl.shapedirs, coeffs)
            joints = (mdl.J_regressor @ verts)[:NUM_JOINTS].double().numpy()
        floor = float(verts[:, 1].min())
        cache[key] = (joints, floor)
        return cache[key]

    return fn


def _smplh_file(model_path: str, gender: str) -> str:
    """The model file for a gender: ``model_path`` itself if it is a file, else the usual layouts
    (AMASS's ``<gender>/model.npz``, MANO's ``smplh/SMPLH_<GENDER>.pkl``) under it."""
    if os.path.isfile(model_path):
        return model_path
    g = gender.upper()
    candidates = [
        os.path.join(model_path, gender, "model.npz"),
        os.path.join(model_path, "smplh", gender, "model.npz"),
        *(os.path.join(model_path, sub, f"SMPLH_{g}.{ext}") for sub in ("smplh", "") for ext in ("npz", "pkl")),
    ]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(
        f"no SMPL-H {gender} model under {model_path!r}: expected e.g. {candidates[0]} (AMASS layout) or {candidates[2]}"
    )


def convert_amass(path: str, rest_joints: RestJointsFn, target_fps: float = 60.0) -> Motion:
    """One AMASS ``.npz`` -> SMPL-22 :class:`Motion` at ``target_fps`` on the subject's own body."""
    try:
        with np.load(path, allow_pickle=False) as z:  # never unpickle a downloaded file: it could run code
            missing = [k for k in ("poses", "trans", "betas") if k not in z.files]
            if missing:
                raise AmassError(
                    f"{path}: not an AMASS motion file (no {', '.join(missing)}); shape-only files are skipped"
                )
            poses = np.asarray(z["poses"], dtype=np.float64)
            trans = np.asarray(z["trans"], dtype=np.float64)
            betas = np.asarray(z["betas"], dtype=np.float64)[:16]
            gender = str(np.asarray(z["gender"]).item()) if "gender" in z.files else "neutral"
            rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in z.files), None)
            fps = float(z[rate_key]) if rate_key else 60.0
    except AmassError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise AmassError(f"{path}: not a readable .npz file ({exc})") from exc
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise AmassError(f"{path}: not a readable AMASS motion file ({exc})") from exc
        raise AmassError(
            f"{path}: holds a Python object array (a pickle), which KineST does not load because unpickling can run "
            "code; AMASS's own files hold plain arrays: download the file again"
        ) from exc
    if gender.startswith("b'"):
        gender = gender[2:-1]
    if poses.ndim != 2 or poses.shape[1] < NUM_JOINTS * 3 or trans.shape != (poses.shape[0], 3):
        raise AmassError(f"{path}: poses {poses.shape} / trans {trans.shape} do not match the AMASS layout")
    joints, floor_y = rest_joints(betas, gender)
    joints = np.asarray(joints, dtype=np.float64)
    c = MODEL_TO_REST
    rest_j = joints @ c.T
    offsets = rest_j.copy()
    for j in range(1, NUM_JOINTS):
        offsets[j] = rest_j[j] - rest_j[PARENTS[j]]
    offsets[0] = np.array([0.0, 0.0, joints[0, 1] - floor_y])
    local = rot.axis_angle_to_matrix(poses[:, : NUM_JOINTS * 3].reshape(-1, NUM_JOINTS, 3))
    local = c @ local @ c.T
    local[:, 0] = rot.axis_angle_to_matrix(poses[:, 0:3]) @ c.T
    pelvis = trans + joints[0]
    root = pelvis - offsets[0]
    q, r = resample(local, root, fps, target_fps)
    _, pos = forward_kinematics(rot.quat_to_matrix(q), offsets, r)
    info = {"source": os.path.basename(path), "skeleton": "amass_smplh", "source_fps": fps, "gender": gender}
    return Motion(q, r, pos, offsets, fps=target_fps, info=info)


def protocol1_split(relative_path: str, test_files: set[str] | None = None) -> str:
    """``"train"`` or ``"test"`` for a path relative to the AMASS root (``CMU/01/01_01_poses.npz``).

    With ``test_files`` (e.g. the AvatarPoser lists) membership decides; otherwise a stable
    hash of the path puts 10 % of each dataset's files in test.
    """
    rel = relative_path.replace(os.sep, "/")
    if test_files is not None:
        return "test" if rel in test_files else "train"
    h = int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < TEST_FRACTION else "train"


def list_amass(root: str, datasets: Iterable[str] = PROTOCOL1_DATASETS) -> list[str]:
    """Motion files (relative paths) of the chosen sub-datasets under an AMASS root, sorted."""
    out: list[str] = []
    wanted = {d.lower() for d in datasets}
    for d in sorted(os.listdir(root)):
        if d.lower() not in wanted or not os.path.isdir(os.path.join(root, d)):
            continue
        for base, dirs, files in os.walk(os.path.join(root, d)):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".npz") and not f.endswith("shape.npz"):
                    out.append(os.path.relpath(os.path.join(base, f), root))
    return out


def prepare_amass(
    root: str,
    out_dir: str,
    rest_joints: RestJointsFn,
    datasets: Iterable[str] = PROTOCOL1_DATASETS,
    test_files: set[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Convert the Protocol 1 datasets into ``out_dir/train`` and ``out_dir/test`` (.npz motions + index.json)."""
    counts = {"train": 0, "test": 0, "skipped": 0}
    index: dict[str, dict[str, Any]] = {"train": {}, "test": {}}
    for rel in list_amass(root, datasets):
        split = protocol1_split(rel, test_files)
        name = rel.replace(os.sep, "/").replace("/", "__")[: -len(".npz")]
        dst = os.path.join(out_dir, split, name + ".npz")
        try:
            m = convert_amass(os.path.join(root, rel), rest_joints)
        except AmassError as exc:
            counts["skipped"] += 1
            if progress is not None:
                progress(f"skipped {rel}: {exc}")
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        m.save_npz(dst)
        index[split][name] = {"source": rel, "frames": m.num_frames, "source_fps": m.info["source_fps"]}
        counts[split] += 1
        if progress is not None:
            progress(f"{split}: {rel} ({m.num_frames} frames)")
    for split in ("train", "test"):
        if index[split]:
            with open(os.path.join(out_dir, split, "index.json"), "w", encoding="utf-8") as fh:
                json.dump(index[split], fh, indent=1)
    return counts
