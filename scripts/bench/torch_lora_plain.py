# The `real-shapes` LoRA step in plain PyTorch (no transformers, no PEFT), for interpreters whose torch
# cannot run transformers (Debian's python3-torch 1.13 with OpenBLAS, often the fastest float32 GEMM on
# a machine; see torch-peer.mjs). The same math as flglm and as transformers' LLaMA / Qwen2: RMSNorm,
# RoPE, grouped-query attention (q/k/v biases when the config has them), SwiGLU, tied or untied LM
# head; LoRA r 8 / alpha 16 on q_proj and v_proj; next-token loss on every position; AdamW on the
# adapters. Weights are read from the folder's safetensors (F32 / F16 / BF16) with numpy.
#   python torch_lora_plain.py FOLDER BATCH SEQ THREADS RUNS fp32|bf16
import glob, json, math, os, struct, sys, time

import numpy as np
import torch
from torch_common import peak_rss_mib
import torch.nn.functional as F

folder, B, S, threads, runs, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
torch.manual_seed(0)
wdt = torch.float32 if dtype == "fp32" else torch.bfloat16
cfg = json.load(open(os.path.join(folder, "config.json")))


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.frombuffer(blob, dtype=np.uint8, count=b - a, offset=a)
        if info["dtype"] == "F32":
            arr = raw.view(np.float32)
        elif info["dtype"] == "F16":
            arr = raw.view(np.float16).astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"unsupported dtype {info['dtype']}")
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy()).to(wdt)
    return out


W = {}
for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
    W.update(load_safetensors(f))
d, L = cfg["hidden_size"], cfg["num_hidden_layers"]
H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
dh = cfg.get("head_dim", d // H)
eps, theta = cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)
tied = cfg.get("tie_word_embeddings", False)
r, alpha = 8, 16
lora = {}
for i in range(L):
    for t in ("q", "v"):
        w = W[f"model.layers.{i}.self_attn.{t}_proj.weight"]  # [out, in]
        lora[f"{i}.{t}.A"] = torch.nn.Parameter((torch.randn(w.shape[1], r) / math.sqrt(w.shape[1])).to(wdt))
        lora[f"{i}.{t}.B"] = torch.nn.Parameter(torch.zeros(r, w.shape[0], dtype=wdt))

inv = 1.0 / (theta ** (torch.arange(0, dh, 2).float() / dh))
ang = torch.outer(torch.arange(S).float(), inv)
cos, sin = torch.cat([ang.cos(), ang.cos()], -1).to(wdt), torch.cat([ang.sin(), ang.sin()], -1).to(wdt)
mask = torch.full((S, S), float("-inf")).triu(1).to(wdt)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x):
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def proj(x, i, name, t=None):
    p = f"model.layers.{i}.{name}"
    y = F.linear(x, W[f"{p}.weight"], W.get(f"{p}.bias"))
    if t is not None:
        y = y + (x @ lora[f"{i}.{t}.A"]) @ lora[f"{i}.{t}.B"] * (alpha / r)
    return y


def forward(tokens):
    h = W["model.embed_tokens.weight"][tokens]
    for i in range(L):
        x = rms(h, W[f"model.layers.{i}.input_layernorm.weight"])
        q = rope(proj(x, i, "self_attn.q_proj", "q").view(B, S, H, dh).transpose(1, 2))
        k = rope(proj(x, i, "self_attn.k_proj").view(B, S, KV, dh).transpose(1, 2)).repeat_interleave(H // KV, 1)
        v = proj(x, i, "self_attn.v_proj", "v").view(B, S, KV, dh).transpose(1, 2).repeat_interleave(H // KV, 1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + mask, -1) @ v
        h = h + proj(a.transpose(1, 2).reshape(B, S, H * dh), i, "self_attn.o_proj")
        x = rms(h, W[f"model.layers.{i}.post_attention_layernorm.weight"])
        h = h + proj(F.silu(proj(x, i, "mlp.gate_proj")) * proj(x, i, "mlp.up_proj"), i, "mlp.down_proj")
    x = rms(h, W["model.norm.weight"])
    logits = F.linear(x, W["model.embed_tokens.weight"] if tied else W["lm_head.weight"])
    return logits


opt = torch.optim.AdamW(lora.values(), lr=2e-4, weight_decay=0.01)
tokens = torch.randint(0, 256, (B, S))
times = []
for run in range(runs + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    logits = forward(tokens)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1))
    loss.backward()
    opt.step()
    if run > 0:
        times.append(time.perf_counter() - t0)
times.sort()


print(json.dumps({"impl": f"PyTorch {torch.__version__}, plain LoRA ({dtype})", "dtype": dtype, "seconds_per_step": times[len(times) // 2], "step_times": times, "peak_rss_mib": peak_rss_mib()}))
