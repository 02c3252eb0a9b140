// Causal GQA attention on CUDA (queries may follow a KV-cache prefix), and one-query decode.
//
// Five paths:
//  - attend_rows_kernel: one warp per query row, fp32 throughout, any head dim <= 256, F32 or
//    BF16 K/V. It is the reference-grade path (F32 K/V always take it) and the fallback for the
//    shapes the fast kernels do not cover.
//  - flash_prefill_kernel: BF16 K/V, head dim 64 or 128. Flash-attention-2 style: a block owns
//    128 queries of one head (32 per warp; 64 and 16 with MT=1), streams 64-key K/V tiles
//    through shared memory with cp.async (two stages), computes QK^T and PV with bf16 mma.sync.m16n8k16 (fp32 accumulate),
//    online softmax in fp32 with exp2 and the scale folded into one FMA, causal tile skipping.
//  - flash_wgmma_kernel: the same algorithm for Hopper (sm_90a, the default on 9.x): 128 queries
//    per block, QK^T on wgmma from 128-byte-swizzled shared memory, PV on mma.sync.
//  - decode_warp_kernel (the default decode for head dims 64 and 128): every warp streams its
//    own tiles of keys for all query heads of a KV head, no block barrier in the loop; the
//    last block of a (sequence, KV head) to finish merges the splits (no second launch).
//  - decode_split_kernel + decode_combine_kernel: flash-decoding. A block owns (sequence, KV
//    head, one split of the cache length) and all query heads of that KV head (up to 8), so a
//    K/V row is read once per sequence; partial (max, sum, unnormalised acc) per split go to a
//    scratch buffer that the combine kernel merges. Head dim 256, and MAMBALM_ATTN_DECODE=split.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float load_elem(const float* p) { return *p; }
__device__ __forceinline__ float load_elem(const uint16_t* p) {
  return __uint_as_float(uint32_t(*p) << 16);
}

// ------------------------------------------------------------------------------------------
// Reference-grade path: one warp per query row.

constexpr int kAttnWarps = 4;

// Online softmax over `visible` keys for one query row; lane owns head dims d = lane + 32 i.
template <int DK, class KV>
__device__ __forceinline__ void attend_row(const float* __restrict__ qr, const KV* __restrict__ kb,
                                           const KV* __restrict__ vb, int64_t kv_ld, int visible,
                                           float scale, float* __restrict__ orow, int Dh) {
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
}

// One warp per (b, t, query head); consecutive warps of a block are consecutive heads, which
// share a KV head under GQA, so their K/V reads hit the same cache lines.
template <int DK, class KV>
__global__ void __launch_bounds__(kAttnWarps * 32)
attend_rows_kernel(const float* __restrict__ q, const KV* __restrict__ k, const KV* __restrict__ v,
                   float scale, float* __restrict__ out, int B, int T, int S, int Hq, int Hkv,
                   int Dh) {
  const int64_t wid = int64_t(blockIdx.x) * kAttnWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(B) * T * Hq) return;
  const int h = int(wid % Hq);
  const int t = int((wid / Hq) % T);
  const int b = int(wid / (int64_t(Hq) * T));
  const int kvh = h / (Hq / Hkv);
  const int64_t base = (int64_t(b) * S * Hkv + kvh) * Dh;
  attend_row<DK, KV>(q + wid * Dh, k + base, v + base, int64_t(Hkv) * Dh, S - T + t + 1, scale,
                     out + wid * Dh, Dh);
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

// ------------------------------------------------------------------------------------------
// Tensor-core helpers (sm_80+ instructions, all available on sm_90).

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; src_bytes 0 fills the 16 bytes with zeros.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                            uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t& r0, uint32_t& r1,
                                                  uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// c += a (16x16 bf16, row) * b (16x8 bf16, col), fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats to a bf16 pair (round to nearest even), the first in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ------------------------------------------------------------------------------------------
// Flash prefill, BF16 K/V.

constexpr int kFlashWarps = 4;
constexpr int kFlashBN = 64;  // keys per tile

// MT = 16-row query tiles per warp. MT 1: 64 queries per block, Q fragments kept in registers.
// MT 2: 128 queries per block, Q staged in shared memory as bf16 and re-read per k-step; each
// K/V fragment then feeds two MMAs, which halves the shared-memory traffic per MMA of PV.
template <int D, int MT>
constexpr int flash_smem_bytes() {
  return (2 /*K,V*/ * 2 /*stages*/ * kFlashBN + (MT > 1 ? 16 * MT * kFlashWarps : 0)) * (D + 8) * 2;
}

