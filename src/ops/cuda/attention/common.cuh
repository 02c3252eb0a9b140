// What the attention kernels of this folder share: element loads from F32 or BF16 caches, the
// raw 8-element cache-row load of the decode kernels, the masked online-softmax step of the two
// flash kernels (causal, and with document ids), the document ranges the kernels skip tiles by,
// the softmax-statistics epilogue of the backward's first pass, and the launchers each kernel
// file exports to attention.cu (which picks one).
//
// Shapes (see ops.h): prefill q [B, T, Hq, D] fp32, k and v [B, S, Hkv, D] (S >= T, query row i
// at key position S - T + i), out like q; decode q [B, Hq, D], caches [B, capacity, Hkv, D],
// lengths [B] int32 on the device, out like q. Hq is a multiple of Hkv (GQA). Document ids
// seq_idx I32 [B, S]: the query at position p sees key j iff j <= p and seq[j] == seq[p].
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/ptx.cuh"

namespace mambalm::ops::cuda {

constexpr float kLog2e = 1.4426950408889634f;

// One cache element as fp32: F32 as is, BF16 (raw uint16_t) widened exactly.
__device__ __forceinline__ float load_elem(const float* p) { return *p; }
__device__ __forceinline__ float load_elem(const uint16_t* p) {
  return __uint_as_float(uint32_t(*p) << 16);
}

// 8 consecutive elements of a cache row, loaded raw (one 16-byte load for bf16, two for f32)
// so that all rows of a chunk can be in flight before the first is used.
template <class KV>
struct Raw8;
template <>
struct Raw8<uint16_t> {
  uint4 w;
  __device__ __forceinline__ void load(const uint16_t* p) {
    w = __ldg(reinterpret_cast<const uint4*>(p));
  }
  __device__ __forceinline__ void zero() { w = make_uint4(0u, 0u, 0u, 0u); }
  __device__ __forceinline__ void get(float (&x)[8]) const {
    const uint32_t u[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      x[2 * i] = __uint_as_float(u[i] << 16);
      x[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
  }
};
template <>
struct Raw8<float> {
  float4 a, b;
  __device__ __forceinline__ void load(const float* p) {
    a = __ldg(reinterpret_cast<const float4*>(p));
    b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  }
  __device__ __forceinline__ void zero() { a = b = make_float4(0.f, 0.f, 0.f, 0.f); }
  __device__ __forceinline__ void get(float (&x)[8]) const {
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
  }
};

// ---- documents ---------------------------------------------------------------------------
// Document ids are compared per (key, query) pair, exactly as the CPU does; on top of that the
// kernels skip whole tiles by the range of ids each tile holds. A pre-pass (doc_ranges,
// attention.cu) writes, per sequence, the [min, max] id of every 64-key tile of [0, S) and of
// every 64-row query tile of [0, T) (rows at positions S - T + row). A key tile and a query
// tile whose ranges are disjoint share no document: the pair is skipped. When both ranges are
// the same single id no pair is masked by documents and the per-element test is left out.
constexpr int kDocTile = 64;

struct DocRange {
  int lo, hi;
};
__device__ __forceinline__ DocRange doc_range_load(const int2* r, int t) {
  const int2 v = __ldg(r + t);
  return {v.x, v.y};
}
// Union of the ranges of tiles [t0, t1) (t1 > t0).
__device__ __forceinline__ DocRange doc_range_span(const int2* r, int t0, int t1) {
  DocRange u = doc_range_load(r, t0);
  for (int t = t0 + 1; t < t1; ++t) {
    const DocRange x = doc_range_load(r, t);
    u.lo = min(u.lo, x.lo);
    u.hi = max(u.hi, x.hi);
  }
  return u;
}
__device__ __forceinline__ bool doc_disjoint(DocRange a, DocRange b) {
  return a.hi < b.lo || b.hi < a.lo;
}
__device__ __forceinline__ bool doc_uniform(DocRange a, DocRange b) {
  return a.lo == a.hi && b.lo == b.hi && a.lo == b.lo;
}

// The flash kernels' step between S = Q K^T and O += P V, for one 16-row query tile of a warp
// and one tile of BN keys starting at key n0. Fragments are in the mma.sync C layout (g =
// lane / 4, tq = lane % 4): s[nt][e] is the raw score of tile row g + 8 (e >> 1) and key
// n0 + 8 nt + 2 tq + (e & 1); o[dt][e] the output accumulator of the same row at head dim
// 8 dt + 2 tq + (e & 1); m_run[half], l_run[half] the running max and sum of row g + 8 half.
// qpos0 is the key position of the tile's first query row. Masks the keys after each row's
// position, updates the running statistics, rescales o, and leaves the unnormalised
// probabilities in s (packed next into the A fragments of P V).
// DOC: kdoc (shared memory, the BN ids of this key tile; null when the tile needs no document
// test) and qdoc[half] (the id of row g + 8 half) mask the keys of other documents too. A row
// may then see no key of a tile while its running max is still -inf, so the exponent's
// reference is taken as 0 there (every p is 0 and the correction multiplies zeros); without
// documents every row sees key 0 in its first tile and that guard is left out.
template <int BN, int D, bool DOC = false>
__device__ __forceinline__ void flash_masked_softmax(float (&s)[BN / 8][4], float (&o)[D / 8][4],
                                                     float (&m_run)[2], float (&l_run)[2], int n0,
                                                     int qpos0, int g, int tq, float scale_log2,
                                                     const int* kdoc = nullptr,
                                                     const int (&qdoc)[2] = {0, 0}) {
  // Causal mask, only on tiles that reach past this 16-row tile's first query position.
  if (n0 + BN - 1 > qpos0) {
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = n0 + nt * 8 + 2 * tq + (e & 1);
        const int pos = qpos0 + g + 8 * (e >> 1);
        if (col > pos) s[nt][e] = -INFINITY;
      }
  }
  if constexpr (DOC) {
    if (kdoc) {
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        const int2 kd = *reinterpret_cast<const int2*>(kdoc + nt * 8 + 2 * tq);
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if ((e & 1 ? kd.y : kd.x) != qdoc[e >> 1]) s[nt][e] = -INFINITY;
      }
    }
  }
  // Online softmax (raw-score units for the max; the scale folded into the exp2 argument).
  // Without documents every row sees key 0 in tile 0, so m_run is finite from the first tile on.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float mx = m_run[half];
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mref = (DOC && mx == -INFINITY) ? 0.f : mx;
    const float corr = fast_exp2((m_run[half] - mref) * scale_log2);
    m_run[half] = mx;
    const float mscaled = mref * scale_log2;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
      const float p0 = fast_exp2(fmaf(s[nt][2 * half], scale_log2, -mscaled));
      const float p1 = fast_exp2(fmaf(s[nt][2 * half + 1], scale_log2, -mscaled));
      s[nt][2 * half] = p0;
      s[nt][2 * half + 1] = p1;
      sum += p0 + p1;
    }
    l_run[half] = l_run[half] * corr + sum;  // per-thread partial; quad-summed at the end
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][2 * half] *= corr;
      o[dt][2 * half + 1] *= corr;
    }
  }
}

