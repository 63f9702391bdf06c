"""transformers' side of scripts/families/roundtrip.mjs: reads [{name, base, run}] on stdin, loads each
run's merged export (model-hf/) and its base + PEFT adapter (adapter/), scores the fixture's tokens
(reference.json) and prints {name: {merged_folder, base_plus_peft_adapter}} as JSON."""

import json
import os
import sys

import peft
import torch
import transformers as T
from peft import PeftModel


def loss(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


out = {"versions": {"transformers": T.__version__, "peft": peft.__version__, "torch": torch.__version__}}
for job in json.load(sys.stdin):
    ref = json.load(open(os.path.join(job["base"], "reference.json")))
    ids = torch.tensor(ref["tokens"])
    merged = T.AutoModelForCausalLM.from_pretrained(os.path.join(job["run"], "model-hf"), attn_implementation="eager").eval()
    base = T.AutoModelForCausalLM.from_pretrained(job["base"], attn_implementation="eager").eval()
    adapted = PeftModel.from_pretrained(base, os.path.join(job["run"], "adapter")).eval()
    out[job["name"]] = {"merged_folder": loss(merged, ids), "base_plus_peft_adapter": loss(adapted, ids)}
print(json.dumps(out))
