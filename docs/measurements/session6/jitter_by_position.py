"""Interior jitter (world and head-relative) by position inside the protocol window."""
import sys, numpy as np, torch
from kinest_core.baselines import load_any_checkpoint
from kinest_core.mocap import load_motions
from kinest_core.evaluate import predict_local
from kinest_core.data import tracked_joints, protocol_windows
from kinest_core import metrics as mx
from kinest_core.skeleton import forward_kinematics
torch.set_num_threads(1)
model = load_any_checkpoint(sys.argv[1])[0]; model.eval()
W = np.zeros(93); R = np.zeros(93); G = np.zeros(93); c = np.zeros(93)
for m in load_motions(["../shared/data/mocap/test"]):
    r, p = tracked_joints(m)
    if len(r) < 96: continue
    pred = predict_local(model, r, p)
    pos = mx.place_by_head(forward_kinematics(pred, m.rest_offsets)[1], m.joint_positions)
    jw = mx.jitter_per_joint(pos, m.fps)[3:].mean(-1) / 100
    rel = pos - pos[:, 15:16]
    jr = mx.jitter_per_joint(rel, m.fps)[3:].mean(-1) / 100
    g = m.joint_positions
    jg = mx.jitter_per_joint(g - g[:, 15:16], m.fps)[3:].mean(-1) / 100
    for s in protocol_windows(len(r))[:-1]:
        W += jw[s:s+93]; R += jr[s:s+93]; G += jg[s:s+93]; c += 1
W/=c; R/=c; G/=c
idx=[0,1,2,3,4,8,16,32,46,47,48,64,80,88,90,91,92]
print("pos   ", " ".join(f"{i:5d}" for i in idx))
print("world ", " ".join(f"{W[i]:5.1f}" for i in idx), f"mean {W.mean():.2f}")
print("headrel", " ".join(f"{R[i]:5.1f}" for i in idx), f"mean {R.mean():.2f} std {R.std():.2f}")
print("gt rel", " ".join(f"{G[i]:5.1f}" for i in idx), f"mean {G.mean():.2f}")
