// Elementwise activations on the CPU. Every op here reads element i and writes element i only,
// so y may alias any input (ops.h allows it). Loops are flat over numel, split across threads
// only when there is enough work to pay for the fork (a decode step's vectors are too small).
#include <cmath>
#include <cstdint>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which one thread is faster

// x * sigmoid(x) = x / (1 + e^-x). For x -> -inf, e^-x overflows to inf and the quotient is -0,
// the correct limit; for x -> +inf it is x. exp_fast keeps the loop vectorisable; its 2-3 ulp
// error is below the rounding of the division.
inline float silu_scalar(float x) { return x / (1.0f + exp_fast(-x)); }

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  const int64_t n = y.numel();
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = ap[i] + bp[i];
}

void silu(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  const float* xp = x.f32();
  float* yp = y.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = silu_scalar(xp[i]);
}

void relu_squared(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  const float* xp = x.f32();
  float* yp = y.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float r = xp[i] > 0.0f ? xp[i] : 0.0f;
    yp[i] = r * r;
  }
}

// Exact GeLU, x/2 * (1 + erf(x / sqrt 2)), as torch.nn.functional.gelu(approximate='none'),
// evaluated as x/2 * erfc(-x / sqrt 2): the same function, but 1 + erf(.) cancels for x << 0
// (x = -4 loses ~10 bits) while erfc keeps full relative precision in that tail.
// std::erfc is not vectorised, but GeLU runs once per MLP activation, next to a large gemm.
void gelu(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  const float* xp = x.f32();
  float* yp = y.f32();
  const float inv_sqrt2 = 0.70710678118654752f;
#pragma omp parallel for schedule(static) if (n > kParallelMin / 4)
  for (int64_t i = 0; i < n; ++i) {
    float v = xp[i];
    yp[i] = 0.5f * v * std::erfc(-v * inv_sqrt2);
  }
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& y) {
  const int64_t n = y.numel();
  const float* gp = gate.f32();
  const float* up_ = up.f32();
  float* yp = y.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = silu_scalar(gp[i]) * up_[i];
}

}  // namespace mambalm::ops::cpu
