# SPDX-License-Identifier: GPL-3.0-or-later
"""A character's rest skeleton and what its structure and geometry say about it.

The bone mapper (:mod:`kinest_core.postprocess.bone_map`) asks names first; this module
answers what names cannot: which side a limb rests on (from where the feet point), where
the legs and the spine meet, which bones on the path from the hips to the head are spine
and which neck, and, for limbs no name gives, which bones are the upper and lower limb (the
two longest straight segments of the chain). World space, Z up, any facing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SIDES = ("L", "R")
ARM_ROLES = ("collar", "shoulder", "elbow", "wrist")
LEG_ROLES = ("hip", "knee", "ankle", "foot")
UP = np.array([0.0, 0.0, 1.0])
#: SMPL's spine2 sits this far from the pelvis towards spine3 (heights), spine1 below it.
SPINE2_FRACTION = 0.82


@dataclass(frozen=True)
class TargetSkeleton:
    """A character's skeleton at rest: bone names, parents (-1 for roots), world heads and tails.

    ``rest_rotations`` (N, 3, 3) take a bone's own axes to world axes (Blender: the bone's rest
    matrix in world space, Y along the bone); ``None`` means every bone's axes are the world's
    (BVH). World space is Z up, in the character's own units.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: NDArray[np.float64]
    tails: NDArray[np.float64]
    rest_rotations: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.parents) != n or np.shape(self.heads) != (n, 3) or np.shape(self.tails) != (n, 3):
            raise ValueError(f"skeleton of {n} bones needs {n} parents, heads (N, 3) and tails (N, 3)")
        if self.rest_rotations is not None and np.shape(self.rest_rotations) != (n, 3, 3):
            raise ValueError(f"skeleton of {n} bones needs rest rotations (N, 3, 3)")
        if len(set(self.names)) != n:
            raise ValueError("skeleton bone names must be unique")
        for i, p in enumerate(self.parents):
            if not -1 <= p < n or p == i:
                raise ValueError(f"bone {self.names[i]!r} has an invalid parent index {p}")
        for i in range(n):
            seen, k = 0, i
            while k >= 0:
                k = self.parents[k]
                seen += 1
                if seen > n:
                    raise ValueError(f"bone {self.names[i]!r} is its own ancestor")
        if not (np.all(np.isfinite(self.heads)) and np.all(np.isfinite(self.tails))):
            raise ValueError("skeleton rest positions hold NaN or inf")

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, i: int) -> list[int]:
        return [k for k, p in enumerate(self.parents) if p == i]

    def ancestors(self, i: int) -> list[int]:
        out = []
        while self.parents[i] >= 0:
            i = self.parents[i]
            out.append(i)
        return out

    def path(self, top: int, bottom: int) -> list[int] | None:
        """Bones from ``top`` down to ``bottom`` (both included), or None if ``top`` is no ancestor."""
        chain = [bottom]
        while chain[-1] != top:
            p = self.parents[chain[-1]]
            if p < 0:
                return None
            chain.append(p)
        return chain[::-1]

    def subtree(self, i: int) -> list[int]:
        out, todo = [], [i]
        kids: dict[int, list[int]] = {}
        for k, p in enumerate(self.parents):
            kids.setdefault(p, []).append(k)
        while todo:
            b = todo.pop()
            out.append(b)
            todo += kids.get(b, [])
        return out

    @property
    def size(self) -> float:
        """Largest extent of the rest pose (tolerances in the skeleton's own units)."""
        pts = np.concatenate([self.heads, self.tails])
        return float(np.max(np.ptp(pts, axis=0))) or 1.0


def lowest_common_ancestor(skel: TargetSkeleton, bones: list[int]) -> int | None:
    if not bones:
        return None
    common = [bones[0], *skel.ancestors(bones[0])]
    for b in bones[1:]:
        line = {b, *skel.ancestors(b)}
        common = [c for c in common if c in line]
    return common[0] if common else None


def _horizontal(v: NDArray) -> NDArray:
    return np.asarray(v, dtype=np.float64) * np.array([1.0, 1.0, 0.0])


