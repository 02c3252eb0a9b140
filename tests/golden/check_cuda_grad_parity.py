#!/usr/bin/env python3
"""`mambalm grad --device cuda` on every golden fixture against its float64 transformers gradients.

For each case and weight dtype (f32: exact fp32 training; bf16: mixed precision, bf16 matrix
operands with F32 masters) the CLI writes the gradient of every parameter of the mean next-token
loss; the score per tensor is the relative L2 error ||ours - ref|| / ||ref||, and the loss's
relative error. Limits in docs/numerics.md ("GPU training"). Needs numpy and safetensors (present
on the GPU machine).

Usage: python3 check_cuda_grad_parity.py MAMBALM_BINARY FIXTURES_DIR OUT_DIR
"""

import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

LIMITS = {"f32": 1e-4, "bf16": 1e-1}  # worst tensor's relative L2; docs/numerics.md says why


def main():
    binary, fixtures, out_dir = sys.argv[1:4]
    failed = 0
    print("| case | weights | loss rel err | worst tensor | its rel L2 | median rel L2 | limit | ok |")
    print("|---|---|---|---|---|---|---|---|")
    for case in sorted(os.listdir(fixtures)):
        d = os.path.join(fixtures, case)
        ref = load_file(os.path.join(d, "grads.safetensors"))
        ref_loss = float(open(os.path.join(d, "loss.txt")).read().split()[0])
        for dtype in ("f32", "bf16"):
            out = os.path.join(out_dir, f"{case}_{dtype}_grads.safetensors")
            cmd = [binary, "grad", "--model", d, "--tokens", os.path.join(d, "tokens.txt"), "--out", out,
                   "--device", "cuda", "--dtype", dtype]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"| {case} | {dtype} | - | - | - | - | {LIMITS[dtype]:.0e} | **NO**: {r.stderr.strip()} |")
                failed += 1
                continue
            got = load_file(out)
            loss = float(r.stdout.split()[1])
            rels = {}
            for name, want in ref.items():
                if name not in got:
                    rels[name] = float("inf")
                    continue
                w = want.astype(np.float64)
                g = got[name].astype(np.float64).reshape(w.shape)
                denom = np.linalg.norm(w)
                rels[name] = np.linalg.norm(g - w) / denom if denom > 0 else np.linalg.norm(g)
            worst = max(rels, key=rels.get)
            ok = all(np.isfinite(v) and v <= LIMITS[dtype] for v in rels.values())
            failed += not ok
            print(f"| {case} | {dtype} | {abs(loss - ref_loss) / abs(ref_loss):.1e} | {worst} | {rels[worst]:.2e} | "
                  f"{np.median(list(rels.values())):.2e} | {LIMITS[dtype]:.0e} | {'yes' if ok else '**NO**'} |")
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
