#!/usr/bin/env bash
# `mambalm study` on the GPU machine, family by family: each FAMILY:GPU pair trains, evaluates
# and measures that family on that GPU (CUDA_VISIBLE_DEVICES), all pairs in parallel, in one
# device call; only the small results come back (checkpoints, ~0.6 GB each, stay there):
#   $OUT/study-FAMILY.tar   train/F/done.json, train/F/run/metrics.jsonl, eval/F/done.json,
#                           speed/F/done.json and gpu-logs/F.log (scripts/study-pack.sh)
#   $OUT/FAMILY.log         the study's output (its tail is printed when it fails)
# Back here: bash scripts/study-merge.sh DIR $OUT/study-*.tar, then
#   build/mambalm study --scale S --device cuda --out DIR   (the report; no GPU needed)
# STUDY_DIR holds a finished data phase made here (only data/done.json, train.{bin,idx},
# heldout.{bin,idx}, heldout/*.txt and tokenizer.model are read). Each family runs in its own
# directory, $STUDY_WORK/FAMILY with data/ a symlink to STUDY_DIR/data, so no two processes
# write the same marker; the data phase is not rerun there (its fingerprint names this
# machine's corpus directories): the train, eval and speed phases are run one by one.
# There, from the repo root, after the build is in build-gpu and scripts/gpu-env.sh sourced:
#   bash scripts/gpu-study.sh .device-data/study-small small transformer:0 mamba:1
# Environment: STUDY_TIMEOUT (seconds for all three phases of a family, default 540),
# STUDY_ARGS (more study options, the same ones the report run must get, e.g. "--steps 800"),
# STUDY_WORK (default /tmp/gpu-study; kept, so a later call on the same warm machine resumes a
# family's training from its latest checkpoint), MAMBALM (default build-gpu/mambalm),
# STUDY_DEVICE (default cuda; cpu for a dry run of this script).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ $# -ge 3 ] || { echo "usage: $0 STUDY_DIR SCALE FAMILY:GPU..." >&2; exit 2; }
src=$(realpath "$1") scale=$2; shift 2
out=${OUT:-/tmp/gpu-study-out}
work=${STUDY_WORK:-/tmp/gpu-study}
bin=$(realpath "${MAMBALM:-build-gpu/mambalm}")
limit=${STUDY_TIMEOUT:-540}
device=${STUDY_DEVICE:-cuda}
mkdir -p "$out" "$work"
# shellcheck disable=SC1091
[ "$device" != cuda ] || [ ! -d build-gpu/lib ] || source scripts/gpu-env.sh build-gpu
# The families share the host's cores (the loader, the CPU parts of evaluation).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / $# > 0 ? $(nproc) / $# : 1 ))}
[ -x "$bin" ] || { echo "gpu-study: no mambalm at $bin (extract the build into build-gpu, or set MAMBALM)" >&2; exit 1; }
for f in done.json train.bin train.idx heldout.bin heldout.idx tokenizer.model heldout; do
  [ -e "$src/data/$f" ] || { echo "gpu-study: $src/data/$f is missing (carry the finished data phase)" >&2; exit 1; }
done
[ "$device" != cuda ] || nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader || true
start=$SECONDS
# shellcheck disable=SC2086
run_family() {  # FAMILY GPU: the three phases under one deadline
  local family=$1 gpu=$2 dir=$work/$1 phase left rc
  mkdir -p "$dir"
  ln -sfn "$src/data" "$dir/data"  # this call's data phase, also in a directory kept from an earlier call
  for phase in train eval speed; do
    left=$((limit - (SECONDS - start)))
    [ "$left" -gt 10 ] || { echo "gpu-study: $family: no time left for $phase"; return 124; }
    echo "== $family $phase on GPU $gpu ($(date +%T), ${left} s left)"
    CUDA_VISIBLE_DEVICES=$gpu timeout --kill-after=30 "$left" "$bin" study --scale "$scale" --device "$device" --families "$family" \
      --phase "$phase" --out "$dir" ${STUDY_ARGS:-}
    rc=$?
    [ "$rc" -eq 0 ] || { echo "gpu-study: $family $phase exited $rc"; return "$rc"; }
  done
  echo "== $family done ($((SECONDS - start)) s)"
}
pids=() families=()
for pair in "$@"; do
  family=${pair%%:*} gpu=${pair#*:}
  [ "$family" != "$pair" ] || { echo "gpu-study: '$pair' is not FAMILY:GPU" >&2; exit 2; }
  run_family "$family" "$gpu" > "$out/$family.log" 2>&1 &
  pids+=($!) families+=("$family")
  echo "gpu-study: $family on GPU $gpu (pid $!, log $out/$family.log)"
done
status=0
for i in "${!pids[@]}"; do
  family=${families[$i]}
  wait "${pids[$i]}"; rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "gpu-study: $family finished ($((SECONDS - start)) s): $(grep -E '^eval [a-z0-9]+: (held-out|done)' "$out/$family.log" | tail -n 1)"
  else
    echo "gpu-study: $family FAILED (exit $rc); the tail of $out/$family.log:"
    tail -n 30 "$out/$family.log" | sed 's/^/  | /'
    status=1
  fi
  bash scripts/study-pack.sh "$work/$family" "$family" "$out/study-$family.tar" "$out/$family.log" || status=1
  size=$(stat -c %s "$out/study-$family.tar" 2>/dev/null || echo 0)
  [ "$size" -lt $((16 << 20)) ] || { echo "gpu-study: $out/study-$family.tar is $size bytes, over the 16 MiB a file may come back with"; status=1; }
done
exit $status
