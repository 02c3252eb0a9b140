// Flash prefill on mma.sync (sm_80+), BF16 K/V, head dim 64 or 128; the default prefill kernel
// off Hopper. Flash-attention-2 style: a block owns 128 queries of one head (32 per warp; 64 and
// 16 with MT=1), streams 64-key K/V tiles through shared memory with cp.async (two stages),
// computes QK^T and PV with bf16 mma.sync.m16n8k16 (fp32 accumulate), online softmax in fp32
// with exp2 and the scale folded into one FMA (flash_masked_softmax, common.cuh), causal tile
// skipping. Template switches DOC and STATS as in flash_wgmma.cu (document ids; the backward's
// statistics pass).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kFlashWarps = 4;
constexpr int kFlashBN = 64;  // keys per tile

// MT = 16-row query tiles per warp. MT 1: 64 queries per block, Q fragments kept in registers.
// MT 2: 128 queries per block, Q staged in shared memory as bf16 and re-read per k-step; each
// K/V fragment then feeds two MMAs, which halves the shared-memory traffic per MMA of PV.
template <int D, int MT, bool DOC>
constexpr int flash_smem_bytes() {
  return (2 /*K,V*/ * 2 /*stages*/ * kFlashBN + (MT > 1 ? 16 * MT * kFlashWarps : 0)) * (D + 8) * 2 +
         (DOC ? 2 * kFlashBN * 4 : 0) /*key document ids*/;
}

