#!/usr/bin/env bash
# The study's generation-speed experiment on one GPU (issue 6): transformer-8b, hybrid-8b and
# mamba2-8b with random bf16 weights, contexts 1K..128K, batch 1 up to the largest that fits,
# then the throughput ratios against the Transformer at equal (whole-GPU) memory.
# On the GPU machine, after scripts/gpu-bundle.sh build-cuda build-gpu mambalm (carry build-gpu):
#   bash bench/generation_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh build-gpu
out=${OUT:-/tmp}
mambalm bench --device cuda --preset transformer-8b,hybrid-8b,mamba2-8b \
  --contexts 1K,4K,16K,32K,64K,128K --gen-len "${GEN_LEN:-16}" --json-out "$out/generation_speed.json" 2>&1 |
  tee "$out/generation_speed.txt"
