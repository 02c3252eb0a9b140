#!/usr/bin/env bash
# CUDA conformance: every CUDA op against the CPU op at the 8B layer shapes (see
# tools/cuda_conformance/main.cpp and docs/numerics.md, "CUDA vs CPU").
#
# Here (a machine with nvcc, no GPU needed):
#   bash scripts/gpu-conformance.sh
# builds build-cuda/ (Release, sm_90a + sm_80) and bundles the conformance binary with the
# shared libraries the GPU machine lacks (OpenBLAS and its Fortran runtime, libgomp) into
# build-gpu/ (ignored by git, ~40 MB). cudart is linked statically; cuBLAS comes from the GPU
# machine's own CUDA 13 (/usr/local/cuda/lib64, else the nvidia-cublas Python wheel there).
#
# On the lent H200, one device `run` call, carry ["build-gpu"]:
#   bash scripts/gpu-conformance.sh --run
# which prints the table and writes it to $OUT/conformance.txt when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--run" ]; then
  shift
  libs="$PWD/build-gpu/lib:/usr/local/cuda/lib64"
  pycublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
  [ -n "$pycublas" ] && libs="$libs:$pycublas"
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  out=${OUT:-/tmp}
  set -o pipefail
  build-gpu/bin/mambalm_cuda_conformance "$@" 2>&1 | tee "$out/conformance.txt"
  exit "${PIPESTATUS[0]}"
fi

cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DMAMBALM_CUDA=ON >/dev/null
cmake --build build-cuda -j"$(nproc)" --target mambalm_cuda_conformance
rm -rf build-gpu
mkdir -p build-gpu/bin build-gpu/lib
cp build-cuda/mambalm_cuda_conformance build-gpu/bin/
# Copy every resolved dependency except glibc's own libraries, libstdc++/libgcc_s (the GPU
# machine's are newer and compatible) and the CUDA libraries (taken from that machine).
ldd build-cuda/mambalm_cuda_conformance | awk '/=> \// {print $1, $3}' | while read -r name path; do
  case "$name" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++*|libgcc_s*|libcublas*|libcudart*) ;;
    *) cp -L "$path" "build-gpu/lib/$name" ;;
  esac
done
du -sh build-gpu
echo "gpu-conformance: bundle ready; on the device: bash scripts/gpu-conformance.sh --run (carry build-gpu)"