// Grid: x = b * Hq + h, y = query tile (counted from the last: the causal tiles with the most
// keys start first, which evens out the tail of the launch).
template <int D, int MT>
__global__ void __launch_bounds__(kFlashWarps * 32, 2)
flash_prefill_kernel(const float* __restrict__ q, const uint16_t* __restrict__ k,
                     const uint16_t* __restrict__ v, float scale_log2, float* __restrict__ out,
                     int T, int S, int Hq, int Hkv) {
  constexpr int BM = 16 * MT * kFlashWarps;
  constexpr int LDS = D + 8;  // shared row stride in elements: the 16-byte pad puts the 8 rows
                              // of one ldmatrix 8x8 matrix on distinct banks
  constexpr int kTile = kFlashBN * LDS;
  constexpr bool kQInSmem = MT > 1;
  extern __shared__ __align__(16) uint16_t flash_smem[];
  uint16_t* ks = flash_smem;              // [2][BN][LDS]
  uint16_t* vs = flash_smem + 2 * kTile;  // [2][BN][LDS]
  uint16_t* qs = flash_smem + 4 * kTile;  // [BM][LDS] when kQInSmem

  const int h = blockIdx.x % Hq, b = blockIdx.x / Hq;
  const int m_block = gridDim.y - 1 - blockIdx.y;
  const int kvh = h / (Hq / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int m0 = m_block * BM;
  const int row0 = m0 + warp * 16 * MT;  // this warp's first query row
  const int offset = S - T;              // query row i sits at key position offset + i
  const int64_t q_ld = int64_t(Hq) * D;
  const float* qb = q + (int64_t(b) * T * Hq + h) * D;

  // Q as bf16: A-fragments in registers (MT 1) or a shared tile (MT > 1).
  uint32_t qf[kQInSmem ? 1 : D / 16][4];
  if constexpr (!kQInSmem) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = row0 + g + 8 * half;
      const float* qr = qb + int64_t(r) * q_ld + 2 * tq;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        float2 x0 = make_float2(0.f, 0.f), x1 = x0;
        if (r < T) {
          x0 = *reinterpret_cast<const float2*>(qr + kk * 16);
          x1 = *reinterpret_cast<const float2*>(qr + kk * 16 + 8);
        }
        qf[kk][half] = pack_bf16(x0.x, x0.y);
        qf[kk][2 + half] = pack_bf16(x1.x, x1.y);
      }
    }
  } else {
    for (int c = threadIdx.x; c < BM * (D / 4); c += kFlashWarps * 32) {
      const int r = c / (D / 4), cc = (c % (D / 4)) * 4;
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
      if (m0 + r < T) x = *reinterpret_cast<const float4*>(qb + int64_t(m0 + r) * q_ld + cc);
      *reinterpret_cast<uint2*>(qs + r * LDS + cc) = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
    }
    // made visible by the first barrier of the tile loop
  }

  const int64_t kv_ld = int64_t(Hkv) * D;
  const uint16_t* kb = k + (int64_t(b) * S * Hkv + kvh) * D;
  const uint16_t* vb = v + (int64_t(b) * S * Hkv + kvh) * D;
  const int last_key = min(S - 1, offset + m0 + BM - 1);
  const int n_tiles = last_key / kFlashBN + 1;

  auto load_tile = [&](int tile, int stage) {
    constexpr int kChunks = D / 8;  // 16-byte chunks per row
    const int n0 = tile * kFlashBN;
    uint16_t* kd = ks + stage * kTile;
    uint16_t* vd = vs + stage * kTile;
#pragma unroll
    for (int c = threadIdx.x; c < kFlashBN * kChunks; c += kFlashWarps * 32) {
      const int r = c / kChunks, cc = c % kChunks;
      const int key = n0 + r;
      const int bytes = key < S ? 16 : 0;  // rows past S read as zeros (never NaN garbage)
      const int64_t src = int64_t(min(key, S - 1)) * kv_ld + cc * 8;
      cp_async16(smem_u32(kd + r * LDS + cc * 8), kb + src, bytes);
      cp_async16(smem_u32(vd + r * LDS + cc * 8), vb + src, bytes);
    }
  };

  float o[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  float m_run[MT][2], l_run[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    m_run[mt][0] = m_run[mt][1] = -INFINITY;
    l_run[mt][0] = l_run[mt][1] = 0.f;
  }

  load_tile(0, 0);
  cp_async_commit();
  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) {
      load_tile(j + 1, (j + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t* kt = ks + (j & 1) * kTile;
    const uint16_t* vt = vs + (j & 1) * kTile;
    const int n0 = j * kFlashBN;

    // S = Q K^T for this warp's 16 MT rows x 64 keys.
    float s[MT][kFlashBN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int i = 0; i < kFlashBN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        if constexpr (kQInSmem) {
          const int r = warp * 16 * MT + mt * 16 + (lane & 15);
          ldmatrix_x4(smem_u32(qs + r * LDS + kk * 16 + (lane >> 4) * 8), a[mt][0], a[mt][1],
                      a[mt][2], a[mt][3]);
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e) a[mt][e] = qf[kQInSmem ? 0 : kk][e];
        }
      }
#pragma unroll
      for (int np = 0; np < kFlashBN / 16; ++np) {
        uint32_t b0, b1, b2, b3;
        const int r = np * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int c = kk * 16 + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(smem_u32(kt + r * LDS + c), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_bf16(s[mt][2 * np], a[mt], b0, b1);
          mma_bf16(s[mt][2 * np + 1], a[mt], b2, b3);
        }
      }
    }

#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const int rbase = row0 + mt * 16;
      // Causal mask, only on tiles that reach past this 16-row tile's first query position.
      if (n0 + kFlashBN - 1 > offset + rbase) {
#pragma unroll
        for (int nt = 0; nt < kFlashBN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = n0 + nt * 8 + 2 * tq + (e & 1);
            const int pos = offset + rbase + g + 8 * (e >> 1);
            if (col > pos) s[mt][nt][e] = -INFINITY;
          }
      }
      // Online softmax (raw-score units for the max; the scale folded into the exp2 argument).
      // Every row sees key 0 in tile 0, so m_run is finite from the first tile on.
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float mx = m_run[mt][half];
#pragma unroll
        for (int nt = 0; nt < kFlashBN / 8; ++nt)
          mx = fmaxf(mx, fmaxf(s[mt][nt][2 * half], s[mt][nt][2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float corr = fast_exp2((m_run[mt][half] - mx) * scale_log2);
        m_run[mt][half] = mx;
        const float mscaled = mx * scale_log2;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kFlashBN / 8; ++nt) {
          const float p0 = fast_exp2(fmaf(s[mt][nt][2 * half], scale_log2, -mscaled));
          const float p1 = fast_exp2(fmaf(s[mt][nt][2 * half + 1], scale_log2, -mscaled));
          s[mt][nt][2 * half] = p0;
          s[mt][nt][2 * half + 1] = p1;
          sum += p0 + p1;
        }
        l_run[mt][half] = l_run[mt][half] * corr + sum;  // per-thread partial; quad-summed at the end
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o[mt][dt][2 * half] *= corr;
          o[mt][dt][2 * half + 1] *= corr;
        }
      }
    }

    // O += P V: the S accumulators of two adjacent key tiles form one A fragment.
#pragma unroll
    for (int kk = 0; kk < kFlashBN / 16; ++kk) {
      uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        a[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b0, b1, b2, b3;
        const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int c = dp * 16 + (lane >> 4) * 8;
        ldmatrix_x4_trans(smem_u32(vt + r * LDS + c), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma_bf16(o[mt][2 * dp], a[mt], b0, b1);
          mma_bf16(o[mt][2 * dp + 1], a[mt], b2, b3);
        }
      }
    }
    __syncthreads();  // the next iteration's copy overwrites this stage
  }

  // Epilogue: normalise and store fp32.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float l = l_run[mt][half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = 1.0f / l;
      const int r = row0 + mt * 16 + g + 8 * half;
      if (r < T) {
        float* orow = out + ((int64_t(b) * T + r) * Hq + h) * D + 2 * tq;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt)
          *reinterpret_cast<float2*>(orow + dt * 8) =
              make_float2(o[mt][dt][2 * half] * inv, o[mt][dt][2 * half + 1] * inv);
      }
    }
}

