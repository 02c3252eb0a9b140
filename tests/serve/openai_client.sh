#!/usr/bin/env bash
# The npm `openai` package (a client nobody here wrote) against `mambalm serve` on loopback:
# completions, chat, streaming of both. Exits 77 (ctest: skipped) with a message when Node.js
# or the package is missing (bash tests/serve/fetch_openai_client.sh installs it).
# Usage: openai_client.sh PATH/TO/mambalm
set -uo pipefail
MAMBALM=$1
HERE=$(cd "$(dirname "$0")" && pwd)
NPM_DIR=${MAMBALM_CACHE:-$HOME/.cache/mambalm}/npm-serve
if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: node is not installed (scripts/setup.sh installs it)"
  exit 77
fi
if [ ! -f "$NPM_DIR/node_modules/openai/package.json" ]; then
  echo "SKIPPED: the npm 'openai' package is not in $NPM_DIR (run: bash tests/serve/fetch_openai_client.sh)"
  exit 77
fi
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER"
  rm -rf "$WORK"
}
trap cleanup EXIT
"$MAMBALM" init --preset mamba2-tiny --tokenizer bytes --seed 4 --out "$WORK/model" >/dev/null || exit 1
"$MAMBALM" serve --model "$WORK/model" --port 0 --port-file "$WORK/port" --max-batch 4 --max-context 512 \
  2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 300); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || { echo "FAILED: the server did not start"; cat "$WORK/server.log"; exit 1; }
NODE_PATH="$NPM_DIR/node_modules" MAMBALM_SERVE_URL="http://127.0.0.1:$(cat "$WORK/port")/v1" \
  node "$HERE/openai_client.mjs"
rc=$?
kill -0 "$SERVER" 2>/dev/null || { echo "FAILED: the server died"; cat "$WORK/server.log"; exit 1; }
exit $rc
