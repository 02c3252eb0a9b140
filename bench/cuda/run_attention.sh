#!/usr/bin/env bash
# On the GPU machine: attention conformance, our bench and the PyTorch peer, then one table.
#   bash bench/cuda/run_attention.sh [BUNDLE_DIR]   (default build-gpu-att; logs under $OUT)
# Prefill kernels (MAMBALM_ATTN_FLASH_MT, see attention.cu): the default on the H200 is 3 (QK^T
# on wgmma); 2 and 1 (mma.sync, 32 and 16 query rows per warp) run conformance and the prefill
# bench as well.
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=${1:-build-gpu-att}
source scripts/gpu-env.sh "$bundle"
out=${OUT:-/tmp/attention-bench}
mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader | tee "$out/gpu.txt"
echo "== conformance --only attention"
mambalm_cuda_conformance --only attention 2>&1 | tee "$out/conformance.log"
for mt in 2 1; do
  echo "== conformance --only attention, prefill kernel MT=$mt"
  MAMBALM_ATTN_FLASH_MT=$mt mambalm_cuda_conformance --only attention 2>&1 | tee "$out/conformance_mt$mt.log"
done
echo "== ours"
mambalm_bench_attention 2>&1 | tee "$out/ours.log"
for mt in 2 1; do
  echo "== ours, prefill kernel MT=$mt"
  MAMBALM_ATTN_FLASH_MT=$mt mambalm_bench_attention --prefill-only 2>&1 | tee "$out/ours_mt$mt.log"
done
echo "== pytorch"
PYTHONUNBUFFERED=1 python3 bench/cuda/attention_peer.py 2>&1 | tee "$out/torch.log"
echo "== table"
python3 - "$out" <<'PY' | tee "$out/table.txt"
import os, sys
def rows(path):
    r = {}
    if not os.path.exists(path):
        return r
    for line in open(path):
        p = line.split()
        if p and p[0] == "RESULT":
            r[(p[1], p[2])] = (float(p[3]), float(p[5]), p[6])
    return r
d = sys.argv[1]
torch = rows(f"{d}/torch.log")
ours = {(k[0], k[1], ""): v for k, v in rows(f"{d}/ours.log").items()}
for tag in ("mt2", "mt1"):
    for k, v in rows(f"{d}/ours_{tag}.log").items():
        ours[(k[0], k[1], tag)] = v
print(f"{'case':40s} {'ours ms':>10s} {'ours':>10s} {'torch ms':>10s} {'torch':>10s} {'ratio':>6s}")
for (kind, shape, tag), o in ours.items():
    t = torch.get((kind, shape))
    ts = f"{t[0]:10.4f} {t[1]:10.1f}" if t else f"{'-':>10s} {'-':>10s}"
    ratio = f"{o[1] / t[1]:6.2f}" if t else "     -"
    name = f"{kind} {shape}" + (f" [{tag}]" if tag else "")
    print(f"{name:40s} {o[0]:10.4f} {o[1]:10.1f} {ts} {ratio}  {o[2]}")
PY
