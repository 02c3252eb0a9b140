#!/usr/bin/env bash
# Everything GPU in one device call (device time is scarce): op conformance, `forward --device
# cuda` against the transformers fixtures, generation on a small model, and optionally the
# generation-speed experiment.
#
# Here:  bash scripts/gpu-bundle.sh build-cuda build-gpu mambalm mambalm_cuda_conformance
# There (device run, carry ["build-gpu"]):  bash scripts/gpu-check.sh [conformance] [parity] [bench PRESET...]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh build-gpu
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader || true
status=0
while [ $# -gt 0 ]; do
  case "$1" in
    conformance)
      mambalm_cuda_conformance --quick 2>&1 | tee "$out/conformance.txt" | grep -E "FAIL|cases|^\[" ; status=$((status | PIPESTATUS[0])) ;;
    parity)
      mkdir -p /tmp/parity
      python3 tests/golden/check_cuda_parity.py "$(command -v mambalm)" tests/golden/fixtures /tmp/parity 2>&1 | tee "$out/parity.txt"
      status=$((status | PIPESTATUS[0])) ;;
    generate)
      mambalm init --arch hybrid --out /tmp/tiny >/dev/null &&
        mambalm generate --model /tmp/tiny --prompt "1 2 3 4 5" --max-tokens 12 --device cuda 2>&1 | tee "$out/generate.txt" &&
        mambalm generate --model /tmp/tiny --prompt "1 2 3 4 5" --max-tokens 12 2>&1 | tee -a "$out/generate.txt"
      status=$((status | $?)) ;;
    bench)
      shift
      while [ $# -gt 0 ] && [[ "$1" != -* ]] && [[ "$1" != conformance && "$1" != parity && "$1" != generate ]]; do
        preset=$1; shift
        mambalm bench --device cuda --preset "$preset" ${BENCH_ARGS:-} --json-out "$out/bench_$preset.json" 2>&1 | tee "$out/bench_$preset.txt"
        status=$((status | PIPESTATUS[0]))
      done
      continue ;;
  esac
  shift
done
exit $status
