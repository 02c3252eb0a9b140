#!/usr/bin/env bash
# Packs one family's small results out of a study directory, for scripts/study-merge.sh:
#   train/F/done.json, train/F/run/metrics.jsonl, eval/F/done.json, speed/F/done.json
# (whichever exist: a family that stopped early packs what it finished), plus LOG when given,
# as gpu-logs/F.log. No checkpoints: the report reads only these (docs/study.md).
#   bash scripts/study-pack.sh DIR FAMILY TAR [LOG]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 DIR FAMILY TAR [LOG]" >&2; exit 2; }
dir=$1 family=$2 tar=$3 log=${4:-}
args=() names=()
for f in train/$family/done.json train/$family/run/metrics.jsonl eval/$family/done.json speed/$family/done.json speed/8b/done.json; do
  [ -f "$dir/$f" ] && { args+=(-C "$dir" "$f"); names+=("$f"); }
done
staged=""
if [ -n "$log" ] && [ -f "$log" ]; then  # the log travels inside the tar, next to the results
  staged=$(mktemp -d)
  mkdir -p "$staged/gpu-logs"
  cp "$log" "$staged/gpu-logs/$family.log"
  args+=(-C "$staged" "gpu-logs/$family.log") names+=("gpu-logs/$family.log")
fi
[ ${#args[@]} -gt 0 ] || { echo "study-pack: nothing of $family in $dir" >&2; exit 1; }
tar -cf "$tar" "${args[@]}"
[ -z "$staged" ] || rm -rf "$staged"
echo "study-pack: $tar ($(stat -c %s "$tar") bytes): ${names[*]}"
