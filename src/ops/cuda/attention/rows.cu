// Reference-grade attention: one warp per query row, fp32 throughout, any head dim <= 256, F32
// or BF16 K/V. The prefill path for F32 K/V and for the shapes the flash kernels do not cover
// (attend_rows_kernel), and the decode fallback for the head dims and alignments the decode
// kernels do not cover (decode_rows_kernel). With document ids a row skips the keys of other
// documents (the test is uniform across the warp, so the skip costs no divergence).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kAttnWarps = 4;

// Online softmax over `visible` keys for one query row; lane owns head dims d = lane + 32 i.
// DOC: seq (the row's sequence of document ids) and doc (the row's own id) drop the keys of
// other documents; the row's own key is always kept, so the sum is positive.
template <int DK, class KV, bool DOC = false>
__device__ __forceinline__ void attend_row(const float* __restrict__ qr, const KV* __restrict__ kb,
                                           const KV* __restrict__ vb, int64_t kv_ld, int visible,
                                           float scale, float* __restrict__ orow, int Dh,
                                           const int* __restrict__ seq = nullptr, int doc = 0,
                                           float* lse2 = nullptr) {
  const int lane = threadIdx.x & 31;
  float qv[DK], acc[DK];
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < Dh ? qr[d] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int j = 0; j < visible; ++j) {
    if constexpr (DOC) {
      if (__ldg(seq + j) != doc) continue;
    }
    const KV* kj = kb + j * kv_ld;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      if (d < Dh) dot += qv[i] * load_elem(kj + d);
    }
    const float s = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(s - m_new);
    l = l * corr + p;
    const KV* vj = vb + j * kv_ld;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < Dh ? p * load_elem(vj + d) : 0.0f);
    }
    m = m_new;
  }
  const float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    if (d < Dh) orow[d] = acc[i] * inv;
  }
  if (lse2 && lane == 0) *lse2 = (m + logf(l)) * kLog2e;  // log2 sum_j exp(s_j)
}

// One warp per (b, t, query head); consecutive warps of a block are consecutive heads, which
// share a KV head under GQA, so their K/V reads hit the same cache lines.
template <int DK, class KV, bool DOC>
__global__ void __launch_bounds__(kAttnWarps * 32)
attend_rows_kernel(const float* __restrict__ q, const KV* __restrict__ k, const KV* __restrict__ v,
                   const int* __restrict__ seq_idx, float scale, float* __restrict__ out, float* lse2,
                   int B, int T, int S, int Hq, int Hkv, int Dh) {
  const int64_t wid = int64_t(blockIdx.x) * kAttnWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(B) * T * Hq) return;
  const int h = int(wid % Hq);
  const int t = int((wid / Hq) % T);
  const int b = int(wid / (int64_t(Hq) * T));
  const int kvh = h / (Hq / Hkv);
  const int64_t base = (int64_t(b) * S * Hkv + kvh) * Dh;
  const int pos = S - T + t;
  const int* seq = DOC ? seq_idx + int64_t(b) * S : nullptr;
  attend_row<DK, KV, DOC>(q + wid * Dh, k + base, v + base, int64_t(Hkv) * Dh, pos + 1, scale,
                          out + wid * Dh, Dh, seq, DOC ? __ldg(seq + pos) : 0,
                          lse2 ? lse2 + (int64_t(b) * Hq + h) * T + t : nullptr);
}

// Decode fallback (head dims the split kernel does not cover): one warp per (b, query head),
// sequence b sees cache rows 0 .. lengths[b]-1.
template <int DK, class KV>
__global__ void __launch_bounds__(kAttnWarps * 32)
decode_rows_kernel(const float* __restrict__ q, const KV* __restrict__ k, const KV* __restrict__ v,
                   const int* __restrict__ lengths, float scale, float* __restrict__ out, int B,
                   int capacity, int Hq, int Hkv, int Dh) {
  const int64_t wid = int64_t(blockIdx.x) * kAttnWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(B) * Hq) return;
  const int h = int(wid % Hq), b = int(wid / Hq);
  const int kvh = h / (Hq / Hkv);
  const int64_t base = (int64_t(b) * capacity * Hkv + kvh) * Dh;
  attend_row<DK, KV>(q + wid * Dh, k + base, v + base, int64_t(Hkv) * Dh, lengths[b], scale,
                     out + wid * Dh, Dh);
}

}  // namespace

