import sys, numpy as np, torch
from kinest_core.baselines import load_any_checkpoint
from kinest_core.mocap import load_motions
from kinest_core.evaluate import predict_local
from kinest_core.data import tracked_joints, protocol_windows
from kinest_core import metrics as mx, rotations as rot
from kinest_core.skeleton import forward_kinematics
torch.set_num_threads(1)
model = load_any_checkpoint(sys.argv[1])[0]; model.eval()
err = np.zeros(96); cnt = np.zeros(96)
for m in load_motions(["../shared/data/mocap/test"]):
    r, p = tracked_joints(m)
    if len(r) < 96: continue
    pred = predict_local(model, r, p)
    pos = mx.place_by_head(forward_kinematics(pred, m.rest_offsets)[1], m.joint_positions)
    e = np.linalg.norm(pos - m.joint_positions, axis=-1).mean(-1) * 100
    for s in protocol_windows(len(r))[:-1]:
        err += e[s:s+96]; cnt += 1
v = err / cnt
print(" ".join(f"{x:.2f}" for x in v[[0,1,2,4,8,16,32,48,64,80,88,92,94,95]]))
