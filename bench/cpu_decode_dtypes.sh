#!/usr/bin/env bash
# CPU decode by weight type (bench/NOTES.md, "CPU decode kernels"): for each model and each
# --dtype (f32, bf16, q8), `mambalm bench` (one prefill of PROMPT tokens, then GEN greedy decode
# steps) alternating with the peer's read-bandwidth probe (membw.c: sum of a 1 GiB array, all
# threads), ROUNDS rounds, the dtype order reversed every other round. Prints one JSON line per
# run and, at the end, a table: decode ms/token (best of the rounds), weight bytes read per
# token, the floor = bytes / measured read bandwidth, and decode CPU ms/token (process CPU time:
# on a shared machine, with THREADS=1, closer to what an idle core takes than wall time).
#   bash bench/cpu_decode_dtypes.sh BUILD_DIR [MODEL_OR_PRESET...]
# Variables: THREADS (2), ROUNDS (3), PROMPT (512), GEN (128), DTYPES ("f32 bf16 q8"),
#   MEMBW (path to a built membw; default: built from ../shared/peers/llamacpp/membw.c into /tmp).
# The machine should be idle (uptime load < 1.5): decode at batch 1 is bandwidth-bound and
# another process's memory traffic shows directly in the numbers.
#
# llama.cpp, the peer (same models at F32 / BF16 / Q8_0): ../shared/peers/llamacpp/bench.sh runs
# llama-bench alternating with `mambalm bench` (f32); to compare bf16 / q8 rows, run this script
# in the same session on the same model directories (`make_models.sh` makes them) and read
# decode tokens/s side by side with summarize.py's table.
set -euo pipefail
BUILD=${1:?usage: cpu_decode_dtypes.sh BUILD_DIR [MODEL_OR_PRESET...]}
shift
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(transformer-small mamba-small mamba2-small hybrid-small)
THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-3} PROMPT=${PROMPT:-512} GEN=${GEN:-128}
DTYPES=${DTYPES:-"f32 bf16 q8"}
HERE=$(cd "$(dirname "$0")" && pwd)
MEMBW=${MEMBW:-/tmp/mambalm_membw}
if [ ! -x "$MEMBW" ]; then
  gcc -O3 -march=native -ffast-math -fopenmp "$HERE/../../shared/peers/llamacpp/membw.c" -o "$MEMBW"
fi
export OMP_NUM_THREADS=$THREADS
OUT=$(mktemp -d /tmp/cpu_decode_dtypes.XXXX)
echo "results in $OUT; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for model in "${MODELS[@]}"; do
  src=(--preset "$model"); [ -d "$model" ] && src=(--model "$model")
  tag=$(basename "$model")
  for r in $(seq 1 "$ROUNDS"); do
    order=($DTYPES); [ $((r % 2)) = 0 ] && order=($(printf '%s\n' "${order[@]}" | tac))
    "$MEMBW" > "$OUT/${tag}_r${r}_membw.json"
    for dt in "${order[@]}"; do
      f="$OUT/${tag}_${dt}_r${r}.json"
      echo "{\"load\": $(cut -d' ' -f1 /proc/loadavg)}" > "$f.load"
      "$BUILD/mambalm" bench "${src[@]}" --dtype "$dt" --prompt-len "$PROMPT" --gen-len "$GEN" --json > "$f"
      echo "$tag $dt round $r: $(python3 -c "import json,sys; d=json.load(open('$f')); print('%.2f ms/token, %.0f%% of copy floor' % (d['decode_ms_per_token'], 100*d['decode_fraction_of_floor']))")" >&2
    done
  done
done
python3 - "$OUT" "$DTYPES" "${MODELS[@]}" <<'PY'
import glob, json, os, sys
out, dtypes, models = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print("| model | dtype | weight MB read/token | read GB/s (membw, median) | floor ms | decode ms/token (best) | % of floor | decode CPU ms/token (best) | prefill tok/s (best) | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in models:
    tag = os.path.basename(m)
    bws = sorted(json.load(open(f))["read_gb_s"] for f in glob.glob(f"{out}/{tag}_r*_membw.json"))
    bw = bws[len(bws) // 2]
    for dt in dtypes:
        runs = [json.load(open(f)) for f in glob.glob(f"{out}/{tag}_{dt}_r*.json")]
        if not runs: continue
        best = min(runs, key=lambda d: d["decode_ms_per_token"])
        bytes_tok = best["decode_floor_ms"] * best["copy_bandwidth_gb_s"] * 1e6  # bench's bytes per token
        floor = bytes_tok / (bw * 1e9) * 1e3
        pre = max(d["prefill_tokens_per_s"] for d in runs)
        cpu = min(d.get("decode_cpu_ms_per_token", float("nan")) for d in runs)
        print(f"| {tag} | {dt} | {bytes_tok/1e6:.0f} | {bw:.1f} | {floor:.2f} | {best['decode_ms_per_token']:.2f} | "
              f"{100*floor/best['decode_ms_per_token']:.0f}% | {cpu:.2f} | {pre:.0f} | {best['peak_rss_bytes']/2**20:.0f} |")
PY
