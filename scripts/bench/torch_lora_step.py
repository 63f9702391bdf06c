# The LoRA fine-tuning step of `real-shapes` in PyTorch, as its users run it: the same Hugging Face
# folder loaded with transformers, PEFT LoRA (r 8, alpha 16, q_proj + v_proj), next-token loss on every
# position, forward + backward + AdamW on the adapters. Prints one JSON line: seconds per step
# (median after a warm-up step) and this process's peak resident memory.
#
#   python torch_lora_step.py FOLDER BATCH SEQ THREADS RUNS fp32|bf16
#
# bf16 loads the weights in bfloat16 and computes in it (what a CPU with AVX-512 BF16 makes fast);
# fp32 is the same precision as flglm's.
import json, sys, time

import torch
from torch_common import peak_rss_mib
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

folder, batch, seq, threads, runs, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32 if dtype == "fp32" else torch.bfloat16, attn_implementation="sdpa")
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.01)
tokens = torch.randint(0, 256, (batch, seq))
times = []
for run in range(runs + 1):
    t0 = time.perf_counter()
    optimizer.zero_grad()
    model(input_ids=tokens, labels=tokens).loss.backward()
    optimizer.step()
    if run > 0:
        times.append(time.perf_counter() - t0)
times.sort()


print(json.dumps({
    "impl": f"PyTorch {torch.__version__} + transformers + PEFT ({dtype})",
    "dtype": dtype,
    "seconds_per_step": times[len(times) // 2],
    "step_times": times,
    "peak_rss_mib": peak_rss_mib(),
    "blas": "MKL" if torch.backends.mkl.is_available() else "other",
    "threads": torch.get_num_threads(),
}))
