#!/usr/bin/env bash
# `mambalm eval --device cuda` against `--device cpu` on the GPU machine: one random-weight
# hybrid-small (batched paths) and one mamba2-small (the recurrent SequenceState path), each task
# on the CPU (f32), on CUDA f32 and on CUDA bf16; prints the scores side by side.
# There (carry .device-data): bash scripts/gpu-eval-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d build-gpu ] || [ ! -f .device-data/bundle.tar.xz ] || python3 -c "import tarfile; tarfile.open('.device-data/bundle.tar.xz').extractall('.')"
source scripts/gpu-env.sh build-gpu
tok=.device-data/cmp/sp4096.model
for arch in hybrid mamba2; do
  [ -d /tmp/eval-$arch ] || mambalm init --arch $arch --preset $arch-small --tokenizer $tok --seed 3 --out /tmp/eval-$arch >/dev/null
done
text=README.md
run() {  # NAME MODEL ARGS...: the task on the three placements
  local name=$1 model=$2; shift 2
  for p in "cpu" "cuda --dtype f32" "cuda --dtype bf16"; do
    local t0=$SECONDS
    # shellcheck disable=SC2086
    timeout 120 mambalm eval --model "$model" "$@" --device $p --output /tmp/eval.json >/dev/null 2>/tmp/eval.err \
      || { echo "$name [$p]: FAILED $(tail -n 1 /tmp/eval.err)"; continue; }
    echo "$name [$p] ($((SECONDS - t0)) s): $(python3 -c 'import json; d = json.load(open("/tmp/eval.json")); print(json.dumps(d["metrics"])[:300])')"
  done
}
run facts_mc-letter /tmp/eval-hybrid --task facts_mc --samples 64 --shots 5 --format letter --seed 4
run perplexity-windows /tmp/eval-hybrid --task perplexity --text $text --max-length 1024
run perplexity-recurrent /tmp/eval-mamba2 --task perplexity --text $text
run mqar-generate /tmp/eval-hybrid --task mqar --lengths 8,32 --samples 8 --seed 2
