# Sourced on the GPU machine: puts a bundle made by scripts/gpu-bundle.sh and that machine's
# cuBLAS and NCCL (its CUDA toolkit, else the nvidia-* Python wheels) on the library path.
#   source scripts/gpu-env.sh BUNDLE_DIR
_bundle=${1:-build-gpu}
_libs="$PWD/$_bundle/lib:/usr/local/cuda/lib64"
_pycublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pycublas" ] && _libs="$_libs:$_pycublas"
# NCCL for multi-GPU runs (opened at run time): the toolkit's, else the nvidia-nccl wheel's.
_pynccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pynccl" ] && _libs="$_libs:$_pynccl"
# NVLink multicast stays off on shared GPUs (KINDS.md); a value set by the caller is kept.
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
export LD_LIBRARY_PATH="$_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PWD/$_bundle/bin:$PATH"
unset _bundle _libs _pycublas _pynccl
