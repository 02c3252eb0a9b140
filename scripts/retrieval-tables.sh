#!/usr/bin/env bash
# Phonebook and RULER accuracy by length for a small trained model of each family (docs/eval.md,
# "Accuracy by length from trained models"). Byte-level <family>-26m models are trained on the
# same mix of text and the tasks' own training documents (`eval --write-train`, drawn with other
# seeds than the evaluation's), at 2048 tokens, then evaluated from 512 to 8192 tokens.
#
#   bash scripts/retrieval-tables.sh data DIR           DIR/data: the training mix (seconds, CPU)
#   bash scripts/retrieval-tables.sh train DIR FAMILY   DIR/FAMILY/model + run (the GPU's part)
#   bash scripts/retrieval-tables.sh eval DIR FAMILY    DIR/FAMILY/eval/*.json
#   bash scripts/retrieval-tables.sh table DIR          DIR/tables.md from those JSON files
#
# Environment: MAMBALM (binary, default build/mambalm), DEVICE (cuda; cpu for a dry run),
# CORPUS (text directories, default the cache's corpus), NAMES (phonebook names: a directory of
# first-names.txt + surnames.txt, default the cache's eval/ from scripts/fetch-eval-data.sh),
# STEPS (default 1000), MICRO_BATCH (32), SEQ_LEN (2048), TRAIN_SAMPLES (per length, 3000),
# EVAL_SAMPLES (phonebook, per length, 40), RULER_SAMPLES (per length, 16),
# EVAL_LENGTHS (512,1024,2048,4096,8192), TASKS (the RULER tasks evaluated), TRAIN_TASKS (trained).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-} dir=${2:-}
[ -n "$mode" ] && [ -n "$dir" ] || { sed -n '2,17p' "$0" >&2; exit 2; }
bin=$(realpath "${MAMBALM:-build/mambalm}")
cache=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
device=${DEVICE:-cuda}
names=${NAMES:-$cache/eval}
corpus=${CORPUS:-$cache/corpus}
haystack=$corpus/moby-dick  # RULER's essay haystack (docs/eval.md)
tasks=${TASKS-ruler_niah_single_1 ruler_niah_single_2 ruler_niah_multikey_1 ruler_niah_multivalue ruler_niah_multiquery ruler_vt ruler_cwe ruler_fwe}
# Trained on: the tasks that copy from the context. Common- and frequent-word extraction count
# words over the whole prompt, out of reach at this size; they are evaluated untrained.
train_tasks=${TRAIN_TASKS-ruler_niah_single_1 ruler_niah_single_2 ruler_niah_multikey_1 ruler_niah_multivalue ruler_niah_multiquery ruler_vt}
eval_lengths=${EVAL_LENGTHS:-512,1024,2048,4096,8192}
data=$dir/data

# Training lengths of each RULER task: up to the training length, from the shortest its fixed
# text fits in.
train_lengths() {
  case $1 in
    ruler_vt) echo 1536,2000 ;;
    ruler_cwe) echo 2000 ;;
    *) echo 1024,2000 ;;
  esac
}

# Evaluation lengths of a RULER task: EVAL_LENGTHS from 1024 (vt, cwe: 2048) up. cwe's word
# counts jump at 4K (RULER's rule: 30 copies of each common word), which needs more than 4096
# byte tokens, so cwe skips 4096.
ruler_lengths() {
  local min=1024 skip=0
  case $1 in
    ruler_vt) min=2048 ;;
    ruler_cwe) min=2048 skip=4096 ;;
  esac
  echo "$eval_lengths" | tr , '\n' | awk -v min="$min" -v skip="$skip" '$1 >= min && $1 != skip' | paste -sd, -
}

