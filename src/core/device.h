// Where tensors live, device-neutral: allocation on a device, copies between devices, waiting
// for queued device work. Always declared; every function works for CPU tensors in any build.
// Anything that needs the CUDA device goes through core/cuda_backend.h, which a CUDA build
// implements in core/cuda_memory.cu and a CPU-only build in core/no_cuda.cpp (where it fails
// with "built without CUDA"). So model/, infer/ and the tools need no #ifdef: they ask
// cuda_built() or simply call, and get a one-line error where CUDA is missing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace mambalm {

// True when this binary carries the CUDA backend (it may still find no device at run time).
bool cuda_built();
// Number of CUDA devices visible (0 without the backend, the driver or a device; never throws).
int cuda_device_count();
// "NVIDIA H200, sm_90, 132 SMs, 140 GiB" for the current device.
std::string cuda_device_summary();

// A new tensor on `device`: uninitialised, or zero-filled.
Tensor empty_on(Device device, const Shape& shape, DType dtype = DType::F32);
Tensor zeros_on(Device device, const Shape& shape, DType dtype = DType::F32);
// Device memory (cudaMalloc; freed when the last view goes away). empty_cuda_poisoned fills
// every byte with 0xFF (NaN for floats) so a test can see elements a kernel never wrote.
Tensor empty_cuda(const Shape& shape, DType dtype = DType::F32);
Tensor zeros_cuda(const Shape& shape, DType dtype = DType::F32);
Tensor empty_cuda_poisoned(const Shape& shape, DType dtype = DType::F32);

// A contiguous copy of t on `device` (same dtype and shape). A tensor already there is copied
// too, so the result never aliases t. Synchronous: the copy is complete on return.
Tensor to_device(const Tensor& t, Device device);
// t itself when it is on the CPU, else a synchronous copy to the host.
Tensor to_host(const Tensor& t);
// Copy src into dst (same dtype and byte size), across devices or within one; synchronous.
void copy_tensor(const Tensor& src, Tensor& dst);

// Wait for all queued device work; throws with the CUDA error if a kernel failed. A no-op
// without the CUDA backend.
void cuda_synchronize();

// Page-locked host memory (a CPU tensor): a copy from it can be queued asynchronously and
// captured in a CUDA graph, where each replay reads the bytes present at that moment. Plain
// host memory without the CUDA backend.
Tensor empty_pinned(const Shape& shape, DType dtype = DType::F32);
// Queue a copy of src into dst (same dtype and byte size) on the stream every op uses and
// return at once. A pageable host side makes the copy synchronous (never inside a capture).
void copy_async(const Tensor& src, Tensor& dst);
// True while the calling thread's stream is being captured into a graph: no allocation, no
// synchronisation and no host read of device memory may happen then.
bool cuda_capturing();
// Fills a CUDA F32 or BF16 tensor with uniform values in [lo, hi) from a counter-based hash of
// (seed, index): reproducible, and fast enough to initialise billions of parameters.
void fill_uniform_cuda(Tensor& t, uint64_t seed, float lo, float hi);
// Bytes free and in total on the current device.
void cuda_memory_info(size_t* free_bytes, size_t* total_bytes);

}  // namespace mambalm
