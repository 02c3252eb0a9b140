// Flash prefill for Hopper (sm_90a; the default prefill kernel on compute capability 9.x):
// the algorithm of flash_mma.cu with QK^T on wgmma from 128-byte-swizzled shared memory and PV
// on mma.sync, BF16 K/V, head dim 64 or 128, 128 queries per block. Two template switches:
// DOC (document ids: the masked softmax also compares ids, and key tiles whose id range misses
// the block's are skipped) and STATS (the backward's first pass: instead of O it writes the
// softmax statistics and dO . O per row, and bf16 copies of q and dout; see common.cuh).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

// ---- Hopper variant: QK^T on wgmma (sm_90a), PV on mma.sync --------------------------------
// One warpgroup per block, 128 queries (two m64 tiles), 64-key tiles. Q and K live in shared
// memory in the 128-byte-swizzled K-major layout that wgmma descriptors read (rows of 128 B,
// 16-byte chunk c of row r stored at chunk c ^ (r % 8), atoms of 8 rows = 1024 B, 1024-aligned);
// V stays padded row-major for ldmatrix.trans. Warp w owns rows 64 mt + 16 w + {g, g+8}: the
// wgmma accumulator layout is the mma.sync C layout per 8 columns, so S turns into the PV
// A-fragments exactly as in flash_prefill_kernel (flash_mma.cu).
// (MAMBALM_HAVE_WGMMA, the swizzle descriptors and the wgmma wrappers are in ptx.cuh.)

constexpr int kWgBM = 128, kWgBN = 64;

template <int D, bool DOC>
constexpr int wg_smem_bytes() {
  return 1024 /*alignment slack*/ + kWgBM * D * 2 /*Q*/ + 2 * kWgBN * D * 2 /*K*/ +
         2 * kWgBN * (D + 8) * 2 /*V*/ + (DOC ? 2 * kWgBN * 4 : 0) /*key document ids*/;
}

