// What the attention kernels of this folder share: element loads from F32 or BF16 caches, the
// raw 8-element cache-row load of the decode kernels, the masked online-softmax step of the two
// flash kernels, and the launchers each kernel file exports to attention.cu (which picks one).
//
// Shapes (see ops.h): prefill q [B, T, Hq, D] fp32, k and v [B, S, Hkv, D] (S >= T, query row i
// at key position S - T + i), out like q; decode q [B, Hq, D], caches [B, capacity, Hkv, D],
// lengths [B] int32 on the device, out like q. Hq is a multiple of Hkv (GQA).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

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

// The flash kernels' step between S = Q K^T and O += P V, for one 16-row query tile of a warp
// and one tile of BN keys starting at key n0. Fragments are in the mma.sync C layout (g =
// lane / 4, tq = lane % 4): s[nt][e] is the raw score of tile row g + 8 (e >> 1) and key
// n0 + 8 nt + 2 tq + (e & 1); o[dt][e] the output accumulator of the same row at head dim
// 8 dt + 2 tq + (e & 1); m_run[half], l_run[half] the running max and sum of row g + 8 half.
// qpos0 is the key position of the tile's first query row. Masks the keys after each row's
// position, updates the running statistics, rescales o, and leaves the unnormalised
// probabilities in s (packed next into the A fragments of P V).
template <int BN, int D>
__device__ __forceinline__ void flash_masked_softmax(float (&s)[BN / 8][4], float (&o)[D / 8][4],
                                                     float (&m_run)[2], float (&l_run)[2], int n0,
                                                     int qpos0, int g, int tq, float scale_log2) {
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
  // Online softmax (raw-score units for the max; the scale folded into the exp2 argument).
  // Every row sees key 0 in tile 0, so m_run is finite from the first tile on.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float mx = m_run[half];
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float corr = fast_exp2((m_run[half] - mx) * scale_log2);
    m_run[half] = mx;
    const float mscaled = mx * scale_log2;
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

// ---- launchers (host), one file each; attention.cu chooses among them ----------------------
// Each queues its kernel(s) on the calling thread's default stream; the caller runs
// check_launch afterwards.

// rows.cu: one warp per query row, F32 or BF16 K/V, head dim <= 256 (throws above).
void attention_rows(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out);
void attention_decode_rows(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const Tensor& lengths, float scale, Tensor& out);

// flash_mma.cu: BF16 K/V, head dim 64 or 128, 16-byte-aligned data; rows_per_warp 16 or 32.
void attention_flash_mma(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                         Tensor& out, int rows_per_warp);

// flash_wgmma.cu: the same shapes on sm_90a (traps on devices whose code lacks sm_90a).
void attention_flash_wgmma(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                           Tensor& out);

// decode_split.cu: head dim 64, 128 or 256, F32 or BF16 caches, 16-byte-aligned data,
// capacity > 0.
void attention_decode_split(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                            const Tensor& lengths, float scale, Tensor& out);

// decode_warp.cu: head dim 64 or 128, otherwise as decode_split. eight_steps selects 8 load
// steps per warp tile for groups of 3-4 query heads at D 128 with a BF16 cache (ignored for
// other shapes).
void attention_decode_warp(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const Tensor& lengths, float scale, Tensor& out, bool eight_steps);

// attention.cu: the decode kernels' partials scratch (one buffer for both decode paths), at
// least `floats` long.
float* attention_decode_scratch(size_t floats);

}  // namespace mambalm::ops::cuda
