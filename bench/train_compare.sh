#!/usr/bin/env bash
# The CPU half of the CPU-vs-GPU training comparison (issue 11): the default corpus tokenized with
# a 4096-piece SentencePiece BPE (as scripts/main-job.sh does), hybrid-small initialised with seed
# 1, 300 steps of 8 x 128 tokens in fp32 on the CPU. The GPU half runs the same options with
# --device cuda --dtype bf16 (scripts/gpu-train-check.sh compare, which reads the dataset this
# script writes to $DIR and carries in .device-data/cmp). Tokenizer training and `prepare` are
# deterministic, so both halves see the same tokens.
#   bash bench/train_compare.sh [DIR]     (about 25 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MAMBALM_BIN:-build/mambalm}
dir=${1:-/tmp/mambalm-compare}
corpus=${MAMBALM_CACHE:-$HOME/.cache/mambalm}/corpus
mkdir -p "$dir"
if [ ! -f "$dir/sp4096.model" ]; then
  "$bin" tokenizer train --input "$(find "$corpus" -type f -name '*.txt' | sort | paste -sd, -)" \
    --vocab-size 4096 --type bpe --max-sentences 300000 --out "$dir/sp4096.model" 2>/dev/null
  "$bin" prepare --tokenizer "$dir/sp4096.model" --input "$corpus" --out "$dir/corpus" --valid-fraction 0.02
fi
"$bin" init --arch hybrid --preset hybrid-small --tokenizer "$dir/sp4096.model" --seed 1 --out "$dir/model" >/dev/null
rm -rf "$dir/run_cpu"
"$bin" train --model "$dir/model" --data "$dir/corpus" --out "$dir/run_cpu" --seq-len 128 --micro-batch 8 --steps 300 \
  --lr 2e-3 --warmup 20 --val-interval 50 --log-interval 10 --checkpoint-interval 0
