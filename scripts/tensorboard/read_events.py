"""Read flglm's TensorBoard event files with TensorBoard's own reader (EventAccumulator).

Usage: python read_events.py DIR  ->  JSON on stdout: {run: {"scalars": {tag: [[step, value], ...]}, "text": {tag: [...]}}}
"""
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

root = sys.argv[1]
out = {}
for run in sorted(os.listdir(root)):
    acc = EventAccumulator(os.path.join(root, run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags.get("scalars", [])}
    text = {}
    for t in tags.get("tensors", []):
        text[t] = [tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8") for e in acc.Tensors(t)]
    out[run] = {"scalars": scalars, "text": text}
json.dump(out, sys.stdout)
