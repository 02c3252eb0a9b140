#!/usr/bin/env bash
# `mambalm serve --device cuda` on the GPU machine: load from 64 concurrent streaming clients
# (bench/serve_load.py; every completed stream checked against the same request alone) and the
# prompt-state cache's time to first token for a ~16K-token shared prefix, cold then warm.
# MODELS: presets to serve (default hybrid-small transformer-small, with the compare tokenizer;
# presets with "8b" in the name get the byte tokenizer and bf16 weights). MAX_BATCH, MAX_CONTEXT,
# CLIENTS (a list: one load run each), SECONDS_LOAD, PREFIX_ENTRIES tune it. The 8B models are
# written to /dev/shm (the machine's disk takes ~50 MB/s: 270 s for one 8B init), others to /tmp.
# There (carry .device-data): bash scripts/gpu-serve-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d build-gpu ] || [ ! -f .device-data/bundle.tar.xz ] || python3 -c "import tarfile; tarfile.open('.device-data/bundle.tar.xz').extractall('.')"
source scripts/gpu-env.sh build-gpu
d=.device-data/cmp
for preset in ${MODELS:-hybrid-small transformer-small}; do
  echo "== $preset ($(date +%T))"
  arch=${preset%%-*}
  tok=(--tokenizer $d/sp4096.model)
  dir=/tmp/serve-$preset
  case "$preset" in *8b*) tok=(--tokenizer bytes); dir=/dev/shm/serve-$preset ;; esac
  t0=$SECONDS
  [ -d $dir ] || mambalm init --arch "$arch" --preset "$preset" "${tok[@]}" --seed 1 --out $dir >/dev/null || continue
  echo "init: $((SECONDS - t0)) s"
  rm -f /tmp/serve.port
  mambalm serve --model $dir --device cuda --max-batch ${MAX_BATCH:-64} --max-context ${MAX_CONTEXT:-20000} --prefill-chunk 1024 \
    --prompt-cache-mb 4096 --port 0 --port-file /tmp/serve.port > /tmp/serve-$preset.log 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -s /tmp/serve.port ] && break; sleep 0.5; done
  echo "serving after $((SECONDS - t0)) s"
  url=http://127.0.0.1:$(cat /tmp/serve.port)
  for c in ${CLIENTS:-64}; do timeout 200 python3 bench/serve_load.py "$url" $c ${SECONDS_LOAD:-20} 64; done
  python3 - "$url" ${PREFIX_ENTRIES:-600} <<'PY'
import http.client, json, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
prefix = " ".join(f"Entry {i}: the ledger shows {i * 37 % 1009} units shipped to depot {i % 53}." for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 600))
def first_token(prompt):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 1, "temperature": 0}))
    r = json.loads(c.getresponse().read())
    if "error" in r: sys.exit(f"prompt cache check: {r['error']}")
    return time.perf_counter() - t0, r.get("usage", {}).get("prompt_tokens")
cold, n = first_token(prefix + " Which depot got entry 7?")
warm, _ = first_token(prefix + " Which depot got entry 8?")
print(json.dumps({"prefix_prompt_tokens": n, "ttft_cold_s": round(cold, 3), "ttft_warm_s": round(warm, 3)}))
PY
  curl -s "$url/metrics" | grep -E "^mambalm_(prompt_cache|generation_tokens_total|requests_total)" | head -8
  kill $pid; wait $pid 2>/dev/null
  tail -n 3 /tmp/serve-$preset.log
  case "$dir" in /dev/shm/*) rm -rf "$dir" ;; esac  # memory, not disk
done
