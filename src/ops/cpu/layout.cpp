// CPU data movement: column splits and joins, row copies, fill, F32 <-> BF16 conversion (see
// ops/forward_ops.inc).
#include <cstring>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/q8_format.h"

namespace mambalm::ops::cpu {

void copy_columns(const Tensor& src, int64_t col0, Tensor& dst) {
  const int64_t W = src.dim(-1), w = dst.dim(-1);
  const int64_t rows = src.numel() / (W ? W : 1);
  const float* s = src.f32();
  float* d = dst.f32();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * w, s + r * W + col0, static_cast<size_t>(w) * 4);
}

void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts) {
  int64_t col = 0;
  for (Tensor* p : parts) {
    copy_columns(src, col, *p);
    col += p->dim(-1);
  }
}

void write_columns(const Tensor& src, Tensor& dst, int64_t col0) {
  const int64_t W = dst.dim(-1), w = src.dim(-1);
  const int64_t rows = dst.numel() / (W ? W : 1);
  const float* s = src.f32();
  float* d = dst.f32();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * W + col0, s + r * w, static_cast<size_t>(w) * 4);
}

void copy_rows(const Tensor& src, int64_t n, Tensor& dst) {
  const int64_t row = src.numel() / (src.dim(0) ? src.dim(0) : 1);
  std::memcpy(dst.raw(), src.raw(), static_cast<size_t>(n * row) * dtype_size(src.dtype()));
}

void fill(Tensor& t, float value) {
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
}

void convert(const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (x.dtype() == y.dtype()) {
    std::memcpy(y.raw(), x.raw(), x.nbytes());
  } else if (x.dtype() == DType::Q8 || y.dtype() == DType::Q8) {  // row by row (q8_format.h)
    const int64_t K = x.dim(-1), rows = K > 0 ? n / K : 0, rb = q8_row_bytes(K);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t r = 0; r < rows; ++r) {
      if (y.dtype() == DType::Q8) quantize_row_q8(x.f32() + r * K, K, y.data<uint8_t>() + r * rb);
      else dequantize_row_q8(x.data<uint8_t>() + r * rb, K, y.f32() + r * K);
    }
  } else if (x.dtype() == DType::F32) {
    const float* s = x.f32();
    uint16_t* d = y.data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(s[i]);
  } else {
    const uint16_t* s = x.data<uint16_t>();
    float* d = y.f32();
    for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(s[i]);
  }
}

}  // namespace mambalm::ops::cpu