void attention_rows(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                    float scale, Tensor& out, float* lse2) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  const bool bf16 = k.dtype() == DType::BF16;
  const int64_t warps = B * T * Hq;
  const unsigned blocks = unsigned((warps + kAttnWarps - 1) / kAttnWarps);
  const int* seq = docs ? docs->seq : nullptr;
#define MAMBALM_ATTN_LAUNCH_KV(DK, KV, DOC, kp, vp)                                              \
  attend_rows_kernel<DK, KV, DOC><<<blocks, kAttnWarps * 32>>>(q.f32(), kp, vp, seq, scale,      \
                                                               out.f32(), lse2, int(B), int(T),  \
                                                               int(S), int(Hq), int(Hkv), int(Dh))
#define MAMBALM_ATTN_LAUNCH(DK)                                                                  \
  do {                                                                                           \
    if (bf16) {                                                                                  \
      if (seq) MAMBALM_ATTN_LAUNCH_KV(DK, uint16_t, true, k.data<uint16_t>(), v.data<uint16_t>()); \
      else MAMBALM_ATTN_LAUNCH_KV(DK, uint16_t, false, k.data<uint16_t>(), v.data<uint16_t>());  \
    } else {                                                                                     \
      if (seq) MAMBALM_ATTN_LAUNCH_KV(DK, float, true, k.f32(), v.f32());                        \
      else MAMBALM_ATTN_LAUNCH_KV(DK, float, false, k.f32(), v.f32());                           \
    }                                                                                            \
  } while (0)
  if (Dh <= 32) MAMBALM_ATTN_LAUNCH(1);
  else if (Dh <= 64) MAMBALM_ATTN_LAUNCH(2);
  else if (Dh <= 128) MAMBALM_ATTN_LAUNCH(4);
  else if (Dh <= 256) MAMBALM_ATTN_LAUNCH(8);
  else fail("op attention (cuda)", "head dim " + std::to_string(Dh) + " is above the supported 256");
#undef MAMBALM_ATTN_LAUNCH
#undef MAMBALM_ATTN_LAUNCH_KV
}

void attention_decode_rows(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const Tensor& lengths, float scale, Tensor& out) {
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2);
  const int64_t capacity = k_cache.dim(1), Hkv = k_cache.dim(2);
  const bool bf16 = k_cache.dtype() == DType::BF16;
  const unsigned blocks = unsigned((B * Hq + kAttnWarps - 1) / kAttnWarps);
#define MAMBALM_DEC_ROWS(DK)                                                                     \
  do {                                                                                           \
    if (bf16)                                                                                    \
      decode_rows_kernel<DK, uint16_t><<<blocks, kAttnWarps * 32>>>(                             \
          q.f32(), k_cache.data<uint16_t>(), v_cache.data<uint16_t>(),                           \
          lengths.data<int32_t>(), scale, out.f32(), int(B), int(capacity), int(Hq), int(Hkv),   \
          int(Dh));                                                                              \
    else                                                                                         \
      decode_rows_kernel<DK, float><<<blocks, kAttnWarps * 32>>>(                                \
          q.f32(), k_cache.f32(), v_cache.f32(), lengths.data<int32_t>(), scale, out.f32(),      \
          int(B), int(capacity), int(Hq), int(Hkv), int(Dh));                                    \
  } while (0)
  if (Dh <= 32) MAMBALM_DEC_ROWS(1);
  else if (Dh <= 64) MAMBALM_DEC_ROWS(2);
  else if (Dh <= 128) MAMBALM_DEC_ROWS(4);
  else if (Dh <= 256) MAMBALM_DEC_ROWS(8);
  else fail("op attention_decode (cuda)",
            "head dim " + std::to_string(Dh) + " is above the supported 256");
#undef MAMBALM_DEC_ROWS
}

}  // namespace mambalm::ops::cuda