def facing(skel: TargetSkeleton, chosen: dict[str, int]) -> NDArray[np.float64] | None:
    """The direction the character faces at rest, from where its feet point (None when they say nothing)."""
    votes = []
    for s in ("left", "right"):
        a, t = chosen.get(f"{s}_ankle"), chosen.get(f"{s}_foot")
        if a is not None:
            end = skel.heads[t] if t is not None else skel.tails[a]
            votes.append(_horizontal(end - skel.heads[a]))
    if not votes:
        return None
    f = np.mean(votes, axis=0)
    n = float(np.linalg.norm(f))
    return f / n if n > 0.02 * skel.size else None


def fix_sides(skel: TargetSkeleton, chosen: dict[str, int], notes: list[str]) -> None:
    """Swap left and right when every named limb rests on the other side of the body than its name says."""
    fwd = facing(skel, chosen)
    if fwd is None:
        return
    left_axis = np.cross(UP, fwd)
    votes = []
    for role in ARM_ROLES[1:] + LEG_ROLES[:3]:
        a, b = chosen.get(f"left_{role}"), chosen.get(f"right_{role}")
        if a is not None and b is not None:
            votes.append(float(np.dot(skel.heads[a] - skel.heads[b], left_axis)))
    if votes and all(v < 0 for v in votes):
        swapped = {}
        for k, v in chosen.items():
            if k.startswith("left_"):
                swapped["right_" + k[5:]] = v
            elif k.startswith("right_"):
                swapped["left_" + k[6:]] = v
            else:
                swapped[k] = v
        chosen.clear()
        chosen.update(swapped)
        notes.append("the bones named left rest on the character's right (seen from its feet): sides swapped")


