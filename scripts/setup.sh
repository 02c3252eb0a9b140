#!/usr/bin/env bash
# Installs everything mambalm needs on a fresh Debian 12 machine, then builds it.
# Idempotent: re-running only rebuilds what changed. Usage: bash scripts/setup.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}

packages=(build-essential cmake ninja-build pkg-config
          libopenblas-openmp-dev nlohmann-json3-dev libgtest-dev
          libdnnl2  # oneDNN's bf16 GEMM for the CPU prefill with bf16 weights (opened at run time: ops/cpu/onednn_gemm.cpp)
          libsentencepiece-dev libpcre2-dev
          libutf8proc-dev  # Unicode normalizers (NFC/NFKC/NFD) of tokenizer.json files
          libzip-dev  # the zip container of PyTorch checkpoints (io/torch/)
          zlib1g-dev libzstd-dev gzip zstd  # .gz / .zst inputs of prepare and tokenizer train (io/input_files.cpp; tests compress with the CLIs)
          libopenmpi-dev openmpi-bin  # data-parallel training over MPI (src/dist/, mpirun)
          libcpp-httplib-dev  # the HTTP server of `mambalm serve` (src/serve/)
          libtomlplusplus-dev  # TOML run files of `mambalm train --config run.toml` (tools/mambalm/run_file.cpp)
          python3-jinja2  # Python's Jinja, a reference of the chat-template tests (tests/chat_template_reference.py)
          gnuplot-nox  # PNG loss curves of `mambalm plot` (tools/mambalm/run_curves.cpp)
          chromium  # headless browser for the web playground's test (tests/serve/playground_chromium.sh)
          clang)  # clang: the libFuzzer targets of fuzz/ (bash fuzz/run.sh)
# Node.js + npm fetch the reference tokenizers and corpora; a Node install from elsewhere that
# already provides npm is kept.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# This build runs where it is built, so it need not be portable (the CMake default, for binaries
# that travel; docs/building.md): x86-64-v3 (AVX2 + FMA) on an x86-64 CPU that has it, as
# always, else the CPU's own instruction set. MAMBALM_CMAKE_ARGS=-DMAMBALM_CPU_TARGET=... overrides.
cpu_target=native
if [ "$(uname -m)" = x86_64 ]; then
  cpu_target=x86-64-v3
  flags=" $(grep -m1 '^flags' /proc/cpuinfo || true) "
  for f in avx2 fma bmi2 movbe f16c; do [[ "$flags" == *" $f "* ]] || cpu_target=native; done
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMBALM_CPU_TARGET=$cpu_target \
  ${MAMBALM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "setup: built $BUILD_DIR/mambalm"
# The default training corpus (State of the Union, Moby Dick, Brown) into the cache, checksummed.
bash scripts/fetch-corpus.sh
bash scripts/fetch-tokenizers.sh
# @huggingface/jinja and model chat templates, the reference of tests/test_chat_template_parity.cpp.
bash scripts/fetch-chat-templates.sh
# OpenAI's Node client, which tests/serve/openai_client.sh drives `mambalm serve` with.
bash tests/serve/fetch_openai_client.sh
# `mambalm study`: Chart.js for report.html and extra corpus text (Jargon File, fortunes) from Debian.
bash scripts/fetch-study-data.sh
