#!/usr/bin/env bash
# The include direction of docs/architecture.md, checked: every #include "layer/..." in src/ names
# a layer at or below the including file's own; nothing outside src/ops/ includes a backend
# (ops/cpu/, ops/cuda/) and nothing outside src/core/ includes the CUDA seam (core/cuda_backend.h).
# Exits non-zero listing every violation.
set -uo pipefail
cd "$(dirname "$0")/../src"
declare -A allowed=(
  [core]="core"
  [io]="core io"
  [config]="core io config"
  [tokenizer]="core io tokenizer"
  [data]="core io tokenizer data"
  [ops]="core ops"
  [dist]="core dist"
  [model]="core io config ops model"
  [infer]="core io config ops model infer"
  [train]="core io config tokenizer data ops model dist train"
  [eval]="core io config tokenizer ops model infer eval"
  [bench]="core io config tokenizer data ops model dist infer train bench"
  [study]="core io config tokenizer data ops model dist infer train eval bench study"
  [serve]="core io config tokenizer ops model infer serve"
  [convert]="core io config tokenizer ops model convert"
)
bad=0
for layer in */; do
  layer=${layer%/}
  if [ -z "${allowed[$layer]+x}" ]; then
    echo "layering: src/$layer is not a known layer (add it to tests/check_layering.sh and docs/architecture.md)"
    bad=1
    continue
  fi
  while IFS=: read -r file line inc; do
    target=$(sed -E 's/#include "([a-z_]+)\/.*/\1/' <<<"$inc")
    if ! grep -qw "$target" <<<"${allowed[$layer]}"; then
      echo "layering: src/$file:$line includes $target/ from $layer/ (allowed: ${allowed[$layer]})"
      bad=1
    fi
    if [[ "$inc" =~ \"ops/(cpu|cuda)/ && "$file" != ops/* ]]; then
      echo "layering: src/$file:$line includes a backend header; go through ops/ops.h"
      bad=1
    fi
    if [[ "$inc" =~ \"core/cuda_backend.h\" && "$file" != core/* ]]; then
      echo "layering: src/$file:$line includes core/cuda_backend.h; use core/device.h"
      bad=1
    fi
  done < <(grep -rnoE '#include "[a-z_]+/[^"]*"' "$layer" --include=*.h --include=*.cpp --include=*.cu --include=*.cuh --include=*.inc)
done
[ $bad -eq 0 ] && echo "layering: every include of src/ follows the layer graph"
exit $bad
