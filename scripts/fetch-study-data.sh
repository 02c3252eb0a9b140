#!/usr/bin/env bash
# Fetches what `mambalm study` needs beyond the default corpus (scripts/fetch-corpus.sh), into
# the cache outside the repository:
#   $MAMBALM_CACHE/study/chart.umd.min.js   Chart.js 4.6.1 (npm, MIT): the report's charts,
#                                           inlined into report.html
#   $MAMBALM_CACHE/corpus-extra/jargon/     the Jargon File 4.4.7 (Debian jargon-text, public
#                                           domain), 1.7 MB, cut into ~16 KB documents at blank lines
#   $MAMBALM_CACHE/corpus-extra/fortunes/   Debian's fortunes (BSD fortune files), one document
#                                           per category (ascii-art, ethnic, men-women left out), '%' separators -> blank lines
# The npm tarball and the two .deb files are pinned by version and sha256; the .deb files are
# fetched with `apt-get download` (no root, nothing installed). Idempotent.
# Usage: bash scripts/fetch-study-data.sh   (cache: ${MAMBALM_CACHE:-$HOME/.cache/mambalm})
set -euo pipefail

CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
CHARTJS=chart.js@4.6.1
CHARTJS_TGZ=chart.js-4.6.1.tgz
CHARTJS_SHA256=9345dacdf4bb4c5d40321f4b9aafab6fe676d37a534fc0bc2d17c4c4e29c4f00
# package=version  file  sha256 (as Debian 12's package index lists it)
DEBS='
jargon-text=4.4.7-4.1  jargon-text_4.4.7-4.1_all.deb      17d05997e30eb3d5d6713929b8e2f81b63a5f50073858ad2a06701c71f54dcdb
fortunes=1:1.99.1-7.3  fortunes_1%3a1.99.1-7.3_all.deb    41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5
'

die() { echo "fetch-study-data: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# 1. Chart.js.
mkdir -p "$CACHE/study"
if [ ! -f "$CACHE/study/chart.umd.min.js" ] || [ ! -f "$CACHE/study/$CHARTJS_TGZ" ] || [ "$(sha "$CACHE/study/$CHARTJS_TGZ")" != "$CHARTJS_SHA256" ]; then
  command -v npm >/dev/null 2>&1 || die "npm not found (run scripts/setup.sh)"
  rm -f "$CACHE/study/$CHARTJS_TGZ"
  (cd "$CACHE/study" && npm pack --silent "$CHARTJS" >/dev/null) || die "npm pack $CHARTJS failed"
  [ "$(sha "$CACHE/study/$CHARTJS_TGZ")" = "$CHARTJS_SHA256" ] || die "$CHARTJS_TGZ: sha256 $(sha "$CACHE/study/$CHARTJS_TGZ"), expected $CHARTJS_SHA256"
  tar -xzf "$CACHE/study/$CHARTJS_TGZ" -C "$CACHE/study" package/dist/chart.umd.min.js
  mv "$CACHE/study/package/dist/chart.umd.min.js" "$CACHE/study/chart.umd.min.js.tmp"
  mv "$CACHE/study/chart.umd.min.js.tmp" "$CACHE/study/chart.umd.min.js"
  rm -rf "$CACHE/study/package"
fi
echo "fetch-study-data: Chart.js $(stat -c %s "$CACHE/study/chart.umd.min.js") bytes in $CACHE/study/chart.umd.min.js"

# 2. Extra corpus text from Debian packages.
OUT=$CACHE/corpus-extra
if [ -f "$OUT/.done" ]; then
  echo "fetch-study-data: extra corpus up to date in $OUT ($(find "$OUT" -name '*.txt' | wc -l) files, $(du -sb "$OUT" | cut -f1) bytes)"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: the extra corpus comes from Debian packages"
WORK=$(mktemp -d "$CACHE/corpus-extra-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "$DEBS" | sed '/^$/d' | while read -r spec file sum; do
  (cd "$WORK" && apt-get download -qq "$spec" >/dev/null 2>&1) || die "apt-get download $spec failed (run apt-get update?)"
  [ "$(sha "$WORK/$file")" = "$sum" ] || die "$file: sha256 $(sha "$WORK/$file"), expected $sum"
  dpkg-deb -x "$WORK/$file" "$WORK/root"
done
mkdir -p "$WORK/out/jargon" "$WORK/out/fortunes"
zcat "$WORK/root/usr/share/doc/jargon-text/jargon.txt.gz" |
  awk -v dir="$WORK/out/jargon" 'BEGIN { n = 0; size = 0; f = sprintf("%s/%04d.txt", dir, n) }
       { print > f; size += length($0) + 1 }
       /^[[:space:]]*$/ && size > 16000 { close(f); n++; size = 0; f = sprintf("%s/%04d.txt", dir, n) }'
for f in "$WORK"/root/usr/share/games/fortunes/*; do
  name=$(basename "$f")
  case "$name" in *.dat|*.u8|ascii-art|ethnic|men-women) continue ;; esac
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  sed 's/^%$//' "$f" > "$WORK/out/fortunes/$name.txt"
done
touch "$WORK/out/.done"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
echo "fetch-study-data: extra corpus $(find "$OUT" -name '*.txt' | wc -l) files, $(du -sb "$OUT" | cut -f1) bytes in $OUT"
