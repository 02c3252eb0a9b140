// The causal depthwise convolution on CUDA (Mamba's short conv).
#include <cuda_runtime.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

// One thread per (b, t, c), channels fastest (coalesced). Padded row i = t + k is state column i
// when i < Hh (Hh = K - 1), else x row i - Hh; the sum runs in k order from the bias, as on the CPU.
// With document ids, input time s = i - Hh counts only when it is in t's document (the history,
// s < 0, belongs to token 0's).
__global__ void conv_kernel(const float* __restrict__ x, const float* __restrict__ w,
                            const float* __restrict__ bias, const int32_t* __restrict__ seq,
                            const float* __restrict__ state, bool apply_silu, float* __restrict__ y,
                            int64_t B, int64_t T, int64_t C, int64_t K) {
  const int64_t Hh = K - 1;
  const int64_t n = B * T * C;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C;
    const int64_t t = (idx / C) % T;
    const int64_t b = idx / (C * T);
    float acc = bias ? bias[c] : 0.0f;
    const int32_t doc = seq ? seq[b * T + t] : 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t i = t + k;
      if (seq && seq[b * T + (i < Hh ? 0 : i - Hh)] != doc) continue;
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

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                   bool apply_silu, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  if (B * T * C > 0) {
    conv_kernel<<<blocks_for(B * T * C), kThreads>>>(x.f32(), w.f32(), bias ? bias->f32() : nullptr,
                                                     seq_idx ? seq_idx->data<int32_t>() : nullptr,
                                                     state ? state->f32() : nullptr, apply_silu, y.f32(), B, T, C, K);
    check_launch("causal_conv1d");
  }
  if (state && K > 1 && B * C > 0) {
    conv_state_kernel<<<blocks_for(B * C), kThreads>>>(x.f32(), state->f32(), B, T, C, K - 1);
    check_launch("causal_conv1d");
  }
}

}  // namespace mambalm::ops::cuda
