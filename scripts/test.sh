#!/usr/bin/env bash
# Builds with warnings as errors and runs the whole test suite through ctest.
# Usage: bash scripts/test.sh [--sanitize]   (--sanitize: ASan + UBSan build in build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  # The CUDA kernels are compiled once, by the plain build; the sanitizer build is CPU-only.
  args="-DMAMBALM_WERROR=ON -DMAMBALM_SANITIZE=ON -DMAMBALM_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The long end-to-end runs (the whole study pipeline) run once, in the plain pass.
  skip=(-E "StudyPipeline")
else
  dir=build-ci
  args="-DMAMBALM_WERROR=ON"
  skip=()
fi
MAMBALM_CMAKE_ARGS="$args" bash scripts/setup.sh "$dir"
# Two cores: tests run two at a time with one OpenMP thread each, so they do not oversubscribe.
OMP_NUM_THREADS=1 ctest --test-dir "$dir" -j2 --output-on-failure --timeout 900 "${skip[@]}"
