#!/usr/bin/env bash
# hybrid-8b evaluation throughput on one GPU (docs/eval.md, "Throughput on one H200"): a random
# bf16 hybrid-8b (the study's shape, 256K vocabulary), the byte tokenizer; 64 documents of 4,000
# tokens scored as rolling perplexity with 4,096-token windows, and 5-shot facts_mc (letter, cloze).
#   here:  bash bench/eval_8b_gpu.sh prepare      (cuts the documents from the default corpus into
#                                                   .device-data/docs4k; carry that folder)
#   there: bash bench/eval_8b_gpu.sh run BUNDLE   (a bundle from scripts/gpu-bundle.sh; JSON to $OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
docs=.device-data/docs4k
case "${1:-}" in
  prepare)
    mkdir -p "$docs"
    python3 - "$docs" <<'PY'
import glob, os, sys
out = sys.argv[1]
files = sorted(glob.glob(os.path.expanduser("~/.cache/mambalm/corpus/**/*.txt"), recursive=True))
n = 0
for f in files:
    text = open(f, "rb").read()
    for i in range(0, len(text) - 4000 + 1, 4000):
        if n == 64:
            break
        piece = text[i:i + 4000].decode("utf-8", errors="ignore").encode()  # whole characters only
        open(os.path.join(out, f"doc{n:02d}.txt"), "wb").write(piece)
        n += 1
print(f"{n} documents in {out}")
PY
    ;;
  run)
    source scripts/gpu-env.sh "${2:-build-gpu}"
    OUT=${OUT:-/tmp/eval8b}
    mkdir -p "$OUT"
    model=/tmp/h8b
    [ -d $model ] || mambalm init --arch hybrid --preset hybrid-8b --seed 5 --out $model | tail -1
    list=$(ls "$docs"/*.txt | paste -sd,)
    common=(--model $model --tokenizer bytes --device cuda --dtype bf16)
    for b in 4 8; do
      mambalm eval "${common[@]}" --task perplexity --text "$list" --max-length 4096 --batch $b --output "$OUT/ppl_b$b.json"
    done
    for fmt in letter cloze; do
      mambalm eval "${common[@]}" --task facts_mc --shots 5 --samples 256 --format $fmt --batch 16 --output "$OUT/mc_$fmt.json"
    done
    for f in "$OUT"/*.json; do
      python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print(sys.argv[1], d['speed'])" "$f"
    done
    ;;
  *) echo "usage: eval_8b_gpu.sh prepare | run [BUNDLE_DIR]" >&2; exit 2 ;;
esac
