// Norms and the causal depthwise convolution on CUDA.
//
// Norms: one thread block per row (per row and group for the gated norm). Row statistics are
// accumulated in double, as on the CPU: the kernels are bound by memory traffic, so the double
// adds cost nothing measurable, and the two backends then differ only in summation order.
// Each block reads its row's statistics before writing, so y may alias x.
#include <cuda_runtime.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float eps,
                                float* y, int64_t D) {
  pdl_launch_dependents();  // a GEMV that follows may start streaming its weights
  __shared__ double scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * D;
  float* yr = y + int64_t(blockIdx.x) * D;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += double(xr[i]) * xr[i];
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float eps, float gain_offset,
                                  float* y, int64_t D) {
  __shared__ double scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * D;
  float* yr = y + int64_t(blockIdx.x) * D;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
  const double mean = block_sum(s, scratch) / double(D);
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const double d = xr[i] - mean;
    v += d * d;
  }
  const double var = block_sum(v, scratch) / double(D);
  const float inv = float(1.0 / sqrt(var + double(eps)));
  const float meanf = float(mean);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float o = (xr[i] - meanf) * inv * (w[i] + gain_offset);
    yr[i] = b ? o + b[i] : o;
  }
}

// Block (row, group): g = x * silu(z) is formed twice (for the statistic, then for the output)
// rather than staged, so y may alias x or z.
__global__ void gated_rms_norm_kernel(const float* x, const float* z, const float* __restrict__ w,
                                      int64_t group_size, int64_t groups, float eps, float* y,
                                      int64_t D) {
  pdl_launch_dependents();  // a GEMV that follows may start streaming its weights
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
  const int64_t off = row * D + g * group_size;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float gv = x[off + i] * silu_f(z[off + i]);
    s += double(gv) * gv;
  }
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(group_size) + double(eps)));
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float gv = x[off + i] * silu_f(z[off + i]);
    y[off + i] = gv * inv * w[g * group_size + i];
  }
}

int row_threads(int64_t D) { return D >= 1024 ? 512 : (D >= 256 ? 256 : 64); }

}  // namespace

void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  if (rows == 0) return;
  rms_norm_kernel<<<unsigned(rows), row_threads(D)>>>(x.f32(), w.f32(), eps, y.f32(), D);
  check_launch("rms_norm");
}

void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, bool zero_centered,
                Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  if (rows == 0) return;
  layer_norm_kernel<<<unsigned(rows), row_threads(D)>>>(x.f32(), w.f32(), b ? b->f32() : nullptr,
                                                        eps, zero_centered ? 1.0f : 0.0f, y.f32(), D);
  check_launch("layer_norm");
}

void gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size,
                    float eps, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  const int64_t groups = D / group_size;
  if (rows == 0) return;
  gated_rms_norm_kernel<<<unsigned(rows * groups), row_threads(group_size)>>>(
      x.f32(), z.f32(), w.f32(), group_size, groups, eps, y.f32(), D);
  check_launch("gated_rms_norm");
}

// ---- causal depthwise conv ---------------------------------------------------------------------

namespace {

// One thread per (b, t, c), channels fastest (coalesced). Padded row i = t + k is state column i
// when i < Hh (Hh = K - 1), else x row i - Hh; the sum runs in k order from the bias, as on the CPU.
__global__ void conv_kernel(const float* __restrict__ x, const float* __restrict__ w,
                            const float* __restrict__ bias, const float* __restrict__ state,
                            bool apply_silu, float* __restrict__ y, int64_t B, int64_t T, int64_t C,
                            int64_t K) {
  const int64_t Hh = K - 1;
  const int64_t n = B * T * C;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C;
    const int64_t t = (idx / C) % T;
    const int64_t b = idx / (C * T);
    float acc = bias ? bias[c] : 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t i = t + k;
      float xv;
      if (i < Hh) xv = state ? state[(b * C + c) * Hh + i] : 0.0f;
      else xv = x[(b * T + (i - Hh)) * C + c];
      acc += w[c * K + k] * xv;
    }
    y[idx] = apply_silu ? silu_f(acc) : acc;
  }
}

// New state = padded rows T .. T+Hh-1. One thread per (b, c) walks j upwards: it reads column
// T + j (> j) before anything overwrites it, so the update is safe in place for any T.
__global__ void conv_state_kernel(const float* __restrict__ x, float* state, int64_t B, int64_t T,
                                  int64_t C, int64_t Hh) {
  const int64_t n = B * C;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C, b = idx / C;
    float* s = state + (b * C + c) * Hh;
    for (int64_t j = 0; j < Hh; ++j) {
      const int64_t i = T + j;
      s[j] = i < Hh ? s[i] : x[(b * T + (i - Hh)) * C + c];
    }
  }
}

}  // namespace

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* state,
                   bool apply_silu, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  if (B * T * C > 0) {
    conv_kernel<<<blocks_for(B * T * C), kThreads>>>(x.f32(), w.f32(), bias ? bias->f32() : nullptr,
                                                     state ? state->f32() : nullptr, apply_silu,
                                                     y.f32(), B, T, C, K);
    check_launch("causal_conv1d");
  }
  if (state && K > 1 && B * C > 0) {
    conv_state_kernel<<<blocks_for(B * C), kThreads>>>(x.f32(), state->f32(), B, T, C, K - 1);
    check_launch("causal_conv1d");
  }
}

}  // namespace mambalm::ops::cuda
