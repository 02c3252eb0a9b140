#!/usr/bin/env bash
# Cross-builds the CPU-only mambalm binary for 64-bit Arm Linux (aarch64) on a Debian 12 (or
# Ubuntu 22.04/24.04) x86-64 machine: Debian's cross toolchain plus the arm64 -dev packages
# through multiarch, CUDA and the tests off. Then, where qemu-user is installed, runs
# `mambalm --version` and a tiny init + generate under it.
# Usage: bash scripts/cross-aarch64.sh [BUILD_DIR]   (default build-arm64; docs/building.md)
#   MAMBALM_CPU_TARGET=neoverse-v2 (Grace), neoverse-v1 (Graviton 3), ... tunes for one CPU;
#   the default, portable, is armv8-a and runs on every 64-bit Arm.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build-arm64}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

# Every -dev package setup.sh installs for the library and the CLI, as arm64. MPI is left out
# (optional, and its wrappers are per-architecture); SentencePiece's -dev package cannot be
# installed beside the host's (not Multi-Arch: same), so it is unpacked under the build dir.
arm64_packages=(libopenblas-openmp-dev libpcre2-dev libutf8proc-dev libzip-dev zlib1g-dev libzstd-dev
                libcpp-httplib-dev libtomlplusplus-dev)
host_packages=(g++-aarch64-linux-gnu cmake ninja-build pkg-config nlohmann-json3-dev file qemu-user-static)
dpkg --print-foreign-architectures | grep -qx arm64 || { $SUDO dpkg --add-architecture arm64; $SUDO apt-get update -qq; }
missing=()
for p in "${host_packages[@]}" "${arm64_packages[@]/%/:arm64}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "cross-aarch64: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

deps="$(realpath -m "$BUILD_DIR")/arm64-deps"  # BUILD_DIR may be relative or absolute
if [ ! -f "$deps/usr/lib/pkgconfig/sentencepiece.pc" ]; then
  mkdir -p "$deps/debs" "$deps/usr/lib/pkgconfig"
  (cd "$deps/debs" && apt-get download libsentencepiece-dev:arm64 libsentencepiece0:arm64 >/dev/null 2>&1)
  for deb in "$deps"/debs/*.deb; do dpkg-deb -x "$deb" "$deps"; done
  # CMake adds <prefix>/lib/pkgconfig (not lib/<triplet>/pkgconfig) of CMAKE_PREFIX_PATH to
  # pkg-config's path when cross-compiling.
  sed "s|^prefix=.*|prefix=$deps/usr|" "$deps/usr/lib/aarch64-linux-gnu/pkgconfig/sentencepiece.pc" \
    >"$deps/usr/lib/pkgconfig/sentencepiece.pc"
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DMAMBALM_CUDA=OFF -DBUILD_TESTING=OFF \
  -DMAMBALM_CPU_TARGET="${MAMBALM_CPU_TARGET:-portable}" -DCMAKE_PREFIX_PATH="$deps/usr" \
  ${MAMBALM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" --target mambalm -j"${JOBS:-$(nproc)}"
file "$BUILD_DIR/mambalm"
if command -v qemu-aarch64-static >/dev/null 2>&1; then
  export LD_LIBRARY_PATH="$deps/usr/lib/aarch64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  qemu-aarch64-static "$BUILD_DIR/mambalm" --version
  tmp=$(mktemp -d)
  qemu-aarch64-static "$BUILD_DIR/mambalm" init --arch hybrid --layers 4 --d-model 64 --vocab 256 \
    --seed 1 --out "$tmp/model" >/dev/null
  echo 1 2 3 > "$tmp/prompt.txt"
  qemu-aarch64-static "$BUILD_DIR/mambalm" generate --model "$tmp/model" --tokens "$tmp/prompt.txt" --max-tokens 8 \
    --no-timing
  rm -rf "$tmp"
fi
echo "cross-aarch64: built $BUILD_DIR/mambalm"
