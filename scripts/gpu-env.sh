# Sourced on the GPU machine: puts a bundle made by scripts/gpu-bundle.sh and that machine's
# cuBLAS, cuDNN and NCCL (its CUDA toolkit, else the nvidia-* Python wheels) on the library path.
#   source scripts/gpu-env.sh BUNDLE_DIR
_bundle=${1:-build-gpu}
_libs="$PWD/$_bundle/lib:/usr/local/cuda/lib64"
_pycublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pycublas" ] && _libs="$_libs:$_pycublas"
# cuDNN 9 for the fused attention path (opened at run time; optional: without it attention runs
# on our kernels): the toolkit's, else the nvidia-cudnn wheel's (libcudnn.so.9 and the
# sub-libraries it loads by name, libcudnn_graph / engines_* / heuristic).
_pycudnn=$(python3 -c 'import nvidia.cudnn, os; print(os.path.join(list(nvidia.cudnn.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pycudnn" ] && _libs="$_libs:$_pycudnn"
# cuDNN's runtime-compiled engines (the fused attention among them on some versions) open NVRTC
# by name: the nvidia-cuda-nvrtc wheel's, when present (the toolkit's is in lib64 already).
_pynvrtc=$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pynvrtc" ] && _libs="$_libs:$_pynvrtc"
# NCCL for multi-GPU runs (opened at run time): the toolkit's, else the nvidia-nccl wheel's.
_pynccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$_pynccl" ] && _libs="$_libs:$_pynccl"
# NVLink multicast stays off on shared GPUs (KINDS.md); a value set by the caller is kept.
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
export LD_LIBRARY_PATH="$_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PWD/$_bundle/bin:$PATH"
unset _bundle _libs _pycublas _pycudnn _pynvrtc _pynccl