template <int D, int MT>
void launch_flash(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out) {
  const int B = int(q.dim(0)), T = int(q.dim(1)), Hq = int(q.dim(2));
  const int S = int(k.dim(1)), Hkv = int(k.dim(2));
  constexpr int BM = 16 * MT * kFlashWarps;
  constexpr int smem = flash_smem_bytes<D, MT>();
  static bool configured = false;  // the attribute is per kernel; set once per process
  if (!configured) {
    check_cuda(cudaFuncSetAttribute(flash_prefill_kernel<D, MT>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "attention", "shared memory size");
    configured = true;
  }
  const dim3 grid(unsigned(B * Hq), unsigned((T + BM - 1) / BM));
  flash_prefill_kernel<D, MT><<<grid, kFlashWarps * 32, smem>>>(
      q.f32(), k.data<uint16_t>(), v.data<uint16_t>(), scale * kLog2e, out.f32(), T, S, Hq, Hkv);
}

// ---- Hopper variant: QK^T on wgmma (sm_90a), PV on mma.sync --------------------------------
// One warpgroup per block, 128 queries (two m64 tiles), 64-key tiles. Q and K live in shared
// memory in the 128-byte-swizzled K-major layout that wgmma descriptors read (rows of 128 B,
// 16-byte chunk c of row r stored at chunk c ^ (r % 8), atoms of 8 rows = 1024 B, 1024-aligned);
// V stays padded row-major for ldmatrix.trans. Warp w owns rows 64 mt + 16 w + {g, g+8}: the
// wgmma accumulator layout is the mma.sync C layout per 8 columns, so S turns into the PV
// A-fragments exactly as in flash_prefill_kernel.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define MAMBALM_HAVE_WGMMA 1
#endif

__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  uint64_t d = uint64_t((addr & 0x3FFFFu) >> 4);  // start address
  d |= uint64_t(1) << 16;                          // leading offset: unused for swizzled K-major
  d |= uint64_t(1024 >> 4) << 32;                  // stride offset: 8 rows x 128 B
  d |= uint64_t(1) << 62;                          // 128-byte swizzle
  return d;
}

__device__ __forceinline__ uint32_t sw128_offset(int row, int chunk16) {
  return uint32_t(row * 128 + ((chunk16 ^ (row & 7)) << 4));
}

