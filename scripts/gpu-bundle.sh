#!/usr/bin/env bash
# Builds CUDA targets here (nvcc, no GPU needed) and bundles them with the shared libraries the
# GPU machine lacks (OpenBLAS and its Fortran runtime, libgomp, SentencePiece, PCRE2) so that a
# device `run` can execute them. cudart is linked statically; cuBLAS comes from the GPU
# machine's own CUDA 13 (scripts/gpu-env.sh finds it).
#
#   bash scripts/gpu-bundle.sh BUILD_DIR BUNDLE_DIR TARGET...
# e.g. bash scripts/gpu-bundle.sh build-cuda build-gpu mambalm mambalm_cuda_conformance
# BUILD_DIR is configured Release for sm_90a only (MAMBALM_CUDA_ARCHS overrides). Both
# directories are ignored by git; carry BUNDLE_DIR in the device call.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1 bundle=$2
shift 2
[ $# -gt 0 ] || { echo "usage: gpu-bundle.sh BUILD_DIR BUNDLE_DIR TARGET..." >&2; exit 2; }
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMBALM_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${MAMBALM_CUDA_ARCHS:-90a}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "$@"
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
files=("$@")
# The modules mambalm opens beside itself: serve's HTTP transport (src/serve/http_front.h) and
# MPI's calls (src/dist/mpi_calls.h)
if [[ " $* " == *" mambalm "* ]]; then
  files+=(mambalm-http.so)
  [ -e "$build/mambalm-mpi.so" ] && files+=(mambalm-mpi.so)  # built when the build found MPI
fi
# Libraries the binaries open at run time rather than link (here's, not the GPU machine's):
# libzip for PyTorch checkpoints (src/io/torch/zip_loader.cpp).
opened=(/usr/lib/x86_64-linux-gnu/libzip.so.4)
for t in "${files[@]}" "${opened[@]}"; do
  if [[ "$t" == /* ]]; then
    file=$t
    if [ ! -e "$file" ]; then continue; fi
    cp -L "$file" "$bundle/lib/"
  else
    file=$build/$t
    cp "$file" "$bundle/bin/"
  fi
  # Every resolved dependency except glibc's own libraries, libstdc++/libgcc_s (the GPU
  # machine's are newer and compatible) and the CUDA libraries (taken from that machine).
  ldd "$file" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*|libcublas*|libcudart*) ;;
      *) cp -L "$path" "$bundle/lib/$name" ;;
    esac
  done
done
du -sh "$bundle"
echo "gpu-bundle: on the device: source scripts/gpu-env.sh $bundle; then run $bundle/bin/... (carry $bundle)"