make_data() {
  mkdir -p "$data"
  # Any byte-level model will do: --write-train needs only the tokenizer and the vocabulary.
  "$bin" init --arch transformer --preset transformer-tiny --tokenizer bytes --out "$data/vocab-model" >/dev/null
  "$bin" prepare --tokenizer bytes --input "$corpus" --out "$data/text" --quiet
  local n=${TRAIN_SAMPLES:-3000} seed=1000 t
  local common=(--model "$data/vocab-model" --tokenizer bytes --samples "$n")
  # The phonebooks are written with 16 example lookups (evaluation: 2). A book's entries are
  # random, so a 2-shot document holds ~20 bytes that can be copied in ~1000: a first run (1000
  # steps, 65M tokens) taught no model the lookup. 16 examples make a quarter to a third copyable.
  local pb=(--shots "${PB_SHOTS:-16}" --names "$names" --lengths "${PB_LENGTHS:-1280,1600,2000}")
  "$bin" eval "${common[@]}" --task phonebook "${pb[@]}" --seed 1001 --write-train "$data/phonebook"
  "$bin" eval "${common[@]}" --task phonebook "${pb[@]}" --reversed --seed 1002 --write-train "$data/phonebook_reversed"
  for t in $train_tasks; do
    seed=$((seed + 10))
    "$bin" eval "${common[@]}" --task "$t" --haystack "$haystack" --lengths "$(train_lengths "$t")" --seed "$seed" \
      --write-train "$data/$t"
  done
}

# A tenth of the tokens are text, the rest the tasks: each phonebook format 0.25, the RULER
# tasks sharing 0.4 equally.
blend() {
  local w b="0.1 $data/text 0.25 $data/phonebook 0.25 $data/phonebook_reversed" n=0 t
  for t in $train_tasks; do n=$((n + 1)); done
  [ "$n" -gt 0 ] || { echo "$b"; return; }
  w=$(awk -v n="$n" 'BEGIN { printf "%.4f", 0.4 / n }')
  for t in $train_tasks; do b="$b $w $data/$t"; done
  echo "$b"
}

train() {
  local family=$1 out=$dir/$1
  mkdir -p "$out"
  [ -f "$out/model/config.json" ] || "$bin" init --arch "$family" --preset "$family-26m" --tokenizer bytes --seed 1 \
    --out "$out/model" >/dev/null
  local resume=()
  [ -d "$out/run/checkpoints" ] && resume=(--resume)
  "$bin" train --model "$out/model" --data "$(blend)" --out "$out/run" --device "$device" \
    --seq-len "${SEQ_LEN:-2048}" --micro-batch "${MICRO_BATCH:-32}" --steps "${STEPS:-1000}" --lr 1e-3 --warmup 50 \
    --log-interval 50 --val-interval 200 --val-batches 4 --checkpoint-interval 200 --keep-last 1 "${resume[@]}"
}

evaluate() {
  local family=$1 out=$dir/$1 ckpt t
  [ -f "$out/run/checkpoints/latest" ] || { echo "retrieval-tables: $family has no checkpoint (run train first)" >&2; exit 1; }
  ckpt=$out/run/checkpoints/$(cat "$out/run/checkpoints/latest")
  mkdir -p "$out/eval"
  # --max-length past every length: each model reads the whole prompt (the Transformer's rotary
  # positions past its 2048 training tokens are a length-generalisation test, as for the SSMs).
  local common=(--model "$ckpt" --tokenizer bytes --device "$device" --max-length 16384 --batch 16)
  "$bin" eval "${common[@]}" --task phonebook --names "$names" --lengths "$eval_lengths" \
    --samples "${EVAL_SAMPLES:-40}" --output "$out/eval/phonebook.json" >/dev/null
  "$bin" eval "${common[@]}" --task phonebook --reversed --names "$names" --lengths "$eval_lengths" \
    --samples "${EVAL_SAMPLES:-40}" --output "$out/eval/phonebook_reversed.json" >/dev/null
  for t in $tasks; do
    "$bin" eval "${common[@]}" --task "$t" --haystack "$haystack" --lengths "$(ruler_lengths "$t")" \
      --samples "${RULER_SAMPLES:-16}" --output "$out/eval/$t.json" >/dev/null || echo "retrieval-tables: $family $t failed"
  done
  echo "retrieval-tables: $family evaluated"
}

case $mode in
  data) make_data ;;
  train) train "${3:?family}" ;;
  eval) evaluate "${3:?family}" ;;
  table) python3 scripts/retrieval_tables.py "$dir" > "$dir/tables.md" && cat "$dir/tables.md" ;;
  *) echo "retrieval-tables: unknown mode '$mode' (data, train, eval, table)" >&2; exit 2 ;;
esac
