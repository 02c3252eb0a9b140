#!/usr/bin/env bash
# Installs the npm `openai` package (OpenAI's official Node client) into a cache outside the
# repository, for tests/serve/openai_client.sh. Idempotent: a second run only checks the version.
# Usage: bash tests/serve/fetch_openai_client.sh   (cache: ${MAMBALM_CACHE:-$HOME/.cache/mambalm}/npm-serve)
set -euo pipefail

CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
NPM_DIR=$CACHE/npm-serve
VERSION=5.23.2  # 5.x: no dependencies, runs on Debian 12's Node.js 18 (the newest majors ask for a newer Node)

command -v npm >/dev/null 2>&1 || { echo "fetch-openai-client: npm not found (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$NPM_DIR"
cd "$NPM_DIR"
[ -f package.json ] || echo '{"name":"mambalm-serve-cache","private":true}' > package.json
installed() { node -e "process.stdout.write(require('./node_modules/openai/package.json').version)" 2>/dev/null || true; }
if [ "$(installed)" != "$VERSION" ]; then
  echo "fetch-openai-client: installing openai@$VERSION into $NPM_DIR"
  npm install --no-audit --no-fund --ignore-scripts --save-exact "openai@$VERSION" >/dev/null
fi
[ "$(installed)" = "$VERSION" ] || { echo "fetch-openai-client: openai@$VERSION did not install" >&2; exit 1; }
echo "openai:     $NPM_DIR/node_modules/openai ($VERSION)"
