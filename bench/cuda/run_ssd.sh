#!/usr/bin/env bash
# On the GPU machine: SSD conformance (--only scan,ssd_backward), mambalm_bench_ssd (forward,
# forward + backward, the backward's kernels) and the peers (mamba_ssm's Triton kernels, forward
# and forward + backward; the PyTorch einsum forward) in one call, logs under $OUT, a summary table
# last. Build and bundle first, here:
#   bash scripts/gpu-bundle.sh build-ssd build-gpu-ssd mambalm_cuda_conformance mambalm_bench_ssd
#   mkdir -p build-peer && cp -r /work/shared/peers/mamba_ssm build-peer/
# then run `bash bench/cuda/run_ssd.sh` on the device with carry ["build-gpu-ssd", "build-peer"].
# PEER_SECTIONS (default "mamba_ssm torch") picks the peers; PEER_FP32=1 adds mamba_ssm on fp32 inputs.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu-env.sh build-gpu-ssd
OUT=${OUT:-/tmp/ssd_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== conformance (scan, ssd_backward)"
timeout 150 mambalm_cuda_conformance --only scan,ssd_backward > "$OUT/conformance.txt" 2>&1
echo "conformance exit $?"
grep -E "^\| ssd|cases," "$OUT/conformance.txt"
echo "== bench"
timeout 120 mambalm_bench_ssd 2>&1 | tee "$OUT/bench.txt"
echo "== peers"
# shellcheck disable=SC2086
MAMBA_SSM_PATH=${MAMBA_SSM_PATH:-build-peer} PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-300}" \
  python3 bench/cuda/ssd_peer.py ${PEER_SECTIONS:-mamba_ssm torch} 2>&1 | tee "$OUT/peer.txt"
echo "== summary (ms; mamba_ssm on bf16 x, B, C as users run it; ours too in the training rows ssd_fwd*, ssd_bwd*, as mixed-precision training feeds them)"
echo "| what | B 2, L 4096, chunk 256 | B 2, L 4096, chunk 128 | B 1, L 16384, chunk 256 |"
echo "|---|---|---|---|"
for key in ssd_fwd ssd_bwd ssd_fwd_bwd ssd_fwd_docs ssd_bwd_docs ssd_fwd_bwd_docs mamba_ssm_fwd mamba_ssm_fwd_bwd \
           mamba_ssm_fwd_fp32 mamba_ssm_fwd_bwd_fp32 peer_eager peer_compiled; do
  f="$OUT/bench.txt"
  case "$key" in mamba_ssm*|peer*) f="$OUT/peer.txt" ;; esac
  a=$(awk -v k="$key" '$1=="RESULT" && $2==k && $3=="B2_L4096" {print $4}' "$f")
  b=$(awk -v k="${key}_c128" '$1=="RESULT" && $2==k && $3=="B2_L4096" {print $4}' "$f")
  c=$(awk -v k="$key" '$1=="RESULT" && $2==k && $3=="B1_L16384" {print $4}' "$f")
  [ -z "$a$b$c" ] && continue
  echo "| $key | ${a:--} | ${b:--} | ${c:--} |"
done
ours=$(awk '$1=="RESULT" && $2=="ssd_fwd_bwd" && $3=="B2_L4096" {print $4}' "$OUT/bench.txt")
peer=$(awk '$1=="RESULT" && $2=="mamba_ssm_fwd_bwd" && $3=="B2_L4096" {print $4}' "$OUT/peer.txt")
[ -n "$ours" ] && echo "forward + backward, B 2 L 4096 chunk 256: ours $ours ms (issue bar 3.5 ms; mamba_ssm ${peer:-4.22 quoted} ms)"