// d (64x64 fp32, this thread's 32) += A (64x16, smem) * B (16x64, smem, K-major).
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[8][4], uint64_t da, uint64_t db) {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile(
      "{\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
      "%32, %33, 1, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(da), "l"(db));
#endif
}
__device__ __forceinline__ void wgmma_fence() {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit_wait() {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void fence_proxy_async() {
#ifdef MAMBALM_HAVE_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

constexpr int kWgBM = 128, kWgBN = 64;

template <int D>
constexpr int wg_smem_bytes() {
  return 1024 /*alignment slack*/ + kWgBM * D * 2 /*Q*/ + 2 * kWgBN * D * 2 /*K*/ +
         2 * kWgBN * (D + 8) * 2 /*V*/;
}

template <int D>
__global__ void __launch_bounds__(128, 2)
flash_wgmma_kernel(const float* __restrict__ q, const uint16_t* __restrict__ k,
                   const uint16_t* __restrict__ v, float scale_log2, float* __restrict__ out,
                   int T, int S, int Hq, int Hkv) {
#if defined(__CUDA_ARCH__) && !defined(MAMBALM_HAVE_WGMMA)
  __trap();  // built without sm_90a: never give silent zeros (the host picks it on 9.x only)
#endif
  constexpr int LDV = D + 8;
  constexpr uint32_t kQBytes = kWgBM * D * 2, kKBytes = kWgBN * D * 2;
  extern __shared__ __align__(16) unsigned char wg_smem[];
  const uint32_t raw = smem_u32(wg_smem);
  const uint32_t qs = (raw + 1023u) & ~1023u;    // Q [atoms][128 rows][128 B]
  const uint32_t ks0 = qs + kQBytes;             // K [2][atoms][64 rows][128 B]
  uint16_t* vs = reinterpret_cast<uint16_t*>(wg_smem + (ks0 + 2 * kKBytes - raw));  // [2][BN][LDV]
  constexpr int kVTile = kWgBN * LDV;

  const int h = blockIdx.x % Hq, b = blockIdx.x / Hq;
  const int m_block = gridDim.y - 1 - blockIdx.y;
  const int kvh = h / (Hq / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int m0 = m_block * kWgBM;
  const int offset = S - T;
  const int64_t q_ld = int64_t(Hq) * D;
  const float* qb = q + (int64_t(b) * T * Hq + h) * D;

  // Q to bf16, swizzled.
  for (int c = threadIdx.x; c < kWgBM * (D / 8); c += 128) {
    const int r = c / (D / 8), c8 = c % (D / 8);
    float4 x0 = make_float4(0.f, 0.f, 0.f, 0.f), x1 = x0;
    if (m0 + r < T) {
      const float* src = qb + int64_t(m0 + r) * q_ld + c8 * 8;
      x0 = *reinterpret_cast<const float4*>(src);
      x1 = *reinterpret_cast<const float4*>(src + 4);
    }
    const uint32_t dst = qs + (c8 / 8) * (kWgBM * 128) + sw128_offset(r, c8 % 8);
    asm volatile("st.shared.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"r"(dst),
                 "r"(pack_bf16(x0.x, x0.y)), "r"(pack_bf16(x0.z, x0.w)),
                 "r"(pack_bf16(x1.x, x1.y)), "r"(pack_bf16(x1.z, x1.w)));
  }
  fence_proxy_async();  // generic-proxy stores, read next by wgmma (after the loop's barrier)

  const int64_t kv_ld = int64_t(Hkv) * D;
  const uint16_t* kb = k + (int64_t(b) * S * Hkv + kvh) * D;
  const uint16_t* vb = v + (int64_t(b) * S * Hkv + kvh) * D;
  const int last_key = min(S - 1, offset + m0 + kWgBM - 1);
  const int n_tiles = last_key / kWgBN + 1;

  auto load_tile = [&](int tile, int stage) {
    const int n0 = tile * kWgBN;
    const uint32_t kd = ks0 + stage * kKBytes;
    uint16_t* vd = vs + stage * kVTile;
#pragma unroll
    for (int c = threadIdx.x; c < kWgBN * (D / 8); c += 128) {
      const int r = c / (D / 8), c8 = c % (D / 8);
      const int key = n0 + r;
      const int bytes = key < S ? 16 : 0;
      const int64_t src = int64_t(min(key, S - 1)) * kv_ld + c8 * 8;
      cp_async16(kd + (c8 / 8) * (kWgBN * 128) + sw128_offset(r, c8 % 8), kb + src, bytes);
      cp_async16(smem_u32(vd + r * LDV + c8 * 8), vb + src, bytes);
    }
  };

  float o[2][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
  float m_run[2][2], l_run[2][2];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    m_run[mt][0] = m_run[mt][1] = -INFINITY;
    l_run[mt][0] = l_run[mt][1] = 0.f;
  }

  load_tile(0, 0);
  cp_async_commit();
  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) {
      load_tile(j + 1, (j + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    fence_proxy_async();
    __syncthreads();
    const uint32_t kt = ks0 + (j & 1) * kKBytes;
    const uint16_t* vt = vs + (j & 1) * kVTile;
    const int n0 = j * kWgBN;

    float s[2][kWgBN / 8][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int i = 0; i < kWgBN / 8; ++i) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.f;
    wgmma_fence();
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t in_atom = (kk % 4) * 32;
        const uint64_t da = sw128_desc(qs + (kk / 4) * (kWgBM * 128) + mt * 64 * 128 + in_atom);
        const uint64_t db = sw128_desc(kt + (kk / 4) * (kWgBN * 128) + in_atom);
        wgmma_m64n64k16(s[mt], da, db);
      }
    wgmma_commit_wait();

#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      const int rbase = m0 + mt * 64 + warp * 16;
      if (n0 + kWgBN - 1 > offset + rbase) {
#pragma unroll
        for (int nt = 0; nt < kWgBN / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = n0 + nt * 8 + 2 * tq + (e & 1);
            const int pos = offset + rbase + g + 8 * (e >> 1);
            if (col > pos) s[mt][nt][e] = -INFINITY;
          }
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float mx = m_run[mt][half];
#pragma unroll
        for (int nt = 0; nt < kWgBN / 8; ++nt)
          mx = fmaxf(mx, fmaxf(s[mt][nt][2 * half], s[mt][nt][2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float corr = fast_exp2((m_run[mt][half] - mx) * scale_log2);
        m_run[mt][half] = mx;
        const float mscaled = mx * scale_log2;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kWgBN / 8; ++nt) {
          const float p0 = fast_exp2(fmaf(s[mt][nt][2 * half], scale_log2, -mscaled));
          const float p1 = fast_exp2(fmaf(s[mt][nt][2 * half + 1], scale_log2, -mscaled));
          s[mt][nt][2 * half] = p0;
          s[mt][nt][2 * half + 1] = p1;
          sum += p0 + p1;
        }
        l_run[mt][half] = l_run[mt][half] * corr + sum;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o[mt][dt][2 * half] *= corr;
          o[mt][dt][2 * half + 1] *= corr;
        }
      }
    }

#pragma unroll
    for (int kk = 0; kk < kWgBN / 16; ++kk) {
      uint32_t a[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        a[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b0, b1, b2, b3;
        const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int c = dp * 16 + (lane >> 4) * 8;
        ldmatrix_x4_trans(smem_u32(vt + r * LDV + c), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          mma_bf16(o[mt][2 * dp], a[mt], b0, b1);
          mma_bf16(o[mt][2 * dp + 1], a[mt], b2, b3);
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float l = l_run[mt][half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = 1.0f / l;
      const int r = m0 + mt * 64 + warp * 16 + g + 8 * half;
      if (r < T) {
        float* orow = out + ((int64_t(b) * T + r) * Hq + h) * D + 2 * tq;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt)
          *reinterpret_cast<float2*>(orow + dt * 8) =
              make_float2(o[mt][dt][2 * half] * inv, o[mt][dt][2 * half + 1] * inv);
      }
    }
}

template <int D>
void launch_wgmma(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out) {
  const int B = int(q.dim(0)), T = int(q.dim(1)), Hq = int(q.dim(2));
  const int S = int(k.dim(1)), Hkv = int(k.dim(2));
  constexpr int smem = wg_smem_bytes<D>();
  static bool configured = false;
  if (!configured) {
    check_cuda(cudaFuncSetAttribute(flash_wgmma_kernel<D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "attention", "shared memory size");
    configured = true;
  }
  const dim3 grid(unsigned(B * Hq), unsigned((T + kWgBM - 1) / kWgBM));
  flash_wgmma_kernel<D><<<grid, 128, smem>>>(q.f32(), k.data<uint16_t>(), v.data<uint16_t>(),
                                             scale * kLog2e, out.f32(), T, S, Hq, Hkv);
}

// Prefill kernel choice, measured on the H200 at B=2, L=4096, 32 heads of 128, causal
// (PyTorch SDPA flash in the same run: 299 TFLOP/s): 3 = flash_wgmma_kernel, 345 TFLOP/s, the
// default on compute capability 9.x; 2 = flash_prefill_kernel with 32 rows per warp, 314, the
// default elsewhere; 1 = 16 rows per warp, 256. MAMBALM_ATTN_FLASH_MT=1|2|3 overrides (all three
// pass the same conformance cases).
int flash_mt() {
  static const int hopper = [] {
    int dev = 0, major = 0;
    check_cuda(cudaGetDevice(&dev), "attention", "device");
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "attention",
               "compute capability");
    return major == 9 ? 1 : 0;
  }();
  const char* e = std::getenv("MAMBALM_ATTN_FLASH_MT");
  if (e && (e[0] == '1' || e[0] == '2' || e[0] == '3')) return e[0] - '0';
  return hopper ? 3 : 2;
}

// ------------------------------------------------------------------------------------------
// Split-KV decode.

constexpr int kDecWarps = 4;
constexpr int kDecMaxG = 8;    // query heads per block (more than 8 per KV head: several blocks);
                               // groups of <= 4 heads use a 4-head variant (fewer registers)
constexpr int kDecChunk = 128; // split lengths are multiples of this (any chunk size divides it)

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

// Decode scratch: allocated once and grown only when a larger size is first asked for. Decode
// steps are captured in CUDA graphs after a warm-up step, so in steady state this never
// allocates (and a capture never sees an allocation: the warm-up ran the same shape first).
float* decode_scratch(size_t floats) {
  static GrowOnlyBuffer buf;
  return buf.get<float>(floats, "attention_decode");
}


template <int D, class KV>
void launch_decode(const Tensor& q, const KV* k, const KV* v, const Tensor& lengths, float scale,
                   Tensor& out, int capacity, int Hkv) {
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
  float* scratch = decode_scratch(acc_floats + size_t(B) * Hq * splits * 2);
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

// ------------------------------------------------------------------------------------------
// Warp-streaming decode (the default; MAMBALM_ATTN_DECODE=split selects the kernels above).
//
// Why: the split kernel above walks a block's keys in 64-row chunks with three block barriers
// and a serial per-head softmax per chunk, so a block has one chunk in flight and spends much
// of its time between loads (1.2-2.2 TB/s on the H200). Here every warp streams its own tiles
// of keys with no block barrier inside the loop; the next tile's K loads issue right after the
// current K was used and its V loads right after the current V was used.
//
// Layout. A warp tile is TK = RPL * U keys of one (sequence, KV head): LR = D / 8 lanes hold 8
// elements each of one row (one 16-byte load for bf16), RPL = 32 / LR rows per load step, U
// steps. Lane (r = lane / LR, li = lane % LR) holds rows u * RPL + r, u < U, and serves all G
// query heads of the KV head, so each K/V byte is read once. Its V = U * G partial dot
// products are summed over the LR lanes of a row by a reduce-scatter: log2 LR shuffle levels,
// each halving the values a lane keeps (V - F shuffles in all, against V log2 LR for
// butterflies); lane li ends with F = V / LR full scores, those of index j = F * li + i
// (j = u * G + g). The online softmax keeps a running max per head that is uniform over the
// lanes holding that head (xor-max over the lane bits that select the key); probabilities and
// max corrections go through a small per-warp shared buffer (double-buffered, one __syncwarp
// per tile) to the P V update, which skips the accumulator rescale when no head's max moved.
//
// Splits: grid = (KV head * head chunk, split, sequence): the KV heads of one key range are
// neighbours in launch order, so blocks that run together read whole cache rows of all heads
// (2 KB at 8 x 128 bf16) rather than 256-byte pieces of distant rows. A block has kWdWarps
// warps; warp w takes tiles w, w + kWdWarps, ... of the block's split. The split count is
// planned from the capacity (lengths are on the device) so that the blocks fill the resident
// slots of the chip in as few waves as possible. Each block merges its warps through shared
// memory; with one active split it writes the output itself, else it writes (max, sum, acc)
// partials and the last block of its (sequence, KV head, chunk) to arrive (atomic counter,
// reset by that block) merges them, so there is no second launch.
constexpr int kWdWarps = 4;
constexpr int kWdMaxSplits = 128;

template <int D, int G, int U>
struct WdShape {
  static constexpr int LR = D / 8;
  static constexpr int LOG_LR = LR == 8 ? 3 : LR == 16 ? 4 : 5;
  static constexpr int RPL = 32 / LR;
  static constexpr int TK = RPL * U;
  static constexpr int V = U * G;
  static constexpr int F = V / LR;
  static constexpr int HL = F < G ? F : G;         // heads held per lane
  static constexpr int O0 = G / F > 1 ? G / F : 1; // lowest lane bit that changes the key
  static_assert(V >= LR && V % LR == 0 && (1 << LOG_LR) == LR, "tile shape");
};

// 4 blocks (16 warps) per SM where the registers allow it without spills (<= 128 per thread).
template <int D, int G, int U, class KV>
constexpr int wd_min_blocks() {
  return sizeof(KV) == 2 && G == 4 && D == 128 && U == 4 ? 4 : 1;
}

template <int D, int G, int U, class KV>
__global__ void __launch_bounds__(kWdWarps * 32, wd_min_blocks<D, G, U, KV>())
decode_warp_kernel(const float* __restrict__ q, const KV* __restrict__ kc,
                   const KV* __restrict__ vc, const int* __restrict__ lengths, float scale_log2,
                   float* __restrict__ part_acc, float* __restrict__ part_ml,
                   int* __restrict__ counters, float* __restrict__ out, int capacity, int Hq,
                   int Hkv, int head_chunks, int split_len, int splits) {
  using S = WdShape<D, G, U>;
  constexpr int LR = S::LR, RPL = S::RPL, TK = S::TK, V = S::V, F = S::F, HL = S::HL;
  constexpr int W = kWdWarps;
  constexpr unsigned kAll = 0xffffffffu;
  __shared__ __align__(16) float s_buf[W][2][RPL * V + G];  // p [RPL][V], then corr [G]
  __shared__ __align__(16) float s_acc[W][G][D];
  __shared__ float s_m[W][G], s_l[W][G];
  __shared__ float s_w[G][kWdMaxSplits];
  __shared__ int s_last;

  const int b = blockIdx.z, split = blockIdx.y;
  const int kvh = blockIdx.x / head_chunks, chunk = blockIdx.x % head_chunks;
  const int unit = blockIdx.z * gridDim.x + blockIdx.x;
  const int group = Hq / Hkv;
  const int h0 = kvh * group + chunk * G;
  const int Gc = min(G, group - chunk * G);
  float* __restrict__ ob = out + (int64_t(b) * Hq + h0) * D;  // [Gc][D]
  const int len = lengths[b];
  if (len <= 0) {  // no keys: zeros, written once
    if (split == 0)
      for (int i = threadIdx.x; i < Gc * D; i += W * 32) ob[i] = 0.f;
    return;
  }
  const int k_begin = split * split_len;
  if (k_begin >= len) return;  // past this sequence's length: not counted by the merge
  const int k_end = min(len, k_begin + split_len);
  const int n_act = min(splits, (len + split_len - 1) / split_len);
  const int n_tiles = (k_end - k_begin + TK - 1) / TK;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = lane / LR, li = lane % LR, d0 = li * 8;
  const int64_t kv_ld = int64_t(Hkv) * D;
  const int64_t row_off = (int64_t(b) * capacity * Hkv + kvh) * D + d0 + r * kv_ld;
  const KV* __restrict__ kb = kc + row_off;
  const KV* __restrict__ vb = vc + row_off;

  Raw8<KV> kr[U], vr[U];
  // Rows of tile t held by this lane; rows at or past k_end (another split's, or past the
  // length: possibly NaN) read as zeros.
  auto load_tile = [&](Raw8<KV>(&x)[U], const KV* __restrict__ base, int t) {
    const int row0 = k_begin + t * TK;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (row0 + u * RPL + r < k_end) x[u].load(base + int64_t(row0 + u * RPL) * kv_ld);
      else x[u].zero();
    }
  };
  int t = warp;
  if (t < n_tiles) {
    load_tile(kr, kb, t);
    load_tile(vr, vb, t);
  }

  float qv[G][8], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f), c = a;
    if (g < Gc) {
      const float4* qp = reinterpret_cast<const float4*>(q + (int64_t(b) * Hq + h0 + g) * D + d0);
      a = qp[0];
      c = qp[1];
    }
    qv[g][0] = a.x * scale_log2; qv[g][1] = a.y * scale_log2;
    qv[g][2] = a.z * scale_log2; qv[g][3] = a.w * scale_log2;
    qv[g][4] = c.x * scale_log2; qv[g][5] = c.y * scale_log2;
    qv[g][6] = c.z * scale_log2; qv[g][7] = c.w * scale_log2;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0.f;
  }
  float m[HL], l[HL];  // running max (log2 units) and sum of this lane's heads
#pragma unroll
  for (int h = 0; h < HL; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.f;
  }

  for (int it = 0; t < n_tiles; t += W, ++it) {
    const int row0 = k_begin + t * TK;
    // Partial scores over this lane's 8 elements: part[u * G + g].
    float part[V];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[8];
      kr[u].get(kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) s = fmaf(qv[g][e], kf[e], s);
        part[u * G + g] = s;
      }
    }
    if (t + W < n_tiles) load_tile(kr, kb, t + W);

    // Reduce-scatter over the LR lanes of a row: at offset o a lane keeps the upper half of
    // its values when (lane & o), the lower half otherwise, and adds the partner's copy.
#pragma unroll
    for (int lvl = 0; lvl < S::LOG_LR; ++lvl) {
      const int o = LR >> (lvl + 1);
      constexpr int kHalfTop = V / 2;
      const int half = kHalfTop >> lvl;
      const bool up = (lane & o) != 0;
#pragma unroll
      for (int i = 0; i < kHalfTop; ++i) {
        if (i < half) {
          const float send = up ? part[i] : part[half + i];
          const float keep = up ? part[half + i] : part[i];
          part[i] = keep + __shfl_xor_sync(kAll, send, o);
        }
      }
    }
    // Scores j = F * li + i: key row0 + (j / G) * RPL + r, head j % G.
    float sc[F];
#pragma unroll
    for (int i = 0; i < F; ++i) {
      const int key = row0 + ((F * li + i) / G) * RPL + r;
      sc[i] = key < k_end ? part[i] : -INFINITY;
    }
    float tm[HL];
#pragma unroll
    for (int h = 0; h < HL; ++h) tm[h] = -INFINITY;
#pragma unroll
    for (int i = 0; i < F; ++i) tm[i % HL] = fmaxf(tm[i % HL], sc[i]);
#pragma unroll
    for (int o = S::O0; o < 32; o <<= 1)
#pragma unroll
      for (int h = 0; h < HL; ++h) tm[h] = fmaxf(tm[h], __shfl_xor_sync(kAll, tm[h], o));
    // Key row0 (u 0, r 0) is valid, so every head's tile max is finite.
    bool moved = false;
    float corr[HL];
#pragma unroll
    for (int h = 0; h < HL; ++h) {
      const float mn = fmaxf(m[h], tm[h]);
      moved |= mn > m[h];
      corr[h] = fast_exp2(m[h] - mn);  // 0 on the first tile (m = -inf)
      m[h] = mn;
      l[h] *= corr[h];
    }
    float* buf = s_buf[warp][it & 1];
#pragma unroll
    for (int i = 0; i < F; ++i) {
      const float p = fast_exp2(sc[i] - m[i % HL]);  // 0 for masked keys
      l[i % HL] += p;
      buf[r * V + F * li + i] = p;
    }
    if (r == 0 && F * li < G) {
#pragma unroll
      for (int h = 0; h < HL; ++h) buf[RPL * V + F * li + h] = corr[h];
    }
    __syncwarp();
    if (__any_sync(kAll, moved)) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float c = buf[RPL * V + g];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] *= c;
      }
    }
    const float* pr = buf + r * V;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float vf[8];
      vr[u].get(vf);
      float p[G];
      if constexpr (G % 4 == 0) {
#pragma unroll
        for (int g4 = 0; g4 < G / 4; ++g4) {
          const float4 x = *reinterpret_cast<const float4*>(pr + u * G + 4 * g4);
          p[4 * g4] = x.x; p[4 * g4 + 1] = x.y; p[4 * g4 + 2] = x.z; p[4 * g4 + 3] = x.w;
        }
      } else {
#pragma unroll
        for (int g = 0; g < G; ++g) p[g] = pr[u * G + g];
      }
#pragma unroll
      for (int g = 0; g < G; ++g)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] = fmaf(p[g], vf[e], acc[g][e]);
    }
    if (t + W < n_tiles) load_tile(vr, vb, t + W);
    // No barrier here: the next tile writes the other half of s_buf, and a lane can only
    // reach this half again after the next tile's __syncwarp, which every lane passes after
    // reading this one.
  }

  // Merge the warp's row slots, then the warps.
#pragma unroll
  for (int o = LR; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] += __shfl_xor_sync(kAll, acc[g][e], o);
#pragma unroll
  for (int o = S::O0; o < 32; o <<= 1)
#pragma unroll
    for (int h = 0; h < HL; ++h) l[h] += __shfl_xor_sync(kAll, l[h], o);
  if (r == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float4* dst = reinterpret_cast<float4*>(&s_acc[warp][g][d0]);
      dst[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
      dst[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
    }
    if (F * li < G) {
#pragma unroll
      for (int h = 0; h < HL; ++h) {
        s_m[warp][F * li + h] = m[h];
        s_l[warp][F * li + h] = l[h];
      }
    }
  }
  __syncthreads();
  // Warp 0 always had a tile, so M is finite; warps without tiles weigh 0 (acc and l are 0).
  const bool single = n_act == 1;
  float* pa = part_acc + (int64_t(unit) * splits + split) * G * D;
  for (int idx = threadIdx.x; idx < Gc * D; idx += W * 32) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, s_m[w][g]);
    float L = 0.f, a = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float e = fast_exp2(s_m[w][g] - M);
      L += s_l[w][g] * e;
      a += s_acc[w][g][d] * e;
    }
    if (single) ob[idx] = a / L;
    else pa[idx] = a;
  }
  if (single) return;
  if (threadIdx.x < Gc) {
    const int g = threadIdx.x;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, s_m[w][g]);
    float L = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) L += s_l[w][g] * fast_exp2(s_m[w][g] - M);
    float* ml = part_ml + ((int64_t(unit) * splits + split) * G + g) * 2;
    ml[0] = M;
    ml[1] = L;
  }

  // The last block of this unit to arrive merges the n_act partials.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) s_last = atomicAdd(&counters[unit], 1) == n_act - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const float* ml = part_ml + int64_t(unit) * splits * G * 2;
  for (int g = warp; g < Gc; g += W) {
    float M = -INFINITY;
    for (int s = lane; s < n_act; s += 32) M = fmaxf(M, __ldcg(ml + (s * G + g) * 2));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(kAll, M, o));
    float L = 0.f;
    for (int s = lane; s < n_act; s += 32)
      L += __ldcg(ml + (s * G + g) * 2 + 1) * fast_exp2(__ldcg(ml + (s * G + g) * 2) - M);
    L = warp_sum(L);  // >= 1: the split holding the max has l >= 1
    const float inv = 1.0f / L;
    for (int s = lane; s < n_act; s += 32)
      s_w[g][s] = fast_exp2(__ldcg(ml + (s * G + g) * 2) - M) * inv;
  }
  __syncthreads();
  const float4* pa0 = reinterpret_cast<const float4*>(part_acc + int64_t(unit) * splits * G * D);
  for (int idx = threadIdx.x; idx < Gc * (D / 4); idx += W * 32) {
    const int g = idx / (D / 4);
    float4 a0 = make_float4(0.f, 0.f, 0.f, 0.f), a1 = a0;
    int s = 0;
    for (; s + 1 < n_act; s += 2) {
      const float4 x0 = __ldcg(pa0 + int64_t(s) * (G * D / 4) + idx);
      const float4 x1 = __ldcg(pa0 + int64_t(s + 1) * (G * D / 4) + idx);
      const float w0 = s_w[g][s], w1 = s_w[g][s + 1];
      a0.x = fmaf(w0, x0.x, a0.x); a0.y = fmaf(w0, x0.y, a0.y);
      a0.z = fmaf(w0, x0.z, a0.z); a0.w = fmaf(w0, x0.w, a0.w);
      a1.x = fmaf(w1, x1.x, a1.x); a1.y = fmaf(w1, x1.y, a1.y);
      a1.z = fmaf(w1, x1.z, a1.z); a1.w = fmaf(w1, x1.w, a1.w);
    }
    if (s < n_act) {
      const float4 x0 = __ldcg(pa0 + int64_t(s) * (G * D / 4) + idx);
      const float w0 = s_w[g][s];
      a0.x = fmaf(w0, x0.x, a0.x); a0.y = fmaf(w0, x0.y, a0.y);
      a0.z = fmaf(w0, x0.z, a0.z); a0.w = fmaf(w0, x0.w, a0.w);
    }
    reinterpret_cast<float4*>(ob)[idx] =
        make_float4(a0.x + a1.x, a0.y + a1.y, a0.z + a1.z, a0.w + a1.w);
  }
  if (threadIdx.x == 0) counters[unit] = 0;  // ready for the next call
}

