#!/usr/bin/env bash
# The default job, end to end on the CPU: train a SentencePiece vocabulary on the default
# corpus (State of the Union speeches, Moby-Dick, the Brown Corpus; fetched by setup.sh), turn
# the corpus into a Megatron indexed dataset, initialise a small Mamba-2-Hybrid, train it, and
# generate from it. Knobs: MAMBALM_OUT (work dir), STEPS, ARCH (hybrid|mamba2|mamba|transformer).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MAMBALM_BIN:-build/mambalm}
out=${MAMBALM_OUT:-/tmp/mambalm-main}
corpus=${MAMBALM_CACHE:-$HOME/.cache/mambalm}/corpus
steps=${STEPS:-200}
arch=${ARCH:-hybrid}
mkdir -p "$out"
[ -d "$corpus" ] || { echo "main-job: no corpus at $corpus; run scripts/setup.sh first" >&2; exit 1; }

if [ ! -f "$out/sp4096.model" ]; then
  echo "== tokenizer: SentencePiece BPE, 4096 pieces, trained on $corpus"
  "$bin" tokenizer train --input "$(find "$corpus" -type f -name '*.txt' | sort | paste -sd, -)" \
    --vocab-size 4096 --type bpe --max-sentences 300000 --out "$out/sp4096.model" 2>/dev/null
fi
echo "== dataset"
"$bin" prepare --tokenizer "$out/sp4096.model" --input "$corpus" --out "$out/corpus" --valid-fraction 0.02 2>&1 | tail -n 2
echo "== model"
"$bin" init --arch "$arch" --layers 8 --d-model 256 --tokenizer "$out/sp4096.model" --seed 1 --out "$out/model" >/dev/null
"$bin" info "$out/model" | grep -E '^(model_type|pattern|layers|parameters|state per sequence|KV cache per token) '
echo "== train ($steps steps of 8 x 128 tokens)"
rm -rf "$out/run"
"$bin" train --model "$out/model" --data "$out/corpus" --out "$out/run" --seq-len 128 --micro-batch 8 \
  --steps "$steps" --lr 2e-3 --warmup 20 --val-interval 100 --log-interval 50 --checkpoint-interval 100
echo "== generate (greedy, from the last checkpoint)"
"$bin" generate --model "$(ls -d "$out"/run/checkpoints/step-* | tail -n 1)" --prompt "The President said that" --max-tokens 40
