#!/usr/bin/env python3
"""The model directories `mambalm convert --from megatron` makes from tests/golden/megatron/,
loaded by transformers in float64 (CPU): their logits against Megatron-LM's fp32 logits and
against mambalm's fp32 logits of the same directory (written by `mambalm forward`).

Usage: python3 check_megatron_with_transformers.py CONVERTED_ROOT [FIXTURES_ROOT]
  CONVERTED_ROOT/<name>/            a converted model directory (config.json, model.safetensors)
  CONVERTED_ROOT/<name>.mambalm.npy  mambalm's logits for the fixture's tokens
Prints one line per model; exits 1 if transformers cannot load one or if either relative L2
exceeds 1e-4 (docs/numerics.md)."""
import json, os, sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    conv = sys.argv[1]
    fix = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "megatron")
    bad = 0
    for name in sorted(os.listdir(fix)):
        d = os.path.join(conv, name)
        if not os.path.isdir(d):
            continue
        tokens = json.load(open(os.path.join(fix, name, "tokens.json")))["tokens"]
        megatron = np.load(os.path.join(fix, name, "logits.npy"))
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64)
        model.eval()
        with torch.no_grad():
            hf = model(torch.tensor([tokens]), use_cache=False).logits[0].double().numpy()
        ours = np.load(os.path.join(conv, name + ".mambalm.npy"))
        r_meg, r_ours = rel_l2(megatron, hf), rel_l2(ours, hf)
        print("%-12s %-28s Megatron fp32 vs transformers f64 %.2e   mambalm fp32 vs transformers f64 %.2e"
              % (name, type(model).__name__, r_meg, r_ours))
        bad += r_meg > 1e-4 or r_ours > 1e-4
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