// Grow-only counters of the warp decode's merge, zero between calls (the merging block resets
// its own); zeroed when (re)allocated, which happens on a warm-up call, never in a capture.
int* decode_counters(size_t n) {
  static GrowOnlyBuffer buf;  // zero-filled when it grows
  return buf.get<int>(n, "attention_decode");
}

// Load steps per warp tile: 4 (bf16, D 128: 4 KB of K and V in flight per warp), 2 for groups
// of 8 heads at D 128 (registers), and at least D / 8 / G so that the reduce-scatter ends with
// one or more whole scores per lane.
template <int D, int G>
constexpr int wd_steps() {
  return std::max((D / 8) / G, G >= 8 && D >= 128 ? 2 : 4);
}

template <int D, int G, class KV, int U = wd_steps<D, G>()>
void launch_warp_decode(const Tensor& q, const KV* k, const KV* v, const Tensor& lengths,
                        float scale, Tensor& out, int capacity, int Hkv) {
  using S = WdShape<D, G, U>;
  const int B = int(q.dim(0)), Hq = int(q.dim(1));
  const int group = Hq / Hkv;
  const int chunks = (group + G - 1) / G;
  auto kernel = decode_warp_kernel<D, G, U, KV>;
  static int occupancy = 0;
  if (occupancy == 0) {
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, kernel, kWdWarps * 32, 0),
               "attention_decode", "occupancy");
    occupancy = std::max(occupancy, 1);
  }
  // Split plan (lengths are on the device: plan for the capacity). Cost of s splits: the waves
  // of resident blocks times the keys per block plus a fixed per-block cost of two tiles per
  // warp; the fewest splits among equal costs.
  const int64_t units = int64_t(B) * Hkv * chunks;
  const int64_t slots = int64_t(sm_count()) * occupancy;
  const int64_t step = int64_t(kWdWarps) * S::TK;
  const int64_t s_max =
      std::max<int64_t>(1, std::min<int64_t>(kWdMaxSplits, (capacity + step - 1) / step));
  int64_t best_len = 0, best_splits = 0;
  double best_cost = 0;
  for (int64_t s = 1; s <= s_max; ++s) {
    const int64_t sl = ((capacity + s - 1) / s + step - 1) / step * step;
    const int64_t n = (capacity + sl - 1) / sl;
    const int64_t waves = (units * n + slots - 1) / slots;
    const double cost = double(waves) * double(sl + 2 * step);
    if (best_splits == 0 || cost < best_cost) {
      best_cost = cost;
      best_len = sl;
      best_splits = n;
    }
  }
  const int64_t splits = best_splits, split_len = best_len;
  const size_t acc_floats = size_t(units) * splits * G * D;
  float* scratch = decode_scratch(acc_floats + size_t(units) * splits * G * 2);
  int* counters = decode_counters(size_t(units));
  const dim3 grid(unsigned(Hkv * chunks), unsigned(splits), unsigned(B));
  kernel<<<grid, kWdWarps * 32>>>(q.f32(), k, v, lengths.data<int32_t>(), scale * kLog2e, scratch,
                                  scratch + acc_floats, counters, out.f32(), capacity, Hq, Hkv,
                                  chunks, int(split_len), int(splits));
  check_launch("attention_decode");
}

