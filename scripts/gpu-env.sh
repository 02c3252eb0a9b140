# Sourced on the GPU machine: puts a bundle made by scripts/gpu-bundle.sh and that machine's
# cuBLAS (its CUDA toolkit, else the nvidia-cublas Python wheel) on the library path.
#   source scripts/gpu-env.sh BUNDLE_DIR
_bundle=${1:-build-gpu}
_libs="$PWD/$_bundle/lib:/usr/local/cuda/lib64"
_pycublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pycublas" ] && _libs="$_libs:$_pycublas"
export LD_LIBRARY_PATH="$_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PWD/$_bundle/bin:$PATH"
unset _bundle _libs _pycublas
