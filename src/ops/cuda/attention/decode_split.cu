// Split-KV decode (flash-decoding), one query per sequence: decode_split_kernel, then
// decode_combine_kernel. A block owns (sequence, KV head, one split of the cache length) and
// all query heads of that KV head (up to 8), so a K/V row is read once per sequence; partial
// (max, sum, unnormalised acc) per split go to a scratch buffer that the combine kernel merges.
// The decode path for head dim 256, and for 64 / 128 with MAMBALM_ATTN_DECODE=split.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kDecWarps = 4;
constexpr int kDecMaxG = 8;    // query heads per block (more than 8 per KV head: several blocks);
                               // groups of <= 4 heads use a 4-head variant (fewer registers)
constexpr int kDecChunk = 128; // split lengths are multiples of this (any chunk size divides it)
// (Raw8, the raw 8-element cache-row load, is in common.cuh.)

// Grid: x = split, y = kvh * head_chunks + chunk, z = sequence. LR = D / 8 lanes share one
// cache row (8 elements each); a warp covers 32 / LR rows at a time. A split is walked in
// chunks of C rows: load K and V of the chunk, scores to shared memory, softmax statistics per
// head (one rescale of the accumulators per chunk), then P V from the V rows in registers.
// Partials: part_acc [B, Hq, splits, D] (unnormalised), part_ml [B, Hq, splits, 2] (max in
// log2 units, sum).
template <int D, int MAXG, class KV>
__global__ void __launch_bounds__(kDecWarps * 32)
decode_split_kernel(const float* __restrict__ q, const KV* __restrict__ kc,
                    const KV* __restrict__ vc, const int* __restrict__ lengths, float scale_log2,
                    float* __restrict__ part_acc, float* __restrict__ part_ml, int capacity,
                    int Hq, int Hkv, int head_chunks, int split_len, int splits) {
  constexpr int LR = D / 8, RPW = 32 / LR, ROWS = RPW * kDecWarps;
  // Cache rows a thread holds per chunk: all K and V loads of a chunk are issued together.
  // (A variant that staged three chunks ahead through shared memory with cp.async measured
  // slower on the H200: 1.49 against 2.23 TB/s at batch 32, 128K; two blocks per SM fit.)
  constexpr int RPT = sizeof(KV) == 2 ? 8 : 4, C = ROWS * RPT;
  __shared__ float s_p[MAXG][C];
  __shared__ float s_m[MAXG], s_l[MAXG], s_corr[MAXG];
  __shared__ float s_red[kDecWarps][MAXG][D];

  const int b = blockIdx.z, split = blockIdx.x;
  const int kvh = blockIdx.y / head_chunks, chunk = blockIdx.y % head_chunks;
  const int group = Hq / Hkv;
  const int h0 = kvh * group + chunk * MAXG;
  const int G = min(MAXG, group - chunk * MAXG);
  const int len = lengths[b];
  const int k_begin = split * split_len;
  if (k_begin >= len) return;  // past this sequence's length: the combine ignores this split
  const int k_end = min(len, k_begin + split_len);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int slot = lane / LR, li = lane % LR, d0 = li * 8;

  float qv[MAXG][8], acc[MAXG][8];
#pragma unroll
  for (int gg = 0; gg < MAXG; ++gg) {
    const float* qr = q + (int64_t(b) * Hq + h0 + min(gg, G - 1)) * D + d0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      qv[gg][i] = gg < G ? qr[i] * scale_log2 : 0.f;
      acc[gg][i] = 0.f;
    }
  }
  if (threadIdx.x < MAXG) {
    s_m[threadIdx.x] = -INFINITY;
    s_l[threadIdx.x] = 0.f;
  }
  const int64_t kv_ld = int64_t(Hkv) * D;
  const KV* kb = kc + (int64_t(b) * capacity * Hkv + kvh) * D + d0;
  const KV* vb = vc + (int64_t(b) * capacity * Hkv + kvh) * D + d0;

  for (int c0 = k_begin; c0 < k_end; c0 += C) {
    const int n = min(C, k_end - c0);
    Raw8<KV> kr[RPT], vr[RPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const int r = (i * kDecWarps + warp) * RPW + slot;
      if (r < n) {
        kr[i].load(kb + int64_t(c0 + r) * kv_ld);
        vr[i].load(vb + int64_t(c0 + r) * kv_ld);
      } else {
        kr[i].zero();
        vr[i].zero();
      }
    }
    // Scores (already in log2 units). Every lane runs every step: the shuffles need them all.
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const int r = (i * kDecWarps + warp) * RPW + slot;
      float kf[8];
      kr[i].get(kf);
      float dot[MAXG];
#pragma unroll
      for (int gg = 0; gg < MAXG; ++gg) {
        float t = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) t = fmaf(qv[gg][e], kf[e], t);
        dot[gg] = t;
      }
