// The seam between core/device.h and the CUDA runtime: the few calls that need it. A CUDA build
// defines them in core/cuda_memory.cu; a CPU-only build in core/no_cuda.cpp, where those that
// need a device fail with "built without CUDA". Only core/ includes this header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace mambalm::cuda_backend {

bool built();
int device_count();
std::string device_summary();
Tensor empty(const Shape& shape, DType dtype);            // device memory
void fill_bytes(Tensor& t, int byte);                     // cudaMemset of a device tensor
void copy(const Tensor& src, Tensor& dst);                // synchronous; one side on the device
void copy_async(const Tensor& src, Tensor& dst);          // queued on the ops' stream
void synchronize();
Tensor empty_pinned(const Shape& shape, DType dtype);
bool capturing();
void fill_uniform(Tensor& t, uint64_t seed, float lo, float hi);
void memory_info(size_t* free_bytes, size_t* total_bytes);

}  // namespace mambalm::cuda_backend
