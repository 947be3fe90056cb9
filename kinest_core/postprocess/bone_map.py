# SPDX-License-Identifier: GPL-3.0-or-later
"""Which bone of an animator's skeleton plays which SMPL-22 joint.

Names first, in every convention animators bring (Mixamo with or without ``mixamorig:``,
Unreal ``_l/_r`` up to UE5, Rigify metarigs, generated Rigify rigs (their FK controls) and
their ``DEF-`` game exports, VRM humanoid, Character Creator ``CC_Base_*``, Daz Genesis 8,
MMD English): a name is split into words (separators and camelCase), prefixes and sides are
taken off and what is left is looked up. The structure decides the rest: the hips are where
the legs and the spine meet, the spine and neck are the bones on the path from the hips to
the head (several spine bones go to SMPL's three spine joints by height), and limbs no name
gives are found from the rest-pose geometry (two long segments per limb). Fingers, twist,
IK and helper bones are left alone. The result says what it mapped, what not and why.

Positions are world space, Z up; the character may face any horizontal direction.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kinest_core.postprocess import target_skeleton as geo
from kinest_core.postprocess.target_skeleton import TargetSkeleton
from kinest_core.skeleton import JOINT_NAMES

__all__ = ["BoneMap", "BoneMapError", "TargetSkeleton", "map_skeleton", "parse_name", "vrm_hints"]

#: Joints every humanoid must have for a retarget (the rest are optional: collars, toes, spine1/2, neck).
REQUIRED_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "spine3", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip

#: Limb roles per side: SMPL joint name stem -> words a bone's name reduces to.
_LIMB_WORDS: dict[str, frozenset[str]] = {
    "collar": frozenset({"shoulder", "clavicle", "collar", "collarbone"}),
    "shoulder": frozenset({"arm", "upperarm", "uparm", "shldr"}),
    "elbow": frozenset({"forearm", "lowerarm", "loarm", "elbow"}),
    "wrist": frozenset({"hand", "wrist"}),
    "hip": frozenset({"upleg", "upperleg", "thigh"}),
    "knee": frozenset({"lowerleg", "shin", "calf", "knee", "loleg"}),
    "ankle": frozenset({"foot", "ankle"}),
    "foot": frozenset({"toe", "toes", "toebase", "ball"}),
}
#: SMPL joint per (side, role).
_LIMB_JOINTS = {
    (side, role): f"{'left' if side == 'L' else 'right'}_{role}"
    for side in ("L", "R")
    for role in ("collar", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "foot")
}
#: Limb chains from the body outwards (the toe is SMPL's "foot" joint).
ARM_CHAIN = ("collar", "shoulder", "elbow", "wrist")
LEG_CHAIN = ("hip", "knee", "ankle", "foot")

_HIPS_WORDS = frozenset({"hips", "hip", "pelvis"})
_HEAD_WORDS = frozenset({"head"})
#: A bone with any of these words is never mapped: fingers, face, twist/IK/helper/end bones.
_SKIP_WORDS = frozenset(
    "thumb index middle ring pinky little finger fingers palm carpal metacarpal metacarpals f "
    "eye eyes jaw tongue teeth lip lips brow lid cheek nose ear chin forehead temple mouth face hair "
    "breast pectoral butt belly "
    "ik twist roll helper end nub top tip heel master pivot prop props properties socket parent "
    "tweak pole target mch jiggle corrective null dummy vis wgt widget offset ref share".split()
)
#: Words that say nothing about the role ("bend" is Daz's main bone, "fk" a Rigify control, "base" CC's).
_NEUTRAL_WORDS = frozenset({"bend", "fk", "def", "bone", "jnt", "joint", "bip", "ctrl", "ctl"})
_PREFIXES = re.compile(r"^(cc_base_|j_bip_[clr]_|bip0*1[ _]?|valvebiped\.bip01_)", re.IGNORECASE)
_LAYER = re.compile(r"^(DEF|ORG|MCH)[-_.]", re.IGNORECASE)
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


class BoneMapError(ValueError):
    """A skeleton that is not a humanoid this mapper can use; the message names what is missing."""


@dataclass(frozen=True)
class NameInfo:
    """What a bone's name says: layer prefix (DEF/ORG/MCH or ""), side ("L", "R", ""), role key, number."""

    layer: str
    side: str
    key: str
    number: int
    words: tuple[str, ...]
    skip: bool
    control: bool


