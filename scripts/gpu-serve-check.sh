#!/usr/bin/env bash
# `mambalm serve --device cuda` on the GPU machine: load from 64 concurrent streaming clients
# (bench/serve_load.py; every completed stream checked against the same request alone) and the
# prompt-state cache's time to first token for a ~16K-token shared prefix, cold then warm.
# MODELS: presets to serve (default hybrid-small transformer-small, with the compare tokenizer).
# There (carry .device-data): bash scripts/gpu-serve-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d build-gpu ] || [ ! -f .device-data/bundle.tar.xz ] || python3 -c "import tarfile; tarfile.open('.device-data/bundle.tar.xz').extractall('.')"
source scripts/gpu-env.sh build-gpu
d=.device-data/cmp
for preset in ${MODELS:-hybrid-small transformer-small}; do
  echo "== $preset ($(date +%T))"
  arch=${preset%%-*}
  mambalm init --arch "$arch" --preset "$preset" --tokenizer $d/sp4096.model --seed 1 --out /tmp/serve-$preset >/dev/null || continue
  rm -f /tmp/serve.port
  mambalm serve --model /tmp/serve-$preset --device cuda --max-batch ${MAX_BATCH:-64} --max-context 20000 --prefill-chunk 1024 \
    --prompt-cache-mb 4096 --port 0 --port-file /tmp/serve.port > /tmp/serve-$preset.log 2>&1 &
  pid=$!
  for _ in $(seq 120); do [ -s /tmp/serve.port ] && break; sleep 0.5; done
  url=http://127.0.0.1:$(cat /tmp/serve.port)
  timeout 120 python3 bench/serve_load.py "$url" ${CLIENTS:-64} ${SECONDS_LOAD:-20} 64
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
done
