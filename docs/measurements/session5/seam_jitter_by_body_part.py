"""Seam/interior jitter per body part (protocol windows) for checkpoints: python seam_parts.py CK ..."""
import sys, numpy as np, torch
from kinest_core.baselines import load_any_checkpoint
from kinest_core.mocap import load_motions
from kinest_core.evaluate import predict_local
from kinest_core.data import tracked_joints, protocol_seams
from kinest_core import metrics as mx
from kinest_core.skeleton import forward_kinematics
torch.set_num_threads(1)
motions = load_motions(["../shared/data/mocap/test"])
parts = {"lower": [1, 2, 4, 5, 7, 8, 10, 11], "root+spine": [0, 3, 6, 9], "head/neck": [12, 15], "arms": [13, 14, 16, 17, 18, 19], "hands": [20, 21]}
for ck in sys.argv[1:]:
    model = load_any_checkpoint(ck)[0]; model.eval()
    S = {k: [] for k in parts}; I = {k: [] for k in parts}
    for m in motions:
        r, p = tracked_joints(m)
        pred = predict_local(model, r, p)
        pos = mx.place_by_head(forward_kinematics(pred, m.rest_offsets)[1], m.joint_positions)
        j = mx.jitter_per_joint(pos, m.fps)[3:] / 100  # (F-3, 22): third difference ending at frame t+3
        seam = mx.seam_frames(len(pos), protocol_seams(max(len(r), 96), 96))
        for k, js in parts.items():
            S[k].append(j[seam[3:]][:, js].ravel()); I[k].append(j[~seam[3:]][:, js].ravel())
    print(ck.split("/")[-2] if "/" in ck else ck, " ".join(f"{k}: seams {np.concatenate(S[k]).mean():.0f} interior {np.concatenate(I[k]).mean():.1f};" for k in parts))