// Grid: x = b * Hq + h, y = query tile (counted from the last: the causal tiles with the most
// keys start first, which evens out the tail of the launch).
template <int D, int MT, bool DOC, bool STATS>
__global__ void __launch_bounds__(kFlashWarps * 32, 2)
flash_prefill_kernel(const float* __restrict__ q, const uint16_t* __restrict__ k,
                     const uint16_t* __restrict__ v, DocView docs, FlashStats st,
                     float scale_log2, float* __restrict__ out, int T, int S, int Hq, int Hkv) {
  static_assert(!STATS || MT > 1, "stats mode stages Q in shared memory (MT > 1)");
  constexpr int BM = 16 * MT * kFlashWarps;
  constexpr int LDS = D + 8;  // shared row stride in elements: the 16-byte pad puts the 8 rows
                              // of one ldmatrix 8x8 matrix on distinct banks
  constexpr int kTile = kFlashBN * LDS;
  constexpr bool kQInSmem = MT > 1;
  extern __shared__ __align__(16) uint16_t flash_smem[];
  uint16_t* ks = flash_smem;              // [2][BN][LDS]
  uint16_t* vs = flash_smem + 2 * kTile;  // [2][BN][LDS]
  uint16_t* qs = flash_smem + 4 * kTile;  // [BM][LDS] when kQInSmem
  int* kdoc_s = reinterpret_cast<int*>(flash_smem + 4 * kTile + (kQInSmem ? BM * LDS : 0));  // [2][BN]

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
      const uint2 packed = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
      *reinterpret_cast<uint2*>(qs + r * LDS + cc) = packed;
      if constexpr (STATS) {
        if (m0 + r < T)
          *reinterpret_cast<uint2*>(st.q16 + ((int64_t(b) * Hq + h) * T + m0 + r) * D + cc) = packed;
      }
    }
    // made visible by the first barrier of the tile loop
  }

  const int64_t kv_ld = int64_t(Hkv) * D;
  const uint16_t* kb = k + (int64_t(b) * S * Hkv + kvh) * D;
  const uint16_t* vb = v + (int64_t(b) * S * Hkv + kvh) * D;
  const int last_key = min(S - 1, offset + m0 + BM - 1);
  const int n_tiles = last_key / kFlashBN + 1;

  // Documents: the block's id range, each row's id, and the first key tile it can see.
  DocRange qr{0, 0};
  int qdoc[MT][2];
  const int2* kr = nullptr;
  int j = 0;
  if constexpr (DOC) {
    const int nq = (T + kDocTile - 1) / kDocTile, nk = (S + kDocTile - 1) / kDocTile;
    const int t0 = m0 / kDocTile;
    qr = doc_range_span(docs.qrange + int64_t(b) * nq, t0,
                        min(nq, t0 + (BM + kDocTile - 1) / kDocTile));
    kr = docs.krange + int64_t(b) * nk;
    const int* sq = docs.seq + int64_t(b) * S;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int half = 0; half < 2; ++half)
        qdoc[mt][half] = __ldg(sq + offset + min(row0 + mt * 16 + g + 8 * half, T - 1));
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
    if constexpr (DOC) {
      if (threadIdx.x < kFlashBN) {
        const int key = n0 + threadIdx.x;
        cp_async4(smem_u32(kdoc_s + stage * kFlashBN + threadIdx.x),
                  docs.seq + int64_t(b) * S + min(key, S - 1), key < S ? 4 : 0);
      }
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
    __syncthreads();
    const uint16_t* kt = ks + stage * kTile;
    const uint16_t* vt = vs + stage * kTile;
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

    if constexpr (DOC) {
      const int* kd = doc_uniform(doc_range_load(kr, j), qr) ? nullptr : kdoc_s + stage * kFlashBN;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int rbase = row0 + mt * 16;
        flash_masked_softmax<kFlashBN, D, true>(s[mt], o[mt], m_run[mt], l_run[mt], n0,
                                                offset + rbase, g, tq, scale_log2, kd, qdoc[mt]);
      }
    } else {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int rbase = row0 + mt * 16;
        flash_masked_softmax<kFlashBN, D>(s[mt], o[mt], m_run[mt], l_run[mt], n0, offset + rbase,
                                          g, tq, scale_log2);
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
    j = jn;
  }

  if constexpr (STATS) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
      flash_stats_epilogue<D>(st, o[mt], m_run[mt], l_run[mt], b, h, row0 + mt * 16, T, Hq, g, tq,
                              scale_log2);
  } else {
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

template <int D, int MT, bool DOC, bool STATS>
void launch_flash(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                  float scale, Tensor* out, const FlashStats* stats, float* lse2) {
  const int B = int(q.dim(0)), T = int(q.dim(1)), Hq = int(q.dim(2));
  const int S = int(k.dim(1)), Hkv = int(k.dim(2));
  constexpr int BM = 16 * MT * kFlashWarps;
  FlashStats st = stats ? *stats : FlashStats{};
  if (!stats) st.lse2 = lse2;
  constexpr int smem = flash_smem_bytes<D, MT, DOC>();
  static bool configured = false;  // the attribute is per kernel; set once per process
  if (!configured) {
    check_cuda(cudaFuncSetAttribute(flash_prefill_kernel<D, MT, DOC, STATS>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "attention", "shared memory size");
    configured = true;
  }
  const dim3 grid(unsigned(B * Hq), unsigned((T + BM - 1) / BM));
  flash_prefill_kernel<D, MT, DOC, STATS><<<grid, kFlashWarps * 32, smem>>>(
      q.f32(), k.data<uint16_t>(), v.data<uint16_t>(), docs ? *docs : DocView{},
      st, scale * kLog2e, out ? out->f32() : nullptr, T, S, Hq, Hkv);
}

template <int D>
void launch_flash_d(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                    float scale, Tensor* out, int rows_per_warp, const FlashStats* stats, float* lse2) {
  if (stats) {  // always 32 rows per warp (Q staged in shared memory)
    if (docs) launch_flash<D, 2, true, true>(q, k, v, docs, scale, out, stats, lse2);
    else launch_flash<D, 2, false, true>(q, k, v, docs, scale, out, stats, lse2);
  } else if (rows_per_warp == 32) {
    if (docs) launch_flash<D, 2, true, false>(q, k, v, docs, scale, out, stats, lse2);
    else launch_flash<D, 2, false, false>(q, k, v, docs, scale, out, stats, lse2);
  } else {
    if (docs) launch_flash<D, 1, true, false>(q, k, v, docs, scale, out, stats, lse2);
    else launch_flash<D, 1, false, false>(q, k, v, docs, scale, out, stats, lse2);
  }
}

}  // namespace

void attention_flash_mma(const Tensor& q, const Tensor& k, const Tensor& v, const DocView* docs,
                         float scale, Tensor* out, int rows_per_warp, const FlashStats* stats, float* lse2) {
  const int64_t Dh = q.dim(3);
  if (rows_per_warp != 16 && rows_per_warp != 32)
    fail("op attention (cuda)", "flash kernel: " + std::to_string(rows_per_warp) +
                                    " query rows per warp, not 16 or 32");
  if (Dh == 128) launch_flash_d<128>(q, k, v, docs, scale, out, rows_per_warp, stats, lse2);
  else if (Dh == 64) launch_flash_d<64>(q, k, v, docs, scale, out, rows_per_warp, stats, lse2);
  else fail("op attention (cuda)", "flash kernel: head dim " + std::to_string(Dh) + ", not 64 or 128");
}

}  // namespace mambalm::ops::cuda
