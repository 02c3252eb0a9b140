#!/usr/bin/env bash
# Merges per-family results packed by scripts/study-pack.sh (scripts/gpu-study.sh makes them on
# the GPU machine) into a local study directory that holds the same finished data phase; then
#   mambalm study --scale S --device cuda --out DIR
# (no --families, and the same options as the runs that made them) skips training, evaluation
# and the speed measurement, writes the phases' markers and the report, on any machine.
#   bash scripts/study-merge.sh DIR TAR...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR TAR..." >&2; exit 2; }
dir=$1; shift
[ -f "$dir/data/done.json" ] || { echo "study-merge: $dir has no finished data phase (data/done.json)" >&2; exit 1; }
for tar in "$@"; do
  # Only the files study-pack.sh writes: no absolute paths, no '..', nothing else.
  bad=$(tar -tf "$tar" | grep -vE '^((train|eval|speed)/[a-z0-9]+/done\.json|train/[a-z0-9]+/run/metrics\.jsonl|gpu-logs/[a-z0-9]+\.log)$' || true)
  [ -z "$bad" ] || { echo "study-merge: $tar holds unexpected entries: $bad" >&2; exit 1; }
  tar -xf "$tar" -C "$dir"
  echo "study-merge: $tar -> $dir: $(tar -tf "$tar" | tr '\n' ' ')"
done