// Decode kernel choice: MAMBALM_ATTN_DECODE=split selects the split + combine kernels above,
// =warp8 the warp kernel with 8 load steps per tile for groups of 3-4 heads at D 128 (8 KB in
// flight per warp, 242 registers: 2 blocks per SM), anything else the warp kernel as planned
// (4 steps, 128 registers, 4 blocks per SM). Measured on the H200 (bf16 cache, 32 q / 8 KV
// heads of 128, GB/s of K+V, event-timed single calls; PyTorch SDPA in the same run):
//   batch 1, 4K/32K/128K: warp 661/2409/3500, warp8 798/2457/3450, split 589/1178/1416,
//                         torch 211/325/352;
//   batch 8:              warp 2534/3896/4194, warp8 2495/3744/4011, split 1182/1616/1684,
//                         torch 1657/2564/2786;
//   batch 32:             warp 3620/4160/4197, warp8 3568/4029/4065, split 1920/2154/2224,
//                         torch 3507/4302/4462.
// All three pass the same conformance cases.
int decode_variant() {
  const char* e = std::getenv("MAMBALM_ATTN_DECODE");
  if (!e) return 0;
  const std::string s(e);
  return s == "split" ? 1 : s == "warp8" ? 2 : 0;
}

template <int D, class KV>
void launch_decode_any(const Tensor& q, const KV* k, const KV* v, const Tensor& lengths,
                       float scale, Tensor& out, int capacity, int Hkv) {
  const int group = int(q.dim(1)) / Hkv;
  const int variant = decode_variant();
  if (D == 256 || variant == 1) {
    launch_decode<D, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
    return;
  }
  if constexpr (D != 256) {
    if (group <= 2) launch_warp_decode<D, 2, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
    else if (group <= 4) {
      if constexpr (D == 128 && sizeof(KV) == 2) {
        if (variant == 2) {
          launch_warp_decode<D, 4, KV, 8>(q, k, v, lengths, scale, out, capacity, Hkv);
          return;
        }
      }
      launch_warp_decode<D, 4, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
    }
    else launch_warp_decode<D, 8, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
  }
}


}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  if (B * T * Hq * Dh == 0) return;
  const bool bf16 = k.dtype() == DType::BF16;
  if (bf16 && aligned16(k.data<uint16_t>()) && aligned16(v.data<uint16_t>()) &&
      aligned16(q.f32()) && aligned16(out.f32())) {
    if (Dh == 128) {
      const int mt = flash_mt();
      if (mt == 3) launch_wgmma<128>(q, k, v, scale, out);
      else if (mt == 2) launch_flash<128, 2>(q, k, v, scale, out);
      else launch_flash<128, 1>(q, k, v, scale, out);
      check_launch("attention");
      return;
    }
    if (Dh == 64) {
      const int mt = flash_mt();
      if (mt == 3) launch_wgmma<64>(q, k, v, scale, out);
      else if (mt == 2) launch_flash<64, 2>(q, k, v, scale, out);
      else launch_flash<64, 1>(q, k, v, scale, out);
      check_launch("attention");
      return;
    }
  }
  const int64_t warps = B * T * Hq;
  const unsigned blocks = unsigned((warps + kAttnWarps - 1) / kAttnWarps);
