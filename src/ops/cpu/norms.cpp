// Normalisations over the last dimension on the CPU: RMSNorm, LayerNorm (optionally with the
// zero-centred "1p" gain) and Mamba-2's grouped gated RMSNorm. Rows are independent and split
// across threads.
//
// Precision: the row statistics (sum of squares, mean, variance) accumulate in double. Rows are
// long (d_model 4096, d_inner 8192) and an fp32 running sum loses ~log2(D) bits; double costs
// nothing measurable here because these kernels are bound by memory traffic, not arithmetic.
// The per-element scaling is fp32. Each row's statistics are computed before any element of
// the row is written, so y == x (same buffer) also works.
#include <cmath>
#include <cstdint>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {

constexpr int64_t kParallelMinElems = 1 << 14;

// sum of squares of p[0..n) in double
inline double sum_squares(const float* p, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  const float* xp = x.f32();
  const float* wp = w.f32();
  float* yp = y.f32();
  for_each_row(rows, rows * D > kParallelMinElems, [&](int64_t r) {
    const float* xr = xp + r * D;
    float* yr = yp + r * D;
    double ms = sum_squares(xr, D) / static_cast<double>(D);
    float inv = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * inv * wp[i];
  });
}

// Two passes per row (mean, then variance about the mean), not E[x^2]-E[x]^2, which cancels
// catastrophically when |mean| >> std.
void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, bool zero_centered,
                Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* bp = b ? b->f32() : nullptr;
  const float gain_offset = zero_centered ? 1.0f : 0.0f;
  float* yp = y.f32();
  for_each_row(rows, rows * D > kParallelMinElems, [&](int64_t r) {
    const float* xr = xp + r * D;
    float* yr = yp + r * D;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < D; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(D);
    double var = 0.0;
#pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < D; ++i) {
      double d = xr[i] - mean;
      var += d * d;
    }
    var /= static_cast<double>(D);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    const float meanf = static_cast<float>(mean);
    if (bp) {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - meanf) * inv * (wp[i] + gain_offset) + bp[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - meanf) * inv * (wp[i] + gain_offset);
    }
  });
}

// g = x * silu(z) is written into y first (element i depends only on x[i], z[i], so this is
// safe even if y aliases x or z), then each group of `group_size` channels is scaled in place.
void gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size,
                    float eps, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  const int64_t groups = group_size > 0 ? D / group_size : 0;
  const float* xp = x.f32();
  const float* zp = z.f32();
  const float* wp = w.f32();
  float* yp = y.f32();
  for_each_row(rows, rows * D > kParallelMinElems, [&](int64_t r) {
    const float* xr = xp + r * D;
    const float* zr = zp + r * D;
    float* yr = yp + r * D;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) {
      float zi = zr[i];
      yr[i] = xr[i] * (zi / (1.0f + exp_fast(-zi)));
    }
    for (int64_t g = 0; g < groups; ++g) {
      float* yg = yr + g * group_size;
      const float* wg = wp + g * group_size;
      double ms = sum_squares(yg, group_size) / static_cast<double>(group_size);
      float inv = static_cast<float>(1.0 / std::sqrt(ms + static_cast<double>(eps)));
#pragma omp simd
      for (int64_t i = 0; i < group_size; ++i) yg[i] = yg[i] * inv * wg[i];
    }
  });
}

void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y) {
  add(x, r, sum);
  rms_norm(sum, w, eps, y);
}

}  // namespace mambalm::ops::cpu
