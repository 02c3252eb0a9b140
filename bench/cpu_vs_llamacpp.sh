#!/usr/bin/env bash
# mambalm against llama.cpp on the CPU (issue 21), same models, same weight types, same run:
# for each model, thread count and round, alternating program by program (order reversed every
# other round), with a read-bandwidth probe at the start of each round:
#   mambalm bench --model M --dtype {f32,bf16,q8} --prompt-len 512 --gen-len GEN --json
#       (one prefill of 512 tokens, then GEN decode steps after it)
#   llama-bench -m M.{f32,bf16,q8_0}.gguf -p 512 -n 0            (prefill of 512)
#   llama-bench -m M.{f32,bf16,q8_0}.gguf -p 0 -n GEN -d 512     (GEN decode steps after 512 tokens)
# each under /usr/bin/time -v (peak resident memory). Then a table: prefill and decode tokens/s
# (median over rounds), ours / theirs, decode against the DRAM floor (weight bytes per token /
# the probe's read bandwidth), and peak RSS.
#
# The peer and the models come from ../shared/peers/llamacpp/: build_llamacpp.sh (llama.cpp, CPU,
# native, no BLAS) and make_models.sh (mambalm-made model directories converted by llama.cpp's own
# convert_hf_to_gguf.py to F32 / BF16 / Q8_0). Run on an idle machine (load < 1.5).
#   MAMBALM=build/mambalm LLAMA_BIN=/tmp/llamacpp-new/build/bin WORK=/tmp/cpu_llamacpp_work \
#     bash bench/cpu_vs_llamacpp.sh [MODEL...]     (default: llama-134m mamba-130m mamba2-130m hybrid-24l)
# Variables: THREADS ("1 2"), ROUNDS (3), GEN (128), RESULTS (a new folder under WORK/results).
# KV cache: llama-bench takes no f32 cache, so its rows keep its default F16 cache; mambalm's is fp32.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
MAMBALM=${MAMBALM:?set MAMBALM to the mambalm binary}
BIN=${LLAMA_BIN:-/tmp/llamacpp-new/build/bin}
WORK=${WORK:-/tmp/cpu_llamacpp_work}
THREADS=${THREADS:-"1 2"} ROUNDS=${ROUNDS:-3} GEN=${GEN:-128}
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(llama-134m mamba-130m mamba2-130m hybrid-24l)
OUT=${RESULTS:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
MEMBW=$WORK/membw
[ -x "$MEMBW" ] || gcc -O3 -march=native -ffast-math -fopenmp "$HERE/../../shared/peers/llamacpp/membw.c" -o "$MEMBW"
echo "results in $OUT; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

run() {  # tag, command...: stdout -> tag.out, /usr/bin/time -v -> tag.time, load -> tag.load
  local tag=$1; shift
  cut -d' ' -f1 /proc/loadavg > "$tag.load"
  /usr/bin/time -v -o "$tag.time" "$@" > "$tag.out" 2> "$tag.err"
  echo "$(date +%T) $(basename "$tag") rc=$? load=$(cat "$tag.load")" >&2
}

for model in "${MODELS[@]}"; do
  for t in $THREADS; do
    export OMP_NUM_THREADS=$t
    for r in $(seq 1 "$ROUNDS"); do
      dir=$OUT/$model/t$t; mkdir -p "$dir"
      steps=(ours:f32 theirs:f32 ours:bf16 theirs:bf16 ours:q8 theirs:q8_0)
      [ $((r % 2)) = 0 ] && steps=($(printf '%s\n' "${steps[@]}" | tac))
      "$MEMBW" > "$dir/r${r}_membw.json"
      for s in "${steps[@]}"; do
        who=${s%%:*} dt=${s#*:}
        if [ "$who" = ours ]; then
          run "$dir/r${r}_ours_$dt" "$MAMBALM" bench --model "$WORK/models/$model" --dtype "$dt" --prompt-len 512 --gen-len "$GEN" --json
        else
          run "$dir/r${r}_theirs_${dt}_pp" "$BIN/llama-bench" -m "$WORK/models/$model.$dt.gguf" -p 512 -n 0 -t "$t" -r 1 -o json
          run "$dir/r${r}_theirs_${dt}_tg" "$BIN/llama-bench" -m "$WORK/models/$model.$dt.gguf" -p 0 -n "$GEN" -d 512 -t "$t" -r 1 -o json
        fi
      done
    done
  done
done

python3 - "$OUT" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
def rss_mib(path):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    return int(m.group(1)) / 1024 if m else None
def llama_tps(path):
    try: return json.load(open(path))[0]["avg_ts"]
    except Exception: return None
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def fmt(x, f="{:.1f}"): return "-" if x is None else f.format(x)
pairs = {"f32": "f32", "bf16": "bf16", "q8": "q8_0"}
print("| model | threads | weights | prefill tok/s ours / llama.cpp (ratio) | decode tok/s ours / llama.cpp (ratio) | ours: % of DRAM floor | peak RSS MiB ours / llama.cpp | load (median) |")
print("|---|---|---|---|---|---|---|---|")
for mdir in sorted(glob.glob(os.path.join(out, "*"))):
    for tdir in sorted(glob.glob(os.path.join(mdir, "t*"))):
        bw = med(json.load(open(f))["read_gb_s"] for f in glob.glob(os.path.join(tdir, "r*_membw.json")))
        loads = [float(open(f).read()) for f in glob.glob(os.path.join(tdir, "*.load"))]
        for ours_dt, theirs_dt in pairs.items():
            ours = [json.load(open(f)) for f in glob.glob(os.path.join(tdir, f"r*_ours_{ours_dt}.out")) if os.path.getsize(f)]
            if not ours: continue
            o_pp = med(d["prefill_tokens_per_s"] for d in ours)
            o_tg = med(d["decode_tokens_per_s"] for d in ours)
            # DRAM floor: the weight (and state) bytes a token reads, at the probe's read rate.
            floor_ms = med(d["decode_floor_ms"] * d["copy_bandwidth_gb_s"] / bw for d in ours) if bw else None
            o_floor = (floor_ms / (1000.0 / o_tg)) if floor_ms and o_tg else None
            t_pp = med(llama_tps(f) for f in glob.glob(os.path.join(tdir, f"r*_theirs_{theirs_dt}_pp.out")))
            t_tg = med(llama_tps(f) for f in glob.glob(os.path.join(tdir, f"r*_theirs_{theirs_dt}_tg.out")))
            o_rss = med(rss_mib(f) for f in glob.glob(os.path.join(tdir, f"r*_ours_{ours_dt}.time")))
            t_rss = med(rss_mib(f) for f in glob.glob(os.path.join(tdir, f"r*_theirs_{theirs_dt}_tg.time")))
            ratio = lambda a, b: fmt(a / b, "{:.2f}x") if a and b else "-"
            print(f"| {os.path.basename(mdir)} | {os.path.basename(tdir)[1:]} | {ours_dt} / {theirs_dt.upper()} | {fmt(o_pp)} / {fmt(t_pp)} ({ratio(o_pp, t_pp)}) | "
                  f"{fmt(o_tg)} / {fmt(t_tg)} ({ratio(o_tg, t_tg)}) | {fmt(100 * o_floor if o_floor else None, '{:.0f}%')} | "
                  f"{fmt(o_rss, '{:.0f}')} / {fmt(t_rss, '{:.0f}')} | {fmt(med(loads), '{:.2f}')} |")
PY