def parse_name(name: str) -> NameInfo:
    """Split a bone name into layer, side, role key and trailing number (case and separators ignored)."""
    base = re.split(r"[|:]", name)[-1]
    layer = ""
    m = _LAYER.match(base)
    if m:
        layer, base = m.group(1).upper(), base[m.end() :]
    if base.lower().startswith("j_bip_"):  # VRoid: J_Bip_L_UpperArm, J_Bip_C_Hips
        base = base[6:]
    else:
        base = _PREFIXES.sub("", base)
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", base):
        words += [w.lower() for w in _CAMEL.findall(part)]
    if words and words[0] == "c":  # VRoid centre marker
        words = words[1:]
    side = ""
    rest: list[str] = []
    for w in words:
        if w in ("l", "left") and not side:
            side = "L"
        elif w in ("r", "right") and not side:
            side = "R"
        else:
            rest.append(w)
    number = 0
    while rest and rest[-1].isdigit():  # "thumb.01.L.001": the last number counts, all are dropped
        digits = rest.pop()
        number = number or int(digits)
    skip = layer == "MCH" or any(w in _SKIP_WORDS for w in rest)
    control = "fk" in rest
    key = "".join(w for w in rest if w not in _NEUTRAL_WORDS and not w.isdigit())
    return NameInfo(layer, side, key, number, tuple(rest), skip, control)


@dataclass
class BoneMap:
    """SMPL joint name -> target bone name, with what could not be mapped and why.

    - ``joints``: the mapping (joint names of :data:`kinest_core.skeleton.JOINT_NAMES`)
    - ``shared``: extra bones that take a joint's rotation too (a generated Rigify rig's hips FK)
    - ``missing``: joint -> reason, for joints left unmapped
    - ``how``: joint -> "name", "structure", "geometry" or "user"
    - ``notes``: anything the user should know (sides swapped from geometry, composed spine)
    """

    joints: dict[str, str] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def require(self, joints: tuple[str, ...] = REQUIRED_JOINTS) -> None:
        """Raise :class:`BoneMapError` naming every required joint that has no bone."""
        lacking = [j for j in joints if j not in self.joints]
        if lacking:
            why = "; ".join(f"{j}: {self.missing.get(j, 'not found')}" for j in lacking)
            raise BoneMapError(
                f"not a humanoid this retarget can use: no bone for {', '.join(lacking)} ({why}); "
                "name the bones in a known convention or set them in the mapping by hand"
            )

    def to_json(self) -> str:
        return json.dumps({j: self.joints[j] for j in JOINT_NAMES if j in self.joints})

    def describe(self) -> str:
        """One line per SMPL joint: the bone, how it was found, or why not."""
        lines = []
        for j in JOINT_NAMES:
            if j in self.joints:
                lines.append(f"{j:15s} -> {self.joints[j]} ({self.how.get(j, 'name')})")
            else:
                lines.append(f"{j:15s} -- {self.missing.get(j, 'not found')}")
        lines += [f"{b:15s} ~> shares {j}" for b, j in self.shared.items()]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    @classmethod
    def from_mapping(cls, mapping: dict[str, str], skeleton: TargetSkeleton) -> BoneMap:
        """A user's mapping (e.g. a saved preset); unknown joints or bones raise with their names."""
        bad_j = [j for j in mapping if j not in JOINT_NAMES]
        bad_b = [b for b in mapping.values() if b and b not in skeleton.names]
        if bad_j or bad_b:
            raise BoneMapError(
                "mapping does not fit this skeleton: "
                + ", ".join([f"unknown joint {j!r}" for j in bad_j] + [f"no bone {b!r}" for b in bad_b])
            )
        used = [b for b in mapping.values() if b]
        if len(set(used)) != len(used):
            raise BoneMapError(
                "mapping uses a bone for two joints: " + ", ".join(sorted({b for b in used if used.count(b) > 1}))
            )
        bm = cls(joints={j: b for j, b in mapping.items() if b}, how={j: "user" for j, b in mapping.items() if b})
        bm.missing = {j: "not set in the mapping" for j in JOINT_NAMES if j not in bm.joints}
        return bm


def vrm_hints(gltf_json: dict, node_names: list[str]) -> dict[str, str]:
    """SMPL joint -> bone name from a VRM file's humanoid map (VRM 0.x list or VRM 1.0 dict)."""
    ext = gltf_json.get("extensions", {})
    human: dict[str, int] = {}
    if "VRMC_vrm" in ext:
        for bone, v in ext["VRMC_vrm"].get("humanoid", {}).get("humanBones", {}).items():
            human[bone] = int(v["node"])
    elif "VRM" in ext:
        for v in ext["VRM"].get("humanoid", {}).get("humanBones", []):
            human[str(v["bone"])] = int(v["node"])
    out = {}
    for bone, node in human.items():
        info = parse_name(bone)
        joint = _joint_for(info, has_thigh=True)
        if joint is None:
            joint = {"spine": "spine1", "chest": "spine2", "upperchest": "spine3", "neck": "neck", "head": "head"}.get(
                info.key
            )
        if joint is not None and 0 <= node < len(node_names):
            out[joint] = node_names[node]
    if "spine3" not in out and "spine2" in out:  # VRM without upperChest: chest carries the arms
        out["spine3"] = out.pop("spine2")
    if "hips" in human and 0 <= human["hips"] < len(node_names):
        out["pelvis"] = node_names[human["hips"]]
    return out


