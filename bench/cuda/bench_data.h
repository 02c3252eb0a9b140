// Inputs, output fingerprints and the bandwidth reference of the GPU kernel benchmarks
// (bench/cuda/*.cpp): uniform random tensors drawn on the host from a seed (so two builds see the
// same inputs) and copied to the GPU, an FNV-1a hash of a tensor's bits (so two builds or two
// kernel variants can be shown to compute the same bits), and the copy rate that memory-bound
// kernels are reported against.
#pragma once
#include <cstdint>
#include <random>

#include "core/device.h"
#include "core/tensor.h"

namespace mambalm::bench_cuda {

constexpr double kCopyTBs = 4.3;  // device-to-device copy measured on an H200 here (KINDS.md)

// [shape] uniform in [lo, hi), on the GPU as dtype (drawn in fp32, then rounded).
inline Tensor rand_gpu(const Shape& s, float lo, float hi, uint64_t seed, DType dtype = DType::F32) {
  Tensor t = Tensor::empty(s);
  std::mt19937_64 r(seed);
  const double scale = (hi - lo) / 18446744073709551616.0;
  float* p = t.f32();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = float(lo + scale * double(r()));
  return to_device(dtype == DType::F32 ? t : t.to(dtype), Device::CUDA);
}

inline uint64_t fnv(const Tensor& t) {
  const Tensor h = to_device(t, Device::CPU);
  const auto* p = static_cast<const unsigned char*>(h.raw());
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0, n = size_t(h.numel()) * dtype_size(h.dtype()); i < n; ++i) x = (x ^ p[i]) * 1099511628211ull;
  return x;
}

}  // namespace mambalm::bench_cuda