def rigify_controls(skel: TargetSkeleton) -> dict[str, int]:
    """A generated Rigify rig's trunk controls, or {} for other rigs.

    ``torso`` plays the pelvis; the FK spine controls the legs hang below (``spine_fk``,
    ``spine_fk.001``: the hips side of the torso's pivot) share its rotation (keys
    ``pelvis+NAME``); the others, from the pivot up, are spine1 .. spine3 (spine2 only with
    three or more of them); then ``neck`` and ``head``.
    """
    names = set(skel.names)
    if not {"torso", "spine_fk.001", "upper_arm_fk.L", "thigh_fk.L"} <= names:
        return {}
    legs = set(skel.ancestors(skel.index("thigh_fk.L")))
    fk = [i for i, n in enumerate(skel.names) if n == "spine_fk" or n.startswith("spine_fk.")]
    lower = [i for i in fk if i in legs]
    upper = sorted((i for i in fk if i not in legs), key=lambda i: len(skel.ancestors(i)))
    out = {"pelvis": skel.index("torso")}
    out.update({f"pelvis+{skel.names[i]}": i for i in lower})
    if upper:
        out["spine1"], out["spine3"] = upper[0], upper[-1]
        if len(upper) >= 3:
            out["spine2"] = upper[len(upper) // 2]
    out.update({j: skel.index(j) for j in ("neck", "head") if j in names})
    return out


def limb_from_path(skel: TargetSkeleton, path: list[int], roles: tuple[str, ...]) -> dict[str, int]:
    """Roles along a limb path (arm: collar to fingertip; leg: thigh to toe) from human proportions:
    along an arm, where each joint sits on the way from the collar to the fingertip; along a leg,
    how high each joint sits between the hip and the floor."""
    if len(path) < 3:
        return {}
    heads = skel.heads[path]
    if roles is LEG_ROLES:
        floor = float(min(skel.tails[path[-1], 2], heads[:, 2].min()))
        hip_h = float(heads[0, 2]) - floor
        if hip_h <= 0:
            return {}
        rel = (heads[:, 2] - floor) / hip_h
        knee = 1 + int(np.argmin(np.abs(rel[1:] - 0.52)))
        if knee + 1 >= len(path):
            return {}
        ankle = knee + 1 + int(np.argmin(np.abs(rel[knee + 1 :] - 0.1)))
        out = {"hip": path[0], "knee": path[knee], "ankle": path[ankle]}
        if ankle + 1 < len(path):
            out["foot"] = path[ankle + 1]
        return out
    steps = np.linalg.norm(np.diff(np.vstack([heads, skel.tails[path[-1]]]), axis=0), axis=1)
    frac = np.concatenate([[0.0], np.cumsum(steps)])[:-1] / max(float(steps.sum()), 1e-12)
    pick = [int(np.argmin(np.abs(frac - f))) for f in (0.15, 0.47, 0.78)]
    if frac[pick[0]] > 0.3 or pick[0] == 0 or frac[pick[0]] < 0.06:
        pick[0] = 0
    if len(set(pick)) < 3 or sorted(pick) != pick:
        return {}
    out = {"shoulder": path[pick[0]], "elbow": path[pick[1]], "wrist": path[pick[2]]}
    if pick[0] > 0:
        out["collar"] = path[0]
    return out


def _legs_and_spine(skel: TargetSkeleton) -> tuple[int, list[int], int] | None:
    """(hips, the two leg children, the spine child) from where subtrees reach the floor and the top."""
    pts_z = np.maximum(skel.heads[:, 2], skel.tails[:, 2])
    low_z = np.minimum(skel.heads[:, 2], skel.tails[:, 2])
    zmin, zmax = float(low_z.min()), float(pts_z.max())
    h = zmax - zmin
    best: tuple[int, list[int], int] | None = None
    best_depth = -1
    for b in range(len(skel.names)):
        legs = [c for c in skel.children(b) if min(low_z[skel.subtree(c)]) < zmin + 0.15 * h]
        if len(legs) < 2 or len(skel.ancestors(b)) <= best_depth:
            continue
        up = b
        while up >= 0:  # the spine may leave from the leg root or an ancestor of it
            spine = [c for c in skel.children(up) if c not in legs and max(pts_z[skel.subtree(c)]) > zmax - 0.15 * h]
            if spine:
                best, best_depth = (up, legs[:2], spine[0]), len(skel.ancestors(b))
                break
            up = skel.parents[up]
    return best


def find_limbs_by_geometry(skel: TargetSkeleton, chosen: dict[str, int], how: dict[str, str], notes: list[str]) -> None:
    """Legs and arms no name gave: chains from the hips to the floor and from the chest outwards."""
    sides = ("left", "right")
    need_legs = any(all(f"{s}_{r}" not in chosen for r in LEG_ROLES) for s in sides)
    need_arms = any(all(f"{s}_{r}" not in chosen for r in ARM_ROLES) for s in sides)
    if not (need_legs or need_arms):
        return
    found = _legs_and_spine(skel)
    if found is None:
        notes.append("no two legs and a spine found in the bone structure")
        return
    hips, legs, spine_child = found
    fwd = facing(skel, chosen)
    limbs: list[tuple[dict[str, int], tuple[str, ...]]] = []
    h = skel.size
    if need_legs:
        for c in legs:
            sub = skel.subtree(c)
            low = min(sub, key=lambda k: min(skel.heads[k, 2], skel.tails[k, 2]) - len(skel.ancestors(k)) * 1e-4 * h)
            path = skel.path(c, low) or [c]
            limbs.append((limb_from_path(skel, path, LEG_ROLES), LEG_ROLES))
    if need_arms:
        sub = skel.subtree(spine_child)
        centre = _horizontal(skel.heads[hips])
        reach = {k: float(np.linalg.norm(_horizontal(skel.tails[k]) - centre)) for k in sub}
        branch = None
        for k in sub:  # deepest bone with two children that reach far sideways
            wide = [c for c in skel.children(k) if max(reach[x] for x in skel.subtree(c)) > 0.25 * skel.size]
            if len(wide) >= 2 and (branch is None or len(skel.ancestors(k)) > len(skel.ancestors(branch[0]))):
                branch = (k, wide)
        if branch is not None:
            for c in branch[1][:2]:
                far = max(skel.subtree(c), key=lambda x: reach[x])
                path = skel.path(c, far) or [c]
                limbs.append((limb_from_path(skel, path, ARM_ROLES), ARM_ROLES))
    if fwd is None:
        feet = [lm.get("ankle") for lm, roles in limbs if roles is LEG_ROLES]
        fwd = facing(skel, {f"{s}_ankle": f for s, f in zip(sides, feet, strict=False) if f is not None})
    if fwd is None:
        fwd = np.array([0.0, -1.0, 0.0])
        notes.append("facing not found from the feet: assumed -Y")
    left_axis = np.cross(UP, fwd)
    for limb, roles in limbs:
        if not limb:
            continue
        side = (
            "left"
            if float(np.dot(skel.heads[next(iter(limb.values()))] - skel.heads[hips], left_axis)) > 0
            else "right"
        )
        if any(f"{side}_{r}" in chosen for r in roles):
            continue
        for r, b in limb.items():
            chosen[f"{side}_{r}"] = b
            how[f"{side}_{r}"] = "geometry"


def find_trunk(
    skel: TargetSkeleton, chosen: dict[str, int], how: dict[str, str], notes: list[str], named_hips: list[int]
) -> None:
    """Hips where the legs and arms meet; spine and neck on the path from there to the head."""
    limbs = [chosen[j] for j in ("left_hip", "right_hip", "left_shoulder", "right_shoulder") if j in chosen]
    if "pelvis" not in chosen:
        hips = lowest_common_ancestor(skel, limbs) if len(limbs) >= 3 else None
        if hips is None and named_hips:
            hips = min(named_hips, key=lambda i: len(skel.ancestors(i)))
        if hips is None:
            return
        chosen["pelvis"] = hips
        how["pelvis"] = "structure"
    hips = chosen["pelvis"]
    arms = [chosen[j] for j in ("left_collar", "right_collar") if j in chosen]
    if len(arms) < 2:
        arms = [chosen[j] for j in ("left_shoulder", "right_shoulder") if j in chosen]
    branch = lowest_common_ancestor(skel, arms) if len(arms) == 2 else None
    if "head" not in chosen and branch is not None:
        arm_bones = {x for a in arms for x in skel.subtree(a)}
        cands = [k for k in skel.subtree(branch) if k not in arm_bones and k != branch]
        if cands:
            top = max(cands, key=lambda k: skel.heads[k, 2])
            short = np.linalg.norm(skel.tails[top] - skel.heads[top]) < 0.02 * skel.size
            if short and not skel.children(top) and skel.parents[top] in cands:
                top = skel.parents[top]
            chosen["head"] = top
            how["head"] = "structure"
    if "head" not in chosen:
        return
    path = skel.path(hips, chosen["head"])
    if path is None:
        notes.append(f"head bone {skel.names[chosen['head']]} is not below the hips bone {skel.names[hips]}")
        del chosen["head"]
        return
    if branch is None or branch not in path:
        on_path = [b for b in path if b != chosen["head"] and all(b in [a, *skel.ancestors(a)] for a in arms)]
        branch = on_path[-1] if on_path else None
    if branch is None or branch == hips:
        return
    k = path.index(branch)
    lower, necks = path[1:k], path[k + 1 : -1]
    trunk = {"spine3": branch}
    if lower:
        trunk["spine1"] = lower[0]
        if len(lower) >= 2:
            z0, z1 = skel.heads[hips, 2], skel.heads[branch, 2]
            frac = [(skel.heads[b, 2] - z0) / (z1 - z0 or 1.0) for b in lower[1:]]
            trunk["spine2"] = lower[1 + int(np.argmin(np.abs(np.array(frac) - SPINE2_FRACTION)))]
    if necks:
        trunk["neck"] = necks[0]
    for j, b in trunk.items():
        if how.get(j) != "user":
            chosen[j] = b
            how[j] = "structure"
    if len(lower) < 2:
        notes.append(f"{len(lower) + 1} spine bone(s) for SMPL's 3: the missing ones' rotations are composed")
