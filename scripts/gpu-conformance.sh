#!/usr/bin/env bash
# CUDA conformance: every CUDA op against the CPU op at the 8B layer shapes (see
# tools/cuda_conformance/ and docs/numerics.md, "CUDA vs CPU").
#
# Here (a machine with nvcc, no GPU needed):  bash scripts/gpu-conformance.sh
# builds build-cuda/ and bundles the binary into build-gpu/ (scripts/gpu-bundle.sh).
# On the lent H200, one device `run` call, carry ["build-gpu"]:
#   bash scripts/gpu-conformance.sh --run [--quick] [--only GROUP,...]
# which prints the table and writes it to $OUT/conformance.txt when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--run" ]; then
  shift
  source scripts/gpu-env.sh build-gpu
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  set -o pipefail
  mambalm_cuda_conformance "$@" 2>&1 | tee "${OUT:-/tmp}/conformance.txt"
  exit "${PIPESTATUS[0]}"
fi
bash scripts/gpu-bundle.sh build-cuda build-gpu mambalm_cuda_conformance
