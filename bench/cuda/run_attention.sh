#!/usr/bin/env bash
# On the GPU machine: attention conformance (forward, decode, backward), our bench (prefill,
# decode, training forward + backward) and the PyTorch peer (SDPA per backend), then one table.
#   bash bench/cuda/run_attention.sh [BUNDLE_DIR]   (default build-gpu-att2; logs under $OUT)
# Decode kernels (MAMBALM_ATTN_DECODE, see attention.cu): the default is the warp-streaming
# kernel; =split selects the older split + combine kernels, =warp8 the warp kernel with 8 load
# steps per tile. All run conformance and the decode bench, so one call compares them.
# Prefill kernels (MAMBALM_ATTN_FLASH_MT=1|2|3) run at their default (3 on the H200) unless
# ATT_PREFILL_MT="2 1" asks for the others too. At most 8 files come back from $OUT: 8 logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=${1:-build-gpu-att2}
source scripts/gpu-env.sh "$bundle"
out=${OUT:-/tmp/attention-bench}
mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
# Order: what the table needs first, the extra conformance runs last (a run stopped at its
# time limit still leaves the logs written so far under $OUT).
echo "== conformance --only attention,attention_backward,attention_cudnn (warp decode)"
mambalm_cuda_conformance --only attention,attention_backward,attention_cudnn 2>&1 | tee "$out/conformance.log"
echo "== ours"
mambalm_bench_attention 2>&1 | tee "$out/ours.log"
for variant in split warp8; do
  echo "== ours, MAMBALM_ATTN_DECODE=$variant"
  MAMBALM_ATTN_DECODE=$variant mambalm_bench_attention --decode-only 2>&1 | tee "$out/ours_$variant.log"
done
for mt in ${ATT_PREFILL_MT:-}; do
  echo "== ours, prefill kernel MT=$mt"
  MAMBALM_ATTN_FLASH_MT=$mt mambalm_bench_attention --prefill-only 2>&1 | tee "$out/ours_mt$mt.log"
done
echo "== pytorch"
PYTHONUNBUFFERED=1 python3 bench/cuda/attention_peer.py 2>&1 | tee "$out/torch.log"
echo "== table"
python3 - "$out" <<'PY' | tee "$out/table.txt"
import os, sys
# RESULT kind shape value unit rate unit [backend]: torch's training rows name the SDPA backend.
def rows(path):
    r = {}
    if not os.path.exists(path):
        return r
    for line in open(path):
        p = line.split()
        if p and p[0] == "RESULT":
            r[(p[1], p[2], p[7] if len(p) > 7 else "")] = (float(p[3]), float(p[5]), p[6])
    return r
d = sys.argv[1]
torch = rows(f"{d}/torch.log")
ours = {(k[0], k[1], ""): v for k, v in rows(f"{d}/ours.log").items()}
for tag in ("split", "warp8", "mt2", "mt1"):
    for k, v in rows(f"{d}/ours_{tag}.log").items():
        ours[(k[0], k[1], tag)] = v
print(f"{'case':52s} {'ours ms':>10s} {'ours':>10s} {'torch ms':>10s} {'torch':>10s} {'ratio':>6s}")
for (kind, shape, tag), o in sorted(ours.items(), key=lambda x: (x[0][0], x[0][1], x[0][2])):
    peers = sorted((k[2], v) for k, v in torch.items() if k[0] == kind and k[1] == shape) or [("", None)]
    for backend, t in peers:
        ts = f"{t[0]:10.4f} {t[1]:10.1f}" if t else f"{'-':>10s} {'-':>10s}"
        ratio = f"{o[1] / t[1]:6.2f}" if t else "     -"
        name = f"{kind} {shape}" + (f" [{tag}]" if tag else "") + (f" vs {backend}" if backend else "")
        print(f"{name:52s} {o[0]:10.4f} {o[1]:10.1f} {ts} {ratio}  {o[2]}")
PY
for variant in split warp8; do
  echo "== conformance --only attention, MAMBALM_ATTN_DECODE=$variant"
  MAMBALM_ATTN_DECODE=$variant mambalm_cuda_conformance --only attention 2>&1 | tee "$out/conformance_$variant.log"
done
for mt in ${ATT_PREFILL_MT:-}; do
  echo "== conformance --only attention,attention_backward, prefill kernel MT=$mt"
  MAMBALM_ATTN_FLASH_MT=$mt mambalm_cuda_conformance --only attention,attention_backward 2>&1 | tee "$out/conformance_mt$mt.log"
done
echo "== decode rows of conformance (warp, split, warp8)"
for f in conformance conformance_split conformance_warp8; do
  echo "-- $f"; grep -E "attention_decode|FAIL|fail" "$out/$f.log" | cut -c1-150
done
