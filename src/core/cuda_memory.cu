// core/cuda_backend.h on the CUDA runtime (see core/device.h for the API built on it). All CUDA
// sources are compiled with --default-stream per-thread: kernels, copies and cuBLAS calls of one
// host thread share one stream (cudaStreamPerThread), which, unlike the legacy stream, can be
// captured into a graph.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>

#include "core/cuda_backend.h"
#include "core/error.h"

namespace mambalm::cuda_backend {

namespace {

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    fail("cuda", std::string(what) + ": " + cudaGetErrorString(e),
         "is a CUDA device visible (nvidia-smi) and does the driver match the CUDA 13 runtime?");
}

cudaMemcpyKind kind_of(Device from, Device to) {
  if (from == Device::CPU) return to == Device::CPU ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice;
  return to == Device::CPU ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}

}  // namespace

bool built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

std::string device_summary() {
  int dev = 0;
  cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p{};
  cuda_check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  return std::string(p.name) + ", sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " +
         std::to_string(p.totalGlobalMem >> 30) + " GiB";
}

Tensor empty(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail("tensor", "cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(e),
         "the device is out of memory or absent");
  }
  std::shared_ptr<void> owner(p, [](void* q) { cudaFree(q); });
  return Tensor::view_of(p, shape, dtype, std::move(owner), Device::CUDA);
}

void fill_bytes(Tensor& t, int byte) { cuda_check(cudaMemset(t.raw(), byte, t.nbytes()), "cudaMemset"); }

void copy(const Tensor& src, Tensor& dst) {
  cuda_check(cudaMemcpy(dst.raw(), src.raw(), src.nbytes(), kind_of(src.device(), dst.device())), "cudaMemcpy");
}

void synchronize() { cuda_check(cudaDeviceSynchronize(), "kernel execution"); }

Tensor empty_pinned(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  void* p = nullptr;
  cuda_check(cudaMallocHost(&p, bytes ? bytes : 64), "cudaMallocHost");
  std::shared_ptr<void> owner(p, [](void* q) { cudaFreeHost(q); });
  return Tensor::view_of(p, shape, dtype, std::move(owner), Device::CPU);
}

void copy_async(const Tensor& src, Tensor& dst) {
  cuda_check(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), kind_of(src.device(), dst.device()), cudaStreamPerThread),
             "cudaMemcpyAsync");
}

bool capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cuda_check(cudaStreamIsCapturing(cudaStreamPerThread, &status), "cudaStreamIsCapturing");
  return status != cudaStreamCaptureStatusNone;
}

namespace {
__device__ __forceinline__ uint64_t mix64(uint64_t z) {  // SplitMix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
template <class T>
__global__ void fill_uniform_kernel(T* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float u = float(mix64(seed + uint64_t(i) * 0x9e3779b97f4a7c15ull) >> 40) * 0x1.0p-24f;
    p[i] = T(lo + (hi - lo) * u);
  }
}
}  // namespace

void fill_uniform(Tensor& t, uint64_t seed, float lo, float hi) {
  const int64_t n = t.numel();
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 132 * 64));
  if (t.dtype() == DType::BF16)
    fill_uniform_kernel<<<blocks, 256>>>(t.data<__nv_bfloat16>(), n, seed, lo, hi);
  else
    fill_uniform_kernel<<<blocks, 256>>>(t.f32(), n, seed, lo, hi);
  cuda_check(cudaGetLastError(), "fill_uniform launch");
}

void memory_info(size_t* free_bytes, size_t* total_bytes) {
  cuda_check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

}  // namespace mambalm::cuda_backend