#define MAMBALM_ATTN_LAUNCH(DK)                                                                  \
  do {                                                                                           \
    if (bf16)                                                                                    \
      attend_rows_kernel<DK, uint16_t><<<blocks, kAttnWarps * 32>>>(                             \
          q.f32(), k.data<uint16_t>(), v.data<uint16_t>(), scale, out.f32(), int(B), int(T),     \
          int(S), int(Hq), int(Hkv), int(Dh));                                                   \
    else                                                                                         \
      attend_rows_kernel<DK, float><<<blocks, kAttnWarps * 32>>>(                                \
          q.f32(), k.f32(), v.f32(), scale, out.f32(), int(B), int(T), int(S), int(Hq),          \
          int(Hkv), int(Dh));                                                                    \
  } while (0)
  if (Dh <= 32) MAMBALM_ATTN_LAUNCH(1);
  else if (Dh <= 64) MAMBALM_ATTN_LAUNCH(2);
  else if (Dh <= 128) MAMBALM_ATTN_LAUNCH(4);
  else if (Dh <= 256) MAMBALM_ATTN_LAUNCH(8);
  else fail("op attention (cuda)", "head dim " + std::to_string(Dh) + " is above the supported 256");
#undef MAMBALM_ATTN_LAUNCH
  check_launch("attention");
}

