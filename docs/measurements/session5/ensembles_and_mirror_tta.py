"""Output ensembles / mirror TTA on the raw test BVH: python ens.py NAME=ck1[+ck2...][:tta] ..."""
import sys, json, numpy as np, torch
from kinest_core.baselines import load_any_checkpoint
from kinest_core.mocap import load_motions
from kinest_core.evaluate import predict_local
from kinest_core.data import tracked_joints, protocol_windows, protocol_seams
from kinest_core import metrics as mx, rotations as rot
from kinest_core.skeleton import MIRROR_JOINTS
torch.set_num_threads(1)
motions = load_motions(["../shared/data/mocap/test"])
M = np.diag([-1.0, 1.0, 1.0])
def mirror_inputs(r, p):
    return M @ r[:, [0, 2, 1]] @ M, p[:, [0, 2, 1]] @ M
def mirror_out(L):
    return M @ L[:, list(MIRROR_JOINTS)] @ M
def proj(A):
    u, s, vt = np.linalg.svd(A)
    d = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= d[..., None]
    return u @ vt
models = {}
def get(ck):
    if ck not in models:
        m = load_any_checkpoint(ck)[0]; m.eval(); models[ck] = m
    return models[ck]
res = {}
for spec in sys.argv[1:]:
    name, rest = spec.split("=")
    tta = rest.endswith(":tta"); rest = rest.removesuffix(":tta")
    cks = rest.split("+")
    acc = mx.MetricAccumulator()
    for m in motions:
        r, p = tracked_joints(m)
        preds = []
        for ck in cks:
            preds.append(predict_local(get(ck), r, p))
            if tta:
                preds.append(mirror_out(predict_local(get(ck), *mirror_inputs(r, p))))
        pred = proj(sum(preds) / len(preds)) if len(preds) > 1 else preds[0]
        gtl = rot.quat_to_matrix(m.local_rotations)
        acc.add(pred, gtl, m.rest_offsets, gt_positions=m.joint_positions, fps=m.fps, seams=protocol_seams(max(len(r), 96), 96))
    out = acc.result()
    res[name] = {k: round(v, 3) for k, v in out.items() if k in ("mpjre_deg", "mpjpe_cm", "lower_pe_cm", "mpjve_cms", "jitter", "jitter_seams", "jitter_interior")}
    print(name, json.dumps(res[name]), flush=True)
