#!/usr/bin/env bash
# The default job: the study's four families at laptop size, side by side on this CPU.
# For each: a randomly initialised model directory (HF layout), its shape, and measured
# prefill and decode speed with the memory each keeps per sequence.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/mambalm
out=${MAMBALM_OUT:-/tmp/mambalm-main}
mkdir -p "$out"
for arch in transformer mamba mamba2 hybrid; do
  "$bin" init --preset "$arch-small" --seed 1 --out "$out/$arch-small" >/dev/null
  echo "== $arch-small"
  "$bin" info "$out/$arch-small" | sed -n '1,3p;5,7p'
  "$bin" bench --model "$out/$arch-small" --prompt-len 256 --gen-len 32 | tail -n 4
done
