#!/usr/bin/env bash
# On the GPU machine: SSD conformance (--only scan), mambalm_bench_ssd and the PyTorch peer in one
# call, logs under $OUT, a summary table last. Build and bundle first, here:
#   bash scripts/gpu-bundle.sh build-ssd build-gpu-ssd mambalm_cuda_conformance mambalm_bench_ssd
# then run `bash bench/cuda/run_ssd.sh` on the device with carry ["build-gpu-ssd"].
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu-env.sh build-gpu-ssd
OUT=${OUT:-/tmp/ssd_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== conformance (scan)"
timeout 85 mambalm_cuda_conformance --only scan > "$OUT/conformance.txt" 2>&1
echo "conformance exit $?"
grep -E "^\| ssd|cases," "$OUT/conformance.txt"
echo "== bench"
timeout 45 mambalm_bench_ssd 2>&1 | tee "$OUT/bench.txt"
echo "== peer (PyTorch)"
PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-90}" python3 bench/cuda/ssd_peer.py 2>&1 | tee "$OUT/peer.txt"
echo "== summary (ms)"
mb=$(awk '/^RESULT ssd_chunked B2_L4096/ {print $4; exit}' "$OUT/bench.txt")
echo "| what | B 2, L 4096 | B 1, L 16384 |"
echo "|---|---|---|"
for key in ssd_chunked peer_eager peer_compiled; do
  f="$OUT/bench.txt"; [ "$key" = ssd_chunked ] || f="$OUT/peer.txt"
  a=$(awk -v k="$key" '$1=="RESULT" && $2==k && $3=="B2_L4096" {print $4}' "$f")
  b=$(awk -v k="$key" '$1=="RESULT" && $2==k && $3=="B1_L16384" {print $4}' "$f")
  echo "| $key | ${a:--} | ${b:--} |"
done
echo "| mamba_ssm 2.3 Triton (quoted, bf16) | 0.93 | - |"
[ -n "$mb" ] && awk -v m="$mb" 'BEGIN {printf "ssd_chunked / 0.93 ms = %.2f\n", m / 0.93}'
