#!/usr/bin/env bash
# Evaluation throughput: scored tokens/s for multiple choice (batched loglikelihood) and
# tokens/s for phonebook generation (prefill + greedy decode), on the tiny presets with the
# bytes tokenizer. Usage: bash bench/eval_bench.sh [BUILD_DIR]   (default build-eval)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build-eval}/mambalm
[ -x "$BIN" ] || { echo "eval_bench: $BIN not built" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
python3 - "$T/mc.jsonl" <<'PY'
import json, random, sys
random.seed(0)
words = "red green blue yellow cat dog house tree river stone seven apple window music".split()
with open(sys.argv[1], "w") as f:
    for i in range(200):
        ctx = "Question %d: " % i + " ".join(random.choice(words) for _ in range(40)) + ". The answer is"
        choices = [" ".join(random.choice(words) for _ in range(random.randint(1, 4))) for _ in range(4)]
        f.write(json.dumps({"context": ctx, "choices": choices, "gold": random.randrange(4)}) + "\n")
PY
echo "machine: $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
for arch in mamba2 transformer hybrid; do
  "$BIN" init --arch "$arch" --out "$T/$arch" >/dev/null
  "$BIN" eval --model "$T/$arch" --tokenizer bytes --task mc --file "$T/mc.jsonl" --batch 8 --output "$T/mc.json" >/dev/null 2>&1
  "$BIN" eval --model "$T/$arch" --tokenizer bytes --task phonebook_depth --names built-in --lengths 1024,4096 --depths 0.5 \
    --samples 2 --output "$T/pb.json" >/dev/null 2>&1
  python3 - "$arch" "$T/mc.json" "$T/pb.json" <<'PY'
import json, sys
mc, pb = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
s = mc["speed"]
print("%-12s mc: %d docs, %d tokens processed (%d scored) in %.2f s = %.0f tokens/s | phonebook: %d tokens in %.2f s = %.0f tokens/s, state %d B, KV %d B" % (
    sys.argv[1], mc["metrics"]["n"], s["tokens_processed"], s["tokens_scored"], s["seconds"], s["tokens_per_second"],
    pb["speed"]["tokens_processed"], pb["speed"]["seconds"], pb["speed"]["tokens_per_second"],
    pb["memory"]["ssm_state_bytes"], pb["memory"]["kv_cache_bytes"]))
PY
done