// ---- the backward's first pass: softmax statistics from a flash forward -------------------
// The backward (backward.cu) needs, per query row, lse2 = max * scale log2(e) + log2(sum) (so
// that P = exp2(s scale log2(e) - lse2)) and D = dO . O; nothing is saved by the forward, so
// a flash forward kernel runs again in "stats" mode: instead of O it writes these two rows
// terms, plus bf16 copies of q and dout in the layout [B, Hq, T, D] that the backward's tiles
// stream with cp.async (64 consecutive rows of one head are one contiguous 16 KB block).
struct FlashStats {
  const float* dout;  // [B, T, Hq, D] fp32
  float* lse2;        // [B, Hq, T]
  float* dsum;        // [B, Hq, T]
  uint16_t* q16;      // [B, Hq, T, D] bf16
  uint16_t* do16;     // [B, Hq, T, D] bf16
};

// Epilogue of one 16-row tile in stats mode: o, m_run, l_run as in flash_masked_softmax after
// the last key tile; r0 is the tile's first row (this thread's rows r0 + g, r0 + g + 8).
template <int D>
__device__ __forceinline__ void flash_stats_epilogue(const FlashStats& st, const float (&o)[D / 8][4],
                                                     const float (&m_run)[2], const float (&l_run)[2],
                                                     int b, int h, int r0, int T, int Hq, int g,
                                                     int tq, float scale_log2) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float l = l_run[half];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = 1.0f / l;
    const int r = r0 + g + 8 * half;
    // Rows past T (the last tile's padding) read row T - 1 and store nothing: the arithmetic
    // stays outside any branch.
    const int rc = min(r, T - 1);
    const float* gr = st.dout + ((int64_t(b) * T + rc) * Hq + h) * D + 2 * tq;
    uint16_t* g16 = st.do16 + ((int64_t(b) * Hq + h) * T + rc) * D + 2 * tq;
    float d = 0.f;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const float2 x = *reinterpret_cast<const float2*>(gr + dt * 8);
      d = fmaf(x.x, o[dt][2 * half] * inv, d);
      d = fmaf(x.y, o[dt][2 * half + 1] * inv, d);
      if (r < T) *reinterpret_cast<uint32_t*>(g16 + dt * 8) = pack_bf16(x.x, x.y);
    }
    d += __shfl_xor_sync(0xffffffffu, d, 1);
    d += __shfl_xor_sync(0xffffffffu, d, 2);
    if (r < T && tq == 0) {
      const int64_t row = (int64_t(b) * Hq + h) * T + r;
      st.lse2[row] = m_run[half] * scale_log2 + log2f(l);
      st.dsum[row] = d;
    }
  }
}