#pragma unroll
      for (int off = LR / 2; off > 0; off >>= 1)
#pragma unroll
        for (int gg = 0; gg < MAXG; ++gg)
          if (gg < G) dot[gg] += __shfl_xor_sync(0xffffffffu, dot[gg], off);
      if (li == 0 && r < n) {
#pragma unroll
        for (int gg = 0; gg < MAXG; ++gg)
          if (gg < G) s_p[gg][r] = dot[gg];
      }
    }
    __syncthreads();
    // Softmax statistics of this chunk: warp w handles heads w, w + 4.
    for (int gg = warp; gg < G; gg += kDecWarps) {
      float mx = -INFINITY;
      for (int r = lane; r < n; r += 32) mx = fmaxf(mx, s_p[gg][r]);
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_old = s_m[gg];
      const float m_new = fmaxf(m_old, mx);
      float sum = 0.f;
      for (int r = lane; r < n; r += 32) {
        const float p = exp2f(s_p[gg][r] - m_new);
        s_p[gg][r] = p;
        sum += p;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float corr = exp2f(m_old - m_new);  // 0 on the first chunk
        s_corr[gg] = corr;
        s_l[gg] = s_l[gg] * corr + sum;
        s_m[gg] = m_new;
      }
    }
    __syncthreads();
#pragma unroll
    for (int gg = 0; gg < MAXG; ++gg) {
      const float corr = gg < G ? s_corr[gg] : 0.f;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[gg][e] *= corr;
    }
    // acc += P V
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
      const int r = (i * kDecWarps + warp) * RPW + slot;
      if (r < n) {
        float vf[8];
        vr[i].get(vf);
#pragma unroll
        for (int gg = 0; gg < MAXG; ++gg) {
          const float p = gg < G ? s_p[gg][r] : 0.f;
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[gg][e] = fmaf(p, vf[e], acc[gg][e]);
        }
      }
    }
    __syncthreads();  // s_p is rewritten by the next chunk
  }

  // Sum the row slots of each warp, then the warps, and write this split's partials.
#pragma unroll
  for (int off = LR; off < 32; off <<= 1)
#pragma unroll
    for (int gg = 0; gg < MAXG; ++gg)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[gg][e] += __shfl_xor_sync(0xffffffffu, acc[gg][e], off);
  if (slot == 0) {
#pragma unroll
    for (int gg = 0; gg < MAXG; ++gg)
      if (gg < G)
#pragma unroll
        for (int e = 0; e < 8; ++e) s_red[warp][gg][d0 + e] = acc[gg][e];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kDecWarps * 32) {
    const int gg = idx / D, d = idx % D;
    float t = 0.f;
#pragma unroll
    for (int w = 0; w < kDecWarps; ++w) t += s_red[w][gg][d];
    part_acc[((int64_t(b) * Hq + h0 + gg) * splits + split) * D + d] = t;
  }
  if (threadIdx.x < G) {
    float* ml = part_ml + ((int64_t(b) * Hq + h0 + threadIdx.x) * splits + split) * 2;
    ml[0] = s_m[threadIdx.x];
    ml[1] = s_l[threadIdx.x];
  }
}