template <int D, bool DOC, bool STATS>
__global__ void __launch_bounds__(128, 2)
flash_wgmma_kernel(const float* __restrict__ q, const uint16_t* __restrict__ k,
                   const uint16_t* __restrict__ v, DocView docs, FlashStats st, float scale_log2,
                   float* __restrict__ out, int T, int S, int Hq, int Hkv) {
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
  int* kdoc_s = reinterpret_cast<int*>(vs + 2 * kVTile);  // [2][BN] when DOC

  const int h = blockIdx.x % Hq, b = blockIdx.x / Hq;
  const int m_block = gridDim.y - 1 - blockIdx.y;
  const int kvh = h / (Hq / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int m0 = m_block * kWgBM;
  const int offset = S - T;
  const int64_t q_ld = int64_t(Hq) * D;
  const float* qb = q + (int64_t(b) * T * Hq + h) * D;

  // Q to bf16, swizzled (and, in stats mode, the bf16 copy for the backward).
  for (int c = threadIdx.x; c < kWgBM * (D / 8); c += 128) {
    const int r = c / (D / 8), c8 = c % (D / 8);
    float4 x0 = make_float4(0.f, 0.f, 0.f, 0.f), x1 = x0;
    if (m0 + r < T) {
      const float* src = qb + int64_t(m0 + r) * q_ld + c8 * 8;
      x0 = *reinterpret_cast<const float4*>(src);
      x1 = *reinterpret_cast<const float4*>(src + 4);
    }
    const uint4 packed = make_uint4(pack_bf16(x0.x, x0.y), pack_bf16(x0.z, x0.w),
                                    pack_bf16(x1.x, x1.y), pack_bf16(x1.z, x1.w));
    const uint32_t dst = qs + (c8 / 8) * (kWgBM * 128) + sw128_offset(r, c8 % 8);
    asm volatile("st.shared.v4.b32 [%0], {%1,%2,%3,%4};\n" ::"r"(dst), "r"(packed.x),
                 "r"(packed.y), "r"(packed.z), "r"(packed.w));
    if constexpr (STATS) {
      if (m0 + r < T)
        *reinterpret_cast<uint4*>(st.q16 + ((int64_t(b) * Hq + h) * T + m0 + r) * D + c8 * 8) = packed;
    }
  }
  fence_proxy_async();  // generic-proxy stores, read next by wgmma (after the loop's barrier)

  const int64_t kv_ld = int64_t(Hkv) * D;
  const uint16_t* kb = k + (int64_t(b) * S * Hkv + kvh) * D;
  const uint16_t* vb = v + (int64_t(b) * S * Hkv + kvh) * D;
  const int last_key = min(S - 1, offset + m0 + kWgBM - 1);
  const int n_tiles = last_key / kWgBN + 1;

  // Documents: the block's id range, each row's id, and the first key tile it can see.
  DocRange qr{0, 0};
  int qdoc[2][2] = {{0, 0}, {0, 0}};
  const int2* kr = nullptr;
  int j = 0;
  if constexpr (DOC) {
    const int nq = (T + kDocTile - 1) / kDocTile, nk = (S + kDocTile - 1) / kDocTile;
    const int t0 = m0 / kDocTile;
    qr = doc_range_span(docs.qrange + int64_t(b) * nq, t0, min(nq, t0 + kWgBM / kDocTile));
    kr = docs.krange + int64_t(b) * nk;
    const int* sq = docs.seq + int64_t(b) * S;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = min(m0 + mt * 64 + warp * 16 + g + 8 * half, T - 1);
        qdoc[mt][half] = __ldg(sq + offset + r);
      }
    while (j < n_tiles && doc_disjoint(doc_range_load(kr, j), qr)) ++j;
  }
  // The next key tile after j that shares a document with the block (j + 1 without documents).
  auto next_tile = [&](int jj) {
    ++jj;
    if constexpr (DOC)
      while (jj < n_tiles && doc_disjoint(doc_range_load(kr, jj), qr)) ++jj;
    return jj;
  };

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
    if constexpr (DOC) {
      if (threadIdx.x < kWgBN) {
        const int key = n0 + threadIdx.x;
        cp_async4(smem_u32(kdoc_s + stage * kWgBN + threadIdx.x),
                  docs.seq + int64_t(b) * S + min(key, S - 1), key < S ? 4 : 0);
      }
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

  load_tile(j, 0);
  cp_async_commit();
  for (int it = 0; j < n_tiles; ++it) {
    // Without documents it == j, and the stage is j's parity as before.
    const int stage = DOC ? (it & 1) : (j & 1);
    const int jn = next_tile(j);
    if (jn < n_tiles) {
      load_tile(jn, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    fence_proxy_async();
    __syncthreads();
    const uint32_t kt = ks0 + stage * kKBytes;
    const uint16_t* vt = vs + stage * kVTile;
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

    if constexpr (DOC) {
      const int* kd = doc_uniform(doc_range_load(kr, j), qr) ? nullptr : kdoc_s + stage * kWgBN;
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int rbase = m0 + mt * 64 + warp * 16;
        flash_masked_softmax<kWgBN, D, true>(s[mt], o[mt], m_run[mt], l_run[mt], n0,
                                             offset + rbase, g, tq, scale_log2, kd, qdoc[mt]);
      }
    } else {
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int rbase = m0 + mt * 64 + warp * 16;
        flash_masked_softmax<kWgBN, D>(s[mt], o[mt], m_run[mt], l_run[mt], n0, offset + rbase, g,
                                       tq, scale_log2);
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
    j = jn;
  }

  if constexpr (STATS) {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
      flash_stats_epilogue<D>(st, o[mt], m_run[mt], l_run[mt], b, h, m0 + mt * 64 + warp * 16, T,
                              Hq, g, tq, scale_log2);
  } else {
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float l = l_run[mt][half];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const float inv = 1.0f / l;
        const int r = m0 + mt * 64 + warp * 16 + g + 8 * half;
        if (st.lse2 && r < T && tq == 0)  // the statistic the stats mode writes (common.cuh)
          st.lse2[(int64_t(b) * Hq + h) * T + r] = m_run[mt][half] * scale_log2 + log2f(l);
        if (r < T) {
          float* orow = out + ((int64_t(b) * T + r) * Hq + h) * D + 2 * tq;
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt)
            *reinterpret_cast<float2*>(orow + dt * 8) =
                make_float2(o[mt][dt][2 * half] * inv, o[mt][dt][2 * half + 1] * inv);
        }
      }
  }
}

template <int D, bool DOC, bool STATS>
void launch_wgmma(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                  float scale, Tensor* out, const FlashStats* stats, float* lse2) {
  const int B = int(q.dim(0)), T = int(q.dim(1)), Hq = int(q.dim(2));
  const int S = int(k.dim(1)), Hkv = int(k.dim(2));
  constexpr int smem = wg_smem_bytes<D, DOC>();
  FlashStats st = stats ? *stats : FlashStats{};
  if (!stats) st.lse2 = lse2;
  static bool configured = false;
  if (!configured) {
    check_cuda(cudaFuncSetAttribute(flash_wgmma_kernel<D, DOC, STATS>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "attention", "shared memory size");
    configured = true;
  }
  const dim3 grid(unsigned(B * Hq), unsigned((T + kWgBM - 1) / kWgBM));
  flash_wgmma_kernel<D, DOC, STATS><<<grid, 128, smem>>>(
      q.f32(), k.data<uint16_t>(), v.data<uint16_t>(), docs ? *docs : DocView{},
      st, scale * kLog2e, out ? out->f32() : nullptr, T, S, Hq, Hkv);
}

template <int D>
void launch_wgmma_d(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                    float scale, Tensor* out, const FlashStats* stats, float* lse2) {
  if (docs) {
    if (stats) launch_wgmma<D, true, true>(q, k, v, docs, scale, out, stats, lse2);
    else launch_wgmma<D, true, false>(q, k, v, docs, scale, out, stats, lse2);
  } else {
    if (stats) launch_wgmma<D, false, true>(q, k, v, docs, scale, out, stats, lse2);
    else launch_wgmma<D, false, false>(q, k, v, docs, scale, out, stats, lse2);
  }
}

}  // namespace

void attention_flash_wgmma(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                           float scale, Tensor* out, const FlashStats* stats, float* lse2) {
  const int64_t Dh = q.dim(3);
  if (Dh == 128) launch_wgmma_d<128>(q, k, v, docs, scale, out, stats, lse2);
  else if (Dh == 64) launch_wgmma_d<64>(q, k, v, docs, scale, out, stats, lse2);
  else fail("op attention (cuda)",
            "wgmma flash kernel: head dim " + std::to_string(Dh) + ", not 64 or 128");
}

}  // namespace mambalm::ops::cuda