// ---- launchers (host), one file each; attention.cu chooses among them ----------------------
// Each queues its kernel(s) on the calling thread's default stream; the caller runs
// check_launch afterwards. `docs` (null without documents) is the document view every
// prefill and backward kernel takes:
struct DocView {
  const int* seq;       // seq_idx [B, S]
  const int2* krange;   // [B, ceil(S / 64)] id range of each 64-key tile
  const int2* qrange;   // [B, ceil(T / 64)] id range of each 64-row query tile
};

// rows.cu: one warp per query row, F32 or BF16 K/V, head dim <= 256 (throws above). lse2
// (optional, [B, Hq, T]) receives each row's base-2 softmax statistic (ops::attention).
void attention_rows(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                    float scale, Tensor& out, float* lse2 = nullptr);
void attention_decode_rows(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const Tensor& lengths, float scale, Tensor& out);

// flash_mma.cu: BF16 K/V, head dim 64 or 128, 16-byte-aligned data; rows_per_warp 16 or 32.
// With `stats` (rows_per_warp 32 only) it writes the FlashStats terms instead of out; without,
// out and (when lse2 is not null) each row's lse2 as the stats mode computes it.
void attention_flash_mma(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                         float scale, Tensor* out, int rows_per_warp,
                         const FlashStats* stats = nullptr, float* lse2 = nullptr);

// flash_wgmma.cu: the same shapes on sm_90a (traps on devices whose code lacks sm_90a).
void attention_flash_wgmma(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                           float scale, Tensor* out, const FlashStats* stats = nullptr,
                           float* lse2 = nullptr);

// decode_split.cu: head dim 64, 128 or 256, F32 or BF16 caches, 16-byte-aligned data,
// capacity > 0.
void attention_decode_split(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            const Tensor& lengths, float scale, Tensor& out);

// decode_warp.cu: head dim 64 or 128, otherwise as decode_split. eight_steps selects 8 load
// steps per warp tile for groups of 3-4 query heads at D 128 with a BF16 cache (ignored for
// other shapes).
void attention_decode_warp(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const Tensor& lengths, float scale, Tensor& out, bool eight_steps);

// backward_rows.cu: the fp32 backward (F32 or BF16 K/V, any head dim <= 256). Scratch: lse and
// D, [B, Hq, T] each.
void attention_backward_rows(const Tensor& q, const Tensor& k, const Tensor& v,
                             const DocView* docs, float scale, const Tensor& dout, Tensor& dq,
                             Tensor& dk, Tensor& dv, float* lse, float* dsum);

// backward.cu: the tensor-core backward (BF16 K/V, head dim 64 or 128, 16-byte-aligned data)
// after the stats pass: st holds lse2, dsum, q16, do16; sem is 1 + B * Hq * ceil(T / 64) ints
// of scratch (zeroed here); dq_accum is attention_backward_accum_floats(...) floats of scratch
// (none, and null, off sm_90).
void attention_backward_flash(const Tensor& q, const Tensor& k, const Tensor& v,
                              const DocView* docs, float scale, const FlashStats& st, Tensor& dq,
                              float* dq_accum, Tensor& dk, Tensor& dv, int* sem);
size_t attention_backward_accum_floats(int64_t B, int64_t T, int64_t Hq, int64_t Dh);
// The stats pass's other terms when the forward's out and lse2 are at hand (st.lse2 already
// points at them): dsum = dO . O per row, and the bf16 copies of q and dout (attention.cu).
void attention_backward_prep(const Tensor& q, const Tensor& dout, const Tensor& out, const FlashStats& st);

// cudnn_attention.cu: the same ops through cuDNN's fused flash attention, for BF16 K/V, head dim
// 64 / 128, q_len == k_len, no documents (the caller checks the shape). Each returns false,
// with the reason in *why and nothing written that the caller relies on, when cuDNN cannot run
// it (library absent, plan refused, execution failed); the caller then runs our kernels.
// lse2 (optional) as in ops::attention; out and lse2 of the backward: the forward's, or null.
bool attention_cudnn(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out, float* lse2,
                     std::string* why);
bool attention_backward_cudnn(const Tensor& q, const Tensor& k, const Tensor& v, float scale, const Tensor& dout,
                              Tensor& dq, Tensor& dk, Tensor& dv, const Tensor* out, const Tensor* lse2,
                              std::string* why);
constexpr int kBwdBM = 64;  // queries per step of the tensor-core backward (sem count)

// attention.cu: the decode kernels' partials scratch (one buffer for both decode paths), at
// least `floats` long.
float* attention_decode_scratch(size_t floats);

}  // namespace mambalm::ops::cuda