def _joint_for(info: NameInfo, has_thigh: bool) -> str | None:
    """The limb joint a parsed name plays (sided names only)."""
    if info.skip or not info.side:
        return None
    key = info.key
    if key == "leg":  # Mixamo LeftLeg is the shin, MMD "Left leg" the thigh
        return _LIMB_JOINTS[(info.side, "knee" if has_thigh else "hip")]
    for role, words in _LIMB_WORDS.items():
        if key in words:
            return _LIMB_JOINTS[(info.side, role)]
    return None


def _rank(info: NameInfo, depth: int) -> tuple[int, int, int]:
    """Lower is better among bones claiming the same joint: FK controls, plain, DEF, ORG; unnumbered; shallow."""
    layer = 0 if info.control else {"": 1, "DEF": 2, "ORG": 3}.get(info.layer, 4)
    return (layer, info.number, depth)


def map_skeleton(skeleton: TargetSkeleton, hints: dict[str, str] | None = None) -> BoneMap:
    """Map a target skeleton to the SMPL-22 joints (``hints``: joint -> bone that win, e.g. a VRM map)."""
    n = len(skeleton.names)
    infos = [parse_name(nm) for nm in skeleton.names]
    depth = [len(skeleton.ancestors(i)) for i in range(n)]
    bm = BoneMap()
    chosen: dict[str, int] = {}
    for j, b in (hints or {}).items():
        if j in JOINT_NAMES and b in skeleton.names:
            chosen[j] = skeleton.index(b)
            bm.how[j] = "user"
    # limbs by name
    thigh_side = {s for s, i in ((inf.side, inf) for inf in infos) if i.key in _LIMB_WORDS["hip"] and not i.skip}
    claims: dict[str, list[int]] = {}
    for i, inf in enumerate(infos):
        joint = _joint_for(inf, has_thigh=inf.side in thigh_side)
        if joint is not None:
            claims.setdefault(joint, []).append(i)
    for joint, cands in claims.items():
        if joint not in chosen:
            chosen[joint] = min(cands, key=lambda i: _rank(infos[i], depth[i]))
            bm.how[joint] = "name"
    geo.fix_sides(skeleton, chosen, bm.notes)
    rigify = geo.rigify_controls(skeleton)
    if rigify:
        for j, bone in rigify.items():
            if j.startswith("pelvis+"):
                bm.shared[skeleton.names[bone]] = "pelvis"
            elif j not in chosen or bm.how.get(j) != "user":
                chosen[j] = bone
                bm.how[j] = "name"
        bm.notes.append("generated Rigify rig: keyed on its FK and torso controls")
    geo.find_limbs_by_geometry(skeleton, chosen, bm.how, bm.notes)
    named_head = [i for i, inf in enumerate(infos) if inf.key in _HEAD_WORDS and not inf.skip and not inf.side]
    if "head" not in chosen and named_head:
        chosen["head"] = min(named_head, key=lambda i: _rank(infos[i], depth[i]))
        bm.how["head"] = "name"
    named_hips = [i for i, inf in enumerate(infos) if inf.key in _HIPS_WORDS and not inf.skip and not inf.side]
    if not rigify:
        geo.find_trunk(skeleton, chosen, bm.how, bm.notes, named_hips)
    for j in JOINT_NAMES:
        if j in chosen:
            bm.joints[j] = skeleton.names[chosen[j]]
        elif j not in bm.missing:
            bm.missing[j] = _why_missing(j)
    dup = {b for b in bm.joints.values() if list(bm.joints.values()).count(b) > 1}
    for j in [j for j, b in bm.joints.items() if b in dup and bm.how.get(j) != "user"]:
        bm.notes.append(f"{j}: bone {bm.joints[j]} is claimed twice; left unmapped")
        bm.missing[j] = f"bone {bm.joints.pop(j)} also plays another joint"
    return bm


def _why_missing(joint: str) -> str:
    if joint in ("spine1", "spine2"):
        return "fewer spine bones than SMPL's three: the rotations are composed onto the next spine bone"
    if joint.endswith("_collar"):
        return "no clavicle bone: the upper arm hangs from the chest"
    if joint.endswith("_foot"):
        return "no toe bone: the foot takes the ankle's rotation"
    if joint == "neck":
        return "no neck bone between the chest and the head"
    return "no bone by name, structure or geometry"
