// Causal depthwise 1-D convolution on the CPU (Mamba's short conv, d_conv = 4 typically),
// with an optional streaming state so prefill and token-by-token decode give the same numbers.
//
// Layout: x, y are [B, T, C] (channels last), so the kernel vectorises over channels. The
// weights [C, K] and the state [B, C, K-1] are channel-major; both are transposed once per call
// into time-major scratch ([K, C] and [B, K-1, C]) so that every inner loop is unit-stride.
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* state,
                   bool apply_silu, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2);
  const int64_t K = w.dim(1);
  const int64_t H = K - 1;  // history length
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* bp = bias ? bias->f32() : nullptr;
  float* yp = y.f32();

  std::vector<float> wt(static_cast<size_t>(K * C));  // [K, C]
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) wt[static_cast<size_t>(k * C + c)] = wp[c * K + k];

  // hist[b, j, c]: input at time j - H (oldest first); zeros without a state.
  std::vector<float> hist(static_cast<size_t>(B * H * C), 0.0f);
  if (state && H > 0) {
    const float* sp = state->f32();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < H; ++j)
          hist[static_cast<size_t>((b * H + j) * C + c)] = sp[(b * C + c) * H + j];
  }

  // Row i of the padded input (i = t + k) is hist row i when i < H, else x row i - H.
  auto padded_row = [&](int64_t b, int64_t i) -> const float* {
    return i < H ? hist.data() + (b * H + i) * C : xp + (b * T + (i - H)) * C;
  };

#pragma omp parallel for collapse(2) schedule(static) if (B * T * C * K > (1 << 16))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      float* yr = yp + (b * T + t) * C;
      if (bp) {
        std::memcpy(yr, bp, static_cast<size_t>(C) * sizeof(float));
      } else {
        std::memset(yr, 0, static_cast<size_t>(C) * sizeof(float));
      }
      for (int64_t k = 0; k < K; ++k) {
        const float* xr = padded_row(b, t + k);
        const float* wk = wt.data() + k * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] += wk[c] * xr[c];
      }
      if (apply_silu) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = yr[c] / (1.0f + exp_fast(-yr[c]));
      }
    }
  }

  // New state: the last H rows of the padded input, i.e. padded rows T .. T+H-1.
  if (state && H > 0) {
    float* sp = state->f32();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const float* src = padded_row(b, T + j);
        for (int64_t c = 0; c < C; ++c) sp[(b * C + c) * H + j] = src[c];
      }
  }
}

}  // namespace mambalm::ops::cpu
