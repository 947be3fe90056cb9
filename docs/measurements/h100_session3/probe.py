"""Training-step speed of KineST at batch 256 under three precision settings; prints JSON, picks the fastest."""
import json, sys, time
import numpy as np, torch
from kinest_core.data import AugmentConfig, MotionWindows, make_batch
from kinest_core.losses import LossConfig, kinest_loss
from kinest_core.mocap import load_pack
from kinest_core.train import TrainConfig, build_model

dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
batch, iters = int(sys.argv[2]), int(sys.argv[3])
win = MotionWindows(load_pack(sys.argv[1]), 96)
cfg = TrainConfig(model="kinest", model_config=json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
loss_cfg = LossConfig.from_dict({"rotation": 1.0, "root": 0.02, "angular_velocity": 1.0, "fk_position": 1.0})
rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
res = {}
for name, amp, prec in [("fp32", False, "highest"), ("tf32", False, "high"), ("bf16", True, "high")]:
    torch.manual_seed(0)
    model = build_model(cfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    torch.set_float32_matmul_precision(prec)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses = []
    for i in range(iters + 3):
        if i == 3:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        l, r, rest = (t.to(dev) for t in win.sample(batch, rng))
        b = make_batch(l, r, rest, AugmentConfig(), gen)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(b.features)
        loss, _ = kinest_loss(pred.float(), b.target, loss_cfg, b.rest_offsets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    dt = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else 0.0
    res[name] = {"windows_per_s": round(iters * batch / dt, 1), "peak_gib": round(mem, 2),
                 "finite": all(np.isfinite(losses)), "last_loss": losses[-1]}
    print(name, res[name], file=sys.stderr, flush=True)
    del model, opt
ok = {k: v for k, v in res.items() if v["finite"]}
best = max(ok, key=lambda k: ok[k]["windows_per_s"])
# bf16 must be clearly faster to be worth its rounding
if best == "bf16" and ok["bf16"]["windows_per_s"] < 1.15 * max(ok.get("tf32", {"windows_per_s": 0})["windows_per_s"], 1):
    best = "tf32"
res["chosen"] = best
print(json.dumps(res))
