// Device memory for tensors (see cuda_memory.h). All work runs on the legacy default stream,
// so ops queued by ops/cuda/ and these copies are ordered with each other.
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "core/cuda_memory.h"
#include "core/error.h"

namespace mambalm {

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

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

std::string cuda_device_summary() {
  int dev = 0;
  cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p{};
  cuda_check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  return std::string(p.name) + ", sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " +
         std::to_string(p.totalGlobalMem >> 30) + " GiB";
}

Tensor empty_cuda(const Shape& shape, DType dtype) {
  for (int64_t d : shape)
    MAMBALM_CHECK(d >= 0, "tensor", "negative dimension in shape " + shape_str(shape));
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

Tensor zeros_cuda(const Shape& shape, DType dtype) {
  Tensor t = empty_cuda(shape, dtype);
  cuda_check(cudaMemset(t.raw(), 0, t.nbytes()), "cudaMemset");
  return t;
}

Tensor empty_cuda_poisoned(const Shape& shape, DType dtype) {
  Tensor t = empty_cuda(shape, dtype);
  cuda_check(cudaMemset(t.raw(), 0xFF, t.nbytes()), "cudaMemset");
  return t;
}

void copy_tensor(const Tensor& src, Tensor& dst) {
  MAMBALM_CHECK(src.dtype() == dst.dtype() && src.nbytes() == dst.nbytes(), "copy_tensor",
        "source " + dtype_name(src.dtype()) + shape_str(src.shape()) + " and destination " +
            dtype_name(dst.dtype()) + shape_str(dst.shape()) + " differ in dtype or size");
  if (src.nbytes() == 0) return;
  cuda_check(cudaMemcpy(dst.raw(), src.raw(), src.nbytes(), kind_of(src.device(), dst.device())),
             "cudaMemcpy");
}

Tensor to_device(const Tensor& t, Device device) {
  MAMBALM_CHECK(t.defined(), "to_device", "undefined tensor");
  Tensor out = device == Device::CUDA ? empty_cuda(t.shape(), t.dtype()) : Tensor::empty(t.shape(), t.dtype());
  copy_tensor(t, out);
  return out;
}

void cuda_synchronize() { cuda_check(cudaDeviceSynchronize(), "kernel execution"); }

}  // namespace mambalm