// One block per (sequence, query head): merges the splits that hold keys of that sequence.
__global__ void decode_combine_kernel(const float* __restrict__ part_acc,
                                      const float* __restrict__ part_ml,
                                      const int* __restrict__ lengths, float* __restrict__ out,
                                      int Hq, int D, int split_len, int splits) {
  const int bh = blockIdx.x, b = bh / Hq;
  const int used = min(splits, (lengths[b] + split_len - 1) / split_len);
  const float* ml = part_ml + int64_t(bh) * splits * 2;
  float M = -INFINITY;
  for (int s = 0; s < used; ++s) M = fmaxf(M, ml[2 * s]);
  float L = 0.f;
  for (int s = 0; s < used; ++s) L += ml[2 * s + 1] * exp2f(ml[2 * s] - M);
  const float inv = 1.0f / L;
  const float* pa = part_acc + int64_t(bh) * splits * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float t = 0.f;
    for (int s = 0; s < used; ++s) t += pa[int64_t(s) * D + d] * exp2f(ml[2 * s] - M);
    out[int64_t(bh) * D + d] = t * inv;
  }
}

template <int D, class KV>
void launch_split_decode(const Tensor& q, const KV* k, const KV* v, const Tensor& lengths,
                         float scale, Tensor& out, int capacity, int Hkv) {
  const int B = int(q.dim(0)), Hq = int(q.dim(1));
  const int group = Hq / Hkv;
  const int max_g = group <= 4 ? 4 : kDecMaxG;
  const int head_chunks = (group + max_g - 1) / max_g;
  // Lengths live on the device, so the split is planned for the worst case (capacity): enough
  // blocks for about four per SM, each split a whole number of chunks.
  const int64_t per_split = int64_t(B) * Hkv * head_chunks;
  const int64_t want = 4LL * sm_count();
  int64_t splits = std::max<int64_t>(1, (want + per_split - 1) / per_split);
  splits = std::min<int64_t>(splits, (capacity + kDecChunk - 1) / kDecChunk);
  int64_t split_len = (capacity + splits - 1) / splits;
  split_len = (split_len + kDecChunk - 1) / kDecChunk * kDecChunk;
  splits = (capacity + split_len - 1) / split_len;
  const size_t acc_floats = size_t(B) * Hq * splits * D;
  float* scratch = attention_decode_scratch(acc_floats + size_t(B) * Hq * splits * 2);
  const dim3 grid(unsigned(splits), unsigned(Hkv * head_chunks), unsigned(B));
  auto kernel = max_g == 4 ? decode_split_kernel<D, 4, KV> : decode_split_kernel<D, kDecMaxG, KV>;
  kernel<<<grid, kDecWarps * 32>>>(q.f32(), k, v, lengths.data<int32_t>(), scale * kLog2e, scratch,
                                   scratch + acc_floats, capacity, Hq, Hkv, head_chunks,
                                   int(split_len), int(splits));
  check_launch("attention_decode");
  decode_combine_kernel<<<unsigned(B * Hq), std::min(D, 128)>>>(
      scratch, scratch + acc_floats, lengths.data<int32_t>(), out.f32(), Hq, D, int(split_len),
      int(splits));
}

}  // namespace

void attention_decode_split(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            const Tensor& lengths, float scale, Tensor& out) {
  const int64_t Dh = q.dim(2);
  const int64_t capacity = k_cache.dim(1), Hkv = k_cache.dim(2);
  const bool bf16 = k_cache.dtype() == DType::BF16;
#define MAMBALM_DEC_LAUNCH(D)                                                                    \
  do {                                                                                           \
    if (bf16)                                                                                    \
      launch_split_decode<D, uint16_t>(q, k_cache.data<uint16_t>(), v_cache.data<uint16_t>(),    \
                                       lengths, scale, out, int(capacity), int(Hkv));            \
    else                                                                                         \
      launch_split_decode<D, float>(q, k_cache.f32(), v_cache.f32(), lengths, scale, out,        \
                                    int(capacity), int(Hkv));                                    \
  } while (0)
  if (Dh == 64) MAMBALM_DEC_LAUNCH(64);
  else if (Dh == 128) MAMBALM_DEC_LAUNCH(128);
  else if (Dh == 256) MAMBALM_DEC_LAUNCH(256);
  else fail("op attention_decode (cuda)",
            "split kernel: head dim " + std::to_string(Dh) + ", not 64, 128 or 256");
#undef MAMBALM_DEC_LAUNCH
}

}  // namespace mambalm::ops::cuda
