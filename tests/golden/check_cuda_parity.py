#!/usr/bin/env python3
"""`mambalm forward --device cuda` on every golden fixture against its float64 transformers logits.

For each case and weight dtype (f32, bf16) the CLI writes logits [T, vocab]; the score is the
relative L2 error ||ours - ref|| / ||ref|| and max |ours - ref| / max |ref|, with the limits of
docs/numerics.md ("GPU model forward"). Needs numpy (present on the GPU machine).

Usage: python3 check_cuda_parity.py MAMBALM_BINARY FIXTURES_DIR OUT_DIR
"""

import os
import subprocess
import sys

import numpy as np

LIMITS = {"f32": 1e-4, "bf16": 3e-2}  # relative L2; docs/numerics.md says why


def main():
    binary, fixtures, out_dir = sys.argv[1:4]
    failed = 0
    print("| case | weights | rel L2 | max abs / max ref | limit | ok |")
    print("|---|---|---|---|---|---|")
    for case in sorted(os.listdir(fixtures)):
        d = os.path.join(fixtures, case)
        ref = np.load(os.path.join(d, "logits.npy"))
        for dtype in ("f32", "bf16"):
            out = os.path.join(out_dir, f"{case}_{dtype}.npy")
            cmd = [binary, "forward", "--model", d, "--tokens", os.path.join(d, "tokens.txt"), "--logits", out,
                   "--device", "cuda", "--dtype", dtype]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"| {case} | {dtype} | - | - | {LIMITS[dtype]:.0e} | **NO**: {r.stderr.strip()} |")
                failed += 1
                continue
            got = np.load(out).astype(np.float64)
            rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            mx = np.abs(got - ref).max() / np.abs(ref).max()
            ok = bool(np.isfinite(rel) and rel <= LIMITS[dtype])
            failed += not ok
            print(f"| {case} | {dtype} | {rel:.2e} | {mx:.2e} | {LIMITS[dtype]:.0e} | {'yes' if ok else '**NO**'} |")
    print(f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
