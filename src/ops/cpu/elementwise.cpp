// Elementwise ops on the CPU and their backward passes. Every op here reads element i and writes
// element i only, so y may alias any input (ops.h allows it). Loops are flat over numel, split across threads
// only when there is enough work to pay for the fork (a decode step's vectors are too small).
#include <cmath>
#include <cstdint>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {


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
  for_each_simd(n, n > kParallelMin, [&](int64_t i) { yp[i] = ap[i] + bp[i]; });
}

void neg_exp(const Tensor& x, Tensor& y) {
  const float* a = x.f32();
  float* b = y.f32();
  for (int64_t i = 0; i < x.numel(); ++i) b[i] = -std::exp(a[i]);
}

// d(-exp(x))/dx = -exp(x) = y.
void neg_exp_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  const float* a = y.f32();
  const float* g = dy.f32();
  float* d = dx.f32();
  for (int64_t i = 0; i < y.numel(); ++i) d[i] += g[i] * a[i];
}

void silu(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  const float* xp = x.f32();
  float* yp = y.f32();
  for_each_simd(n, n > kParallelMin, [&](int64_t i) { yp[i] = silu_scalar(xp[i]); });
}

void relu_squared(const Tensor& x, Tensor& y) {
  const int64_t n = y.numel();
  const float* xp = x.f32();
  float* yp = y.f32();
  for_each_simd(n, n > kParallelMin, [&](int64_t i) {
    float r = xp[i] > 0.0f ? xp[i] : 0.0f;
    yp[i] = r * r;
  });
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
  for_each_row(n, n > kParallelMin / 4, [&](int64_t i) {
    float v = xp[i];
    yp[i] = 0.5f * v * std::erfc(-v * inv_sqrt2);
  });
}

void swiglu(const Tensor& gate, const Tensor& up, Tensor& y) {
  const int64_t n = y.numel();
  const float* gp = gate.f32();
  const float* up_ = up.f32();
  float* yp = y.f32();
  for_each_simd(n, n > kParallelMin, [&](int64_t i) { yp[i] = silu_scalar(gp[i]) * up_[i]; });
}

// d/dx [x sigmoid(x)] = s (1 + x (1 - s))
void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  const int64_t n = x.numel();
  const float* xp = x.f32();
  const float* gp = dy.f32();
  float* op = dx.f32();
  for_each_simd(n, n > kParallelMin, [&](int64_t i) {
    const float s = sigmoid(xp[i]);
    op[i] = gp[i] * s * (1.0f + xp[i] * (1.0f - s));
  });
}

void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  const int64_t n = x.numel();
  const float* xp = x.f32();
  const float* gp = dy.f32();
  float* op = dx.f32();
  for_each_simd(n, n > kParallelMin, [&](int64_t i) { op[i] = xp[i] > 0.0f ? 2.0f * xp[i] * gp[i] : 0.0f; });
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi via erfc (no cancellation for x << 0).
void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  const int64_t n = x.numel();
  const float* xp = x.f32();
  const float* gp = dy.f32();
  float* op = dx.f32();
  const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
  for_each_row(n, n > kParallelMin / 4, [&](int64_t i) {
    const float v = xp[i];
    const float cdf = 0.5f * std::erfc(-v * inv_sqrt2);
    const float pdf = inv_sqrt_2pi * std::exp(-0.5f * v * v);
    op[i] = gp[i] * (cdf + v * pdf);
  });
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate,
                     Tensor& dup) {
  const int64_t n = gate.numel();
  const float* gp = gate.f32();
  const float* upp = up.f32();
  const float* dyp = dy.f32();
  float* dg = dgate.f32();
  float* du = dup.f32();
  for_each_simd(n, n > kParallelMin, [&](int64_t i) {
    const float x = gp[i], s = sigmoid(x), g = dyp[i], u = upp[i];
    dg[i] = g * u * s * (1.0f + x * (1.0f - s));
    du[i] = g * x * s;
  });
}

// softplus as torch.nn.functional.softplus (beta 1, threshold 20: linear above 20; softplus_fast),
// then clamp. Rows of H, so the inner loop vectorises without an i % H per element.
void softplus_dt(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                 Tensor& dt_out) {
  const int64_t H = dt.dim(-1);
  const int64_t rows = H > 0 ? dt.numel() / H : 0;
  const float* dp = dt.f32();
  const float* bp = dt_bias.f32();
  float* op = dt_out.f32();
  for_each_row(rows, rows * H > kParallelMin, [&](int64_t r) {
    const float* d = dp + r * H;
    float* o = op + r * H;
#pragma omp simd
    for (int64_t h = 0; h < H; ++h) {
      // std::min / std::max as before, written as selects on values (GCC would not vectorise the
      // reference-returning forms)
      float sp = softplus_fast(d[h] + bp[h]);
      sp = sp < dt_min ? dt_min : sp;
      o[h] = dt_max < sp ? dt_max : sp;
    }
  });
}

void softplus_dt_backward(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                          const Tensor& dy, Tensor& ddt, Tensor* ddt_bias) {
  const int64_t H = dt.dim(-1), n = dt.numel();
  const float* dp = dt.f32();
  const float* bp = dt_bias.f32();
  const float* gp = dy.f32();
  float* op = ddt.f32();
  for_each_row(n, n > kParallelMin, [&](int64_t i) {
    const float v = dp[i] + bp[i % H];
    const float sp = softplus_fast(v);  // as the forward (the same clamp decisions)
    const bool clamped = sp < dt_min || sp > dt_max;
    op[i] = clamped ? 0.0f : gp[i] * (v > 20.0f ? 1.0f : 1.0f / (1.0f + std::exp(-v)));
  });
  if (ddt_bias && H > 0) add_column_sums(op, n / H, H, ddt_bias->f32());
}

}  // namespace mambalm::ops::cpu
