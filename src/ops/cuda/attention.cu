// Causal GQA attention on CUDA (queries may follow a KV-cache prefix).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

constexpr int kAttnWarps = 4;

// One warp per (b, t, query head); consecutive warps of a block are consecutive heads, which
// share a KV head under GQA, so their K/V reads hit the same cache lines. Lane owns head dims
// d = lane + 32 k. Online softmax in fp32 (running max m, running sum l), one key at a time.
template <int DK>
__global__ void __launch_bounds__(kAttnWarps * 32)
attention_kernel(const float* __restrict__ q, const float* __restrict__ k,
                 const float* __restrict__ v, float scale, float* __restrict__ out, int B, int T,
                 int S, int Hq, int Hkv, int Dh) {
  const int lane = threadIdx.x & 31;
  const int64_t wid = int64_t(blockIdx.x) * kAttnWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(B) * T * Hq) return;
  const int h = int(wid % Hq);
  const int t = int((wid / Hq) % T);
  const int b = int(wid / (int64_t(Hq) * T));
  const int kvh = h / (Hq / Hkv);
  const float* qr = q + wid * Dh;
  float qv[DK], acc[DK];
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < Dh ? qr[d] : 0.0f;
    acc[i] = 0.0f;
  }
  const int visible = S - T + t + 1;
  const float* kb = k + (int64_t(b) * S * Hkv + kvh) * Dh;
  const float* vb = v + (int64_t(b) * S * Hkv + kvh) * Dh;
  const int64_t kv_ld = int64_t(Hkv) * Dh;
  float m = -INFINITY, l = 0.0f;
  for (int j = 0; j < visible; ++j) {
    const float* kj = kb + j * kv_ld;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      if (d < Dh) dot += qv[i] * kj[d];
    }
    const float s = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(s - m_new);
    l = l * corr + p;
    const float* vj = vb + j * kv_ld;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < Dh ? p * vj[d] : 0.0f);
    }
    m = m_new;
  }
  const float inv = 1.0f / l;
  float* orow = out + wid * Dh;
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    if (d < Dh) orow[d] = acc[i] * inv;
  }
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  if (B * T * Hq * Dh == 0) return;
  const int64_t warps = B * T * Hq;
  const unsigned blocks = unsigned((warps + kAttnWarps - 1) / kAttnWarps);
#define MAMBALM_ATTN_LAUNCH(DK)                                                                 \
  attention_kernel<DK><<<blocks, kAttnWarps * 32>>>(q.f32(), k.f32(), v.f32(), scale, out.f32(),  \
                                                    int(B), int(T), int(S), int(Hq), int(Hkv), int(Dh))
  if (Dh <= 32) MAMBALM_ATTN_LAUNCH(1);
  else if (Dh <= 64) MAMBALM_ATTN_LAUNCH(2);
  else if (Dh <= 128) MAMBALM_ATTN_LAUNCH(4);
  else if (Dh <= 256) MAMBALM_ATTN_LAUNCH(8);
  else fail("op attention (cuda)", "head dim " + std::to_string(Dh) + " is above the supported 256");
#undef MAMBALM_ATTN_LAUNCH
  check_launch("attention");
}

}  // namespace mambalm::ops::cuda
