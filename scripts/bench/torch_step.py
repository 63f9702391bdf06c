# The same LLaMA-style training step as flglm's (RMSNorm, RoPE, GQA, SwiGLU, cross-entropy,
# AdamW) in PyTorch eager, for a side-by-side tokens/s figure. Prints one JSON line.
import json, sys, time
import torch
from torch_common import matmul_gflops
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
B, S, threads, runs = cfg["batch"], cfg["seq"], cfg["threads"], cfg["runs"]
torch.set_num_threads(threads)
torch.manual_seed(0)
d, L, H, KV, FF, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]
dh = d // H

def p(*shape, ones=False):
    t = torch.ones(*shape) if ones else torch.randn(*shape) * 0.02
    return torch.nn.Parameter(t)

params = {"embed": p(V, d), "norm": p(d, ones=True), "head": p(d, V)}
for i in range(L):
    params.update({f"{i}.n1": p(d, ones=True), f"{i}.n2": p(d, ones=True), f"{i}.q": p(d, d), f"{i}.k": p(d, KV * dh), f"{i}.v": p(d, KV * dh),
                   f"{i}.o": p(d, d), f"{i}.g": p(d, FF), f"{i}.u": p(d, FF), f"{i}.dn": p(FF, d)})
inv = 1.0 / (10000 ** (torch.arange(0, dh, 2).float() / dh))
ang = torch.outer(torch.arange(S).float(), inv)
cos, sin = ang.cos(), ang.sin()
mask = torch.full((S, S), -1e9).triu(1)

def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

def rope(x):
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

def forward(tokens, labels):
    h = params["embed"][tokens]
    for i in range(L):
        x = rms(h, params[f"{i}.n1"])
        q = rope((x @ params[f"{i}.q"]).view(B, S, H, dh).transpose(1, 2))
        k = rope((x @ params[f"{i}.k"]).view(B, S, KV, dh).transpose(1, 2)).repeat_interleave(H // KV, 1)
        v = (x @ params[f"{i}.v"]).view(B, S, KV, dh).transpose(1, 2).repeat_interleave(H // KV, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / dh ** 0.5 + mask, -1) @ v
        h = h + a.transpose(1, 2).reshape(B, S, d) @ params[f"{i}.o"]
        x = rms(h, params[f"{i}.n2"])
        h = h + (F.silu(x @ params[f"{i}.g"]) * (x @ params[f"{i}.u"])) @ params[f"{i}.dn"]
    logits = rms(h, params["norm"]).view(B * S, d) @ params["head"]
    return F.cross_entropy(logits, labels)

opt = torch.optim.AdamW(params.values(), lr=1e-3, weight_decay=0.01)
tokens = torch.randint(0, 256, (B, S))
labels = torch.randint(0, 256, (B * S,))
times = []
for r in range(runs + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    forward(tokens, labels).backward()
    opt.step()
    if r > 0:
        times.append(time.perf_counter() - t0)
print(json.dumps({"torch": torch.__version__, "matmul_gflops": matmul_gflops(), "step_s": times}))
