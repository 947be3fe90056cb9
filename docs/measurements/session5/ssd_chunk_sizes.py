import torch, statistics
from kinest_core.bench import interleaved_times, median_ratio
from kinest_core.model.ssd import ssd_chunked, ssd_chunked_reference, Mamba2
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0); batch=8
x = torch.randn(batch, 96 * 22, 8, 16, generator=g).requires_grad_()
dt = (torch.rand(batch, 96 * 22, 8, generator=g) * 0.1).requires_grad_()
a = (-torch.rand(8, generator=g) * 4).requires_grad_()
b_in = torch.randn(batch, 96 * 22, 1, 16, generator=g).requires_grad_()
c_out = torch.randn(batch, 96 * 22, 1, 16, generator=g).requires_grad_()
dy = torch.randn(batch, 96 * 22, 8, 16, generator=g)
def op(fn, chunk):
    for t in (x, dt, a, b_in, c_out): t.grad = None
    y = fn(x, dt, a, b_in, c_out, chunk_size=chunk); y.backward(dy)
torch.manual_seed(0)
layer = Mamba2(64, d_state=16, headdim=16, chunk_size=32)
u = torch.randn(batch, 96 * 22, 64)
def step(scan, chunk):
    layer.scan, layer.chunk_size = scan, chunk
    layer.zero_grad(set_to_none=True); layer(u).square().mean().backward()
ops = {"ref64": lambda: op(ssd_chunked_reference, 64), "Lref64": lambda: step("reference", 64)}
for q in (32, 44, 48):
    ops[f"fast{q}"] = (lambda q=q: lambda: op(ssd_chunked, q))()
    ops[f"Lfast{q}"] = (lambda q=q: lambda: step("fast", q))()
t = interleaved_times(ops, 7)
for k, v in t.items(): print(k, round(statistics.median(v)*1000,1), round(median_ratio(t["Lref64" if k[0]=="L" else "ref64"], v),2))
