#!/usr/bin/env bash
# `mambalm serve --device cuda` on the GPU machine: load from 64 concurrent streaming clients
# (bench/serve_load.py; every completed stream checked against the same request alone) and the
# prompt-state cache's time to first token for a ~16K-token shared prefix, cold then warm.
# MODELS: presets to serve (default hybrid-small transformer-small, with the compare tokenizer;
# presets with "8b" in the name get the byte tokenizer and bf16 weights). MAX_BATCH, MAX_CONTEXT,
# CLIENTS (a list: one load run each), SECONDS_LOAD, PREFIX_ENTRIES (0: no prefix check) tune it.
# There (carry .device-data): bash scripts/gpu-serve-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d build-gpu ] || [ ! -f .device-data/bundle.tar.xz ] || python3 -c "import tarfile; tarfile.open('.device-data/bundle.tar.xz').extractall('.')"
source scripts/gpu-env.sh build-gpu
d=.device-data/cmp
for preset in ${MODELS:-hybrid-small transformer-small}; do
  echo "== $preset ($(date +%T))"
  arch=${preset%%-*}
  # 8B presets are served with random weights drawn on the GPU (--preset: seconds; an init to
  # disk draws on one CPU core at ~50 MB/s, 260 s for 13 GB), the others from an init'ed directory.
  t0=$SECONDS
  case "$preset" in
    *8b*) model=(--preset "$preset" --tokenizer bytes) ;;
    *) [ -d /tmp/serve-$preset ] || mambalm init --arch "$arch" --preset "$preset" --tokenizer $d/sp4096.model --seed 1 --out /tmp/serve-$preset >/dev/null || continue
       model=(--model /tmp/serve-$preset) ;;
  esac
  rm -f /tmp/serve.port
  mambalm serve "${model[@]}" --device cuda --max-batch ${MAX_BATCH:-64} --max-context ${MAX_CONTEXT:-20000} --prefill-chunk 1024 \
    --prompt-cache-mb 4096 --port 0 --port-file /tmp/serve.port > /tmp/serve-$preset.log 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -s /tmp/serve.port ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.5; done
  if [ ! -s /tmp/serve.port ]; then echo "serve did not start:"; tail -n 5 /tmp/serve-$preset.log; kill $pid 2>/dev/null; continue; fi
  echo "serving after $((SECONDS - t0)) s"
  url=http://127.0.0.1:$(cat /tmp/serve.port)
  for c in ${CLIENTS:-64}; do timeout 200 python3 bench/serve_load.py "$url" $c ${SECONDS_LOAD:-20} 64; done
  [ "${PREFIX_ENTRIES:-600}" -gt 0 ] && python3 - "$url" ${PREFIX_ENTRIES:-600} <<'PY'
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
done
