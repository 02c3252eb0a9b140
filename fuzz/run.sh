#!/usr/bin/env bash
# Builds the libFuzzer targets (clang) and runs each for SECONDS (default 20) on a seed corpus
# made from the test fixtures; exits non-zero when a target finds a crash. CI runs the short
# form; a long run is `bash fuzz/run.sh 600`. Findings land in build-fuzz/findings/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-20}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
CXX=${CXX_FUZZ:-clang++} cmake -S fuzz -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" >/dev/null
ninja -C "$BUILD" -j"${JOBS:-$(nproc)}" >"$BUILD/build.log" 2>&1 || { tail -n 30 "$BUILD/build.log"; echo "fuzz: the targets do not build"; exit 1; }
bash fuzz/make_seeds.sh "$BUILD/seeds"
status=0
for target in fuzz_safetensors fuzz_config fuzz_tokenizer fuzz_indexed_dataset fuzz_npy fuzz_eval_samples fuzz_eval_tasks fuzz_unpickler fuzz_chat_template fuzz_input_files; do
  corpus="$BUILD/corpus/$target" findings="$BUILD/findings/$target"
  mkdir -p "$corpus" "$findings"
  cp -n "$BUILD/seeds/$target"/* "$corpus"/ 2>/dev/null || true
  echo "== $target (${SECONDS_PER_TARGET}s)"
  if ! "$BUILD/$target" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
       -timeout=10 -artifact_prefix="$findings/" -print_final_stats=1 2>"$BUILD/$target.log"; then
    echo "$target: FOUND A CRASH (see $findings and $BUILD/$target.log)"; status=1
  fi
  grep -E "stat::number_of_executed_units|cov: " "$BUILD/$target.log" | tail -n 2
done
exit $status