void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      const Tensor& lengths, float scale, Tensor& out) {
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2);
  const int64_t capacity = k_cache.dim(1), Hkv = k_cache.dim(2);
  if (B * Hq * Dh == 0) return;
  const bool bf16 = k_cache.dtype() == DType::BF16;
  const void* kp = bf16 ? static_cast<const void*>(k_cache.data<uint16_t>()) : k_cache.f32();
  const void* vp = bf16 ? static_cast<const void*>(v_cache.data<uint16_t>()) : v_cache.f32();
  if (aligned16(kp) && aligned16(vp) && aligned16(q.f32()) && aligned16(out.f32()) &&
      capacity > 0 && (Dh == 64 || Dh == 128 || Dh == 256)) {
#define MAMBALM_DEC_LAUNCH(D)                                                                    \
  do {                                                                                           \
    if (bf16)                                                                                    \
      launch_decode_any<D, uint16_t>(q, k_cache.data<uint16_t>(), v_cache.data<uint16_t>(),      \
                                     lengths, scale, out, int(capacity), int(Hkv));              \
    else                                                                                         \
      launch_decode_any<D, float>(q, k_cache.f32(), v_cache.f32(), lengths, scale, out,          \
                                  int(capacity), int(Hkv));                                      \
  } while (0)
    if (Dh == 64) MAMBALM_DEC_LAUNCH(64);
    else if (Dh == 128) MAMBALM_DEC_LAUNCH(128);
    else MAMBALM_DEC_LAUNCH(256);
#undef MAMBALM_DEC_LAUNCH
    check_launch("attention_decode");
    return;
  }
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
  check_launch("attention_decode");
}

}  // namespace mambalm::ops::cuda
