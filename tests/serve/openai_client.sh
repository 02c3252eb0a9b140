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
source "$(dirname "$0")/test_server.sh"
start_test_server mamba2-tiny 4 4
NODE_PATH="$NPM_DIR/node_modules" MAMBALM_SERVE_URL="http://127.0.0.1:$PORT/v1" \
  node "$HERE/openai_client.mjs"
rc=$?
kill -0 "$SERVER" 2>/dev/null || { echo "FAILED: the server died"; cat "$WORK/server.log"; exit 1; }
exit $rc
