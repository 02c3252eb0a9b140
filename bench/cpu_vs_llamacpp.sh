#!/usr/bin/env bash
# mambalm against llama.cpp on the CPU (issue 21), same models, same weight types, same run:
# for each model, thread count and round, alternating program by program (order reversed every
# other round), with a read-bandwidth probe at the start of each round:
#   mambalm bench --model M --dtype {f32,bf16,q8} --kv-dtype bf16 --prompt-len 512 --gen-len GEN --json
#       (an untimed warm-up prefill, then one timed prefill of 512 tokens and GEN decode steps
#       after it; llama-bench also runs one untimed warm-up before the timed run)
#   llama-bench -m M.{f32,bf16,q8_0}.gguf -p 512 -n 0            (prefill of 512)
#   llama-bench -m M.{f32,bf16,q8_0}.gguf -p 0 -n GEN -d 512     (GEN decode steps after 512 tokens)
# each under /usr/bin/time -v (peak resident memory). Then a table: prefill and decode tokens/s
# (median over rounds), ours / theirs, decode against the DRAM floor (weight bytes per token /
# the probe's read bandwidth), and peak RSS (bench/cpu_vs_llamacpp_table.py).
#
# The peer and the models come from ../shared/peers/llamacpp/: build_llamacpp.sh (llama.cpp, CPU,
# native, no BLAS) and make_models.sh (mambalm-made model directories converted by llama.cpp's own
# convert_hf_to_gguf.py to F32 / BF16 / Q8_0). Run on an idle machine (load < 1.5).
#   MAMBALM=build/mambalm LLAMA_BIN=/tmp/llamacpp-new/build/bin WORK=/tmp/cpu_llamacpp_work \
#     bash bench/cpu_vs_llamacpp.sh [MODEL...]     (default: llama-134m mamba-130m mamba2-130m hybrid-24l)
# Variables: THREADS ("1 2"), ROUNDS (3), GEN (128), DTYPES ("f32 bf16 q8": ours, each against
# llama.cpp's F32 / BF16 / Q8_0), RESULTS (a new folder under WORK/results), KV (bf16 or default).
# KV cache: llama-bench takes no f32 cache, so its rows keep its default F16 cache, and ours is
# 16-bit too: --kv-dtype bf16 (KV=default runs ours with its own default, fp32 with f32 weights,
# which holds twice the cache bytes; bf16 / q8 weights default to bf16 anyway; docs/generate.md).
# OpenBLAS (our prefill GEMMs) runs the core it detects: OPENBLAS_CORETYPE is unset for our runs
# unless BLAS_CORE names one (some machines export OPENBLAS_CORETYPE=Haswell, AVX2 on an AVX-512
# CPU; llama.cpp is built -march=native either way). The core used goes into RESULTS/blas_core.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MAMBALM=${MAMBALM:?set MAMBALM to the mambalm binary}
BIN=${LLAMA_BIN:-/tmp/llamacpp-new/build/bin}
WORK=${WORK:-/tmp/cpu_llamacpp_work}
THREADS=${THREADS:-"1 2"} ROUNDS=${ROUNDS:-3} GEN=${GEN:-128} DTYPES=${DTYPES:-"f32 bf16 q8"} KV=${KV:-bf16}
KV_ARGS=(--kv-dtype bf16)
[ "$KV" = default ] && KV_ARGS=()
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(llama-134m mamba-130m mamba2-130m hybrid-24l)
OUT=${RESULTS:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
MEMBW=$WORK/membw
[ -x "$MEMBW" ] || gcc -O3 -march=native -ffast-math -fopenmp "$HERE/../../shared/peers/llamacpp/membw.c" -o "$MEMBW"
if [ -n "${BLAS_CORE:-}" ]; then export OPENBLAS_CORETYPE=$BLAS_CORE; else unset OPENBLAS_CORETYPE; fi
"$MAMBALM" --version | grep -o 'OpenBLAS [A-Za-z0-9]* kernels' > "$OUT/blas_core"
echo "results in $OUT; load $(cut -d' ' -f1-3 /proc/loadavg); $(cat "$OUT/blas_core")" >&2

run() {  # tag, command...: stdout -> tag.out, /usr/bin/time -v -> tag.time, load -> tag.load
  local tag=$1; shift
  cut -d' ' -f1 /proc/loadavg > "$tag.load"
  /usr/bin/time -v -o "$tag.time" "$@" > "$tag.out" 2> "$tag.err"
  local rc=$?
  [ $rc = 0 ] || : > "$tag.out"  # a failed run counts as missing, not as a number
  echo "$(date +%T) $(basename "$tag") rc=$rc load=$(cat "$tag.load")" >&2
}

# A model's files are dropped from the page cache and read back once, sequentially, before its
# runs, so that both programs map files cached the way a fresh read caches them: the size of the
# page-cache folios (4 KiB, or 2 MiB on ext4 with large folios) decides how fast f32 weights read
# in place stream (bench/NOTES.md, "Page-cache folios and f32 decode").
recache() {  # files...
  python3 -c 'import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$@"
  cat "$@" > /dev/null
}

for model in "${MODELS[@]}"; do
  recache "$WORK/models/$model"/*.safetensors "$WORK/models/$model".*.gguf
  for t in $THREADS; do
    export OMP_NUM_THREADS=$t
    for r in $(seq 1 "$ROUNDS"); do
      dir=$OUT/$model/t$t; mkdir -p "$dir"
      steps=()
      for dt in $DTYPES; do
        case $dt in
          f32|bf16) steps+=("ours:$dt" "theirs:$dt") ;;
          q8) steps+=(ours:q8 theirs:q8_0) ;;
          *) echo "DTYPES: $dt is not one of f32 bf16 q8" >&2; exit 2 ;;
        esac
      done
      [ $((r % 2)) = 0 ] && steps=($(printf '%s\n' "${steps[@]}" | tac))
      "$MEMBW" > "$dir/r${r}_membw.json"
      for s in "${steps[@]}"; do
        who=${s%%:*} dt=${s#*:}
        if [ "$who" = ours ]; then
          run "$dir/r${r}_ours_$dt" "$MAMBALM" bench --model "$WORK/models/$model" --dtype "$dt" "${KV_ARGS[@]}" --prompt-len 512 --gen-len "$GEN" --json
        else
          run "$dir/r${r}_theirs_${dt}_pp" "$BIN/llama-bench" -m "$WORK/models/$model.$dt.gguf" -p 512 -n 0 -t "$t" -r 1 -o json
          run "$dir/r${r}_theirs_${dt}_tg" "$BIN/llama-bench" -m "$WORK/models/$model.$dt.gguf" -p 0 -n "$GEN" -d 512 -t "$t" -r 1 -o json
        fi
      done
    done
  done
done

python3 "$HERE/cpu_vs_llamacpp_table.py" "$OUT"
