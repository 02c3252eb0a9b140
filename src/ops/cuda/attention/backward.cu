// Attention backward on the tensor cores (BF16 K/V, head dim 64 or 128): the second pass of
// attention_backward, after the statistics pass (a flash forward in stats mode, common.cuh,
// which left lse2 and D = dO . O per query row and bf16 copies of q and dout).
//
// Flash-attention-2 style, parallel over keys. A work item is (key block of 128 keys, batch,
// KV head); its 8 warps own 16 keys each. The item walks the 64-query tiles that can see its
// keys, last tile first, and at each tile the query heads of its group; per step (bf16
// mma.sync m16n8k16, fp32 accumulation; transposes by ldmatrix.trans from one shared copy):
//   S^T  = K Q^T                      (warp: 16 keys x 64 queries)
//   P^T  = exp2(S^T scale log2e - lse2), masked (causal, tail rows, documents)
//   dV  += P^T dO;  dP^T = V dO^T;  dS^T = P^T o (dP^T - D)
//   dK  += dS^T Q                     (registers, 16 keys x D per warp, over the whole item)
//   dQ_i += scale dS K                (dS^T through shared memory; 64 x D over the 8 warps)
// dK and dV are summed over the group's query heads inside one item: each element is written
// once, in a fixed order. dQ of a query tile receives one term from every key block that sees
// it; the terms are added in key-block order through a per-(batch, head, tile) turn counter
// (key block j's item waits until the counter reads j, adds -- key block 0 assigns -- and
// advances it), so dq is bit-identical run to run without floating-point atomics.
//
// Where the time goes (H200, B 2, L 4096, 32 query heads of 128, causal; 2026-11-30): the
// whole backward takes 4.6 ms (150 TFLOP/s counting 2.5x the forward's FLOPs): the statistics
// pass 1.06 ms, this kernel ~3.5 ms, of which the five GEMMs ~2.5 ms (~275 TFLOP/s of
// mma.sync, measured with the dQ hand-off left out) and the ordered dQ hand-off ~1 ms. That
// hand-off moves 32 KB per step and SM, ~2.2 GB per call; written into dq row by row (64
// strided rows, as loads and stores, as atomics, or as 64 small bulk copies) it cost 1.2-1.9 ms
// whether ordered or not: traffic and the rate of small operations, not the ordering. So on
// sm_90 the term goes, padded, to a contiguous fp32 accumulator [B, Hq, ceil(T/64) 64, D + 8]
// in ONE 34 KB bulk copy (cp.async.bulk, or cp.reduce.async.bulk .add.f32, executed by the
// copy engine while the SM computes on), and a last small kernel copies the accumulator into
// dq. Items are claimed from an atomic counter in groups of (batch, KV head) pairs sized so
// that the first wave holds every key block of its heads: their dq, q and dout tiles are
// reused in L2 (all key blocks of a head walk the tiles together, last first, one turn apart),
// and the claim order is the turn order, so a waiting item's predecessor always runs (no
// deadlock). Off sm_90 the threads add into dq directly in turn (loads and stores).
//
// Cost model: 5 GEMMs of the causal half (0.69 TFLOP at B 2, L 4096, 32 x 128), 2.5x the
// forward's 2, plus the statistics pass (the forward's 0.27 TFLOP again); bytes are small
// beside that (K, V once per item; q16 and dout16 tiles, 32 KB per step, from L2).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kBN = 128;    // keys per work item
constexpr int kBM = kBwdBM;  // queries per step
constexpr int kWarps = 8;   // 16 keys each
constexpr int kThreadsBwd = kWarps * 32;
static_assert(kBM == kDocTile, "query tiles use the document ranges of 64-row tiles");
static_assert(kBN == 2 * kDocTile, "a key block spans two 64-key document tiles");

template <int D>
struct BwdSmem {
  static constexpr int LDS = D + 8;     // padded bf16 row (ldmatrix rows on distinct banks)
  static constexpr int LDSS = kBM + 8;  // dS^T row
  static constexpr int kK = 0;
  static constexpr int kV = kK + kBN * LDS;
  static constexpr int kQ = kV + kBN * LDS;       // [2][BM][LDS]
  static constexpr int kDO = kQ + 2 * kBM * LDS;  // [2][BM][LDS]
  static constexpr int kDS = kDO + 2 * kBM * LDS; // [BN][LDSS]
  static constexpr int kHalfs = kDS + kBN * LDSS;
  // then lse2 [2][BM] f32, dsum [2][BM] f32, query ids [2][BM] i32
  static constexpr int kStatsBytes = 3 * 2 * kBM * 4;
  // then (sm_90) the dQ term of a step, fp32 [BM][LDQ]: the source of the bulk copy, laid out
  // as one tile of the accumulator (the pad keeps the fragment stores off bank conflicts)
  static constexpr int LDQ = D + 8;
  static constexpr int kTileFloats = kBM * LDQ;
  static constexpr int bytes(bool bulk) { return kHalfs * 2 + kStatsBytes + (bulk ? kTileFloats * 4 : 0); }
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MAMBALM_BWD_BULK 1
#endif

__device__ __forceinline__ int ld_acquire_gpu(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

#ifdef MAMBALM_BWD_BULK
// One thread's bulk copy (assign) or bulk add of `bytes` from shared to global memory, run by
// the copy engine; completion is tracked by the thread's bulk groups.
__device__ __forceinline__ void bulk_store(float* dst, uint32_t src, int bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst),
               "r"(src), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_add(float* dst, uint32_t src, int bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
               ::"l"(dst), "r"(src), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// By the thread that issued the bulk operation of the turn `pending`: waits until it has
// completed (its writes performed), then passes the turn on (release at gpu scope).
__device__ __forceinline__ void release_turn(int* pending) {
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
  asm volatile("fence.proxy.async.global;\n" ::: "memory");
  asm volatile("red.release.gpu.global.add.s32 [%0], 1;\n" ::"l"(pending) : "memory");
}
#endif

template <int D, bool DOC>
__global__ void __launch_bounds__(kThreadsBwd, 1)
attn_bwd_kernel(const uint16_t* __restrict__ k, const uint16_t* __restrict__ v, FlashStats st,
                DocView docs, float* __restrict__ dq, float* __restrict__ dq_accum,
                float* __restrict__ dk, float* __restrict__ dv, int* __restrict__ sem,
                float scale, float scale_log2, int B, int T, int S, int Hq, int Hkv, int group) {
  using L = BwdSmem<D>;
  constexpr int LDS = L::LDS, LDSS = L::LDSS;
  extern __shared__ __align__(16) uint16_t bwd_smem[];
  uint16_t* Ks = bwd_smem + L::kK;
  uint16_t* Vs = bwd_smem + L::kV;
  uint16_t* dSs = bwd_smem + L::kDS;
  float* lse_s = reinterpret_cast<float*>(bwd_smem + L::kHalfs);  // [2][BM]
  float* dsum_s = lse_s + 2 * kBM;                                 // [2][BM]
  int* qdoc_s = reinterpret_cast<int*>(dsum_s + 2 * kBM);          // [2][BM]
#ifdef MAMBALM_BWD_BULK
  float* dqs = reinterpret_cast<float*>(qdoc_s + 2 * kBM);         // [BM][LDQ]
#endif
  __shared__ int item_s;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tq = lane & 3;
  const int G = Hq / Hkv;
  const int offset = S - T;
  const int nqt = (T + kBM - 1) / kBM;
  const int nkb = (S + kBN - 1) / kBN;
  const int BH = B * Hkv;
  const int n_items = nkb * BH;
  const int64_t kv_ld = int64_t(Hkv) * D;
  const int krow = warp * 16;  // this warp's first key within the block

  for (;;) {
    if (threadIdx.x == 0) item_s = atomicAdd(sem, 1);
    __syncthreads();
    const int item = item_s;
    __syncthreads();  // item_s is rewritten at the next claim
    if (item >= n_items) break;
    // Items come in groups of `group` (batch, KV head) pairs; within a group key block by key
    // block, heavy (low) first: the claim order is the turn order.
    const int grp = item / (group * nkb);
    const int gsize = min(group, BH - grp * group);
    const int rem = item - grp * group * nkb;
    const int jb = rem / gsize;
    const int bh = grp * group + rem % gsize;
    const int b = bh / Hkv;
    const int kvh = bh % Hkv;
    const int kb0 = jb * kBN;

    // K and V of the block, kept for the whole item.
    {
      const uint16_t* kb = k + (int64_t(b) * S * Hkv + kvh) * D;
      const uint16_t* vb = v + (int64_t(b) * S * Hkv + kvh) * D;
      for (int c = threadIdx.x; c < kBN * (D / 8); c += kThreadsBwd) {
        const int r = c / (D / 8), cc = c % (D / 8);
        const int key = kb0 + r;
        const int bytes = key < S ? 16 : 0;
        const int64_t src = int64_t(min(key, S - 1)) * kv_ld + cc * 8;
        cp_async16(smem_u32(Ks + r * LDS + cc * 8), kb + src, bytes);
        cp_async16(smem_u32(Vs + r * LDS + cc * 8), vb + src, bytes);
      }
      cp_async_commit();
    }

    // Documents: the block's id range and this thread's two key ids.
    DocRange krg{0, 0};
    int kdoc[2] = {0, 0};
    const int2* qrb = nullptr;
    if constexpr (DOC) {
      const int nk64 = (S + kDocTile - 1) / kDocTile, nq64 = (T + kDocTile - 1) / kDocTile;
      const int t0 = kb0 / kDocTile;
      krg = doc_range_span(docs.krange + int64_t(b) * nk64, t0, min(nk64, t0 + 2));
      qrb = docs.qrange + int64_t(b) * nq64;
#pragma unroll
      for (int half = 0; half < 2; ++half)
        kdoc[half] = __ldg(docs.seq + int64_t(b) * S + min(kb0 + krow + g + 8 * half, S - 1));
    }

    // Query tiles that see this block: i >= ifirst (the first whose last row reaches key kb0).
    // Steps: tiles last first, the group's query heads inside a tile (so that every item of a
    // (batch, KV head) meets the tiles in the same order, one turn apart).
    const int ifirst = kb0 <= offset ? 0 : (kb0 - offset) / kBM;
    const int nsteps = G * (nqt - ifirst);
    auto step_head = [&](int s) { return kvh * G + s % G; };
    auto step_tile = [&](int s) { return nqt - 1 - s / G; };
    auto skipped = [&](int s) {
      if constexpr (DOC) return doc_disjoint(krg, doc_range_load(qrb, step_tile(s)));
      return false;
    };
    auto load_step = [&](int s, int stage) {
      const int h = step_head(s), i = step_tile(s);
      const int64_t head_row0 = (int64_t(b) * Hq + h) * T;
      uint16_t* qd = bwd_smem + L::kQ + stage * kBM * LDS;
      uint16_t* dd = bwd_smem + L::kDO + stage * kBM * LDS;
      for (int c = threadIdx.x; c < kBM * (D / 8); c += kThreadsBwd) {
        const int r = c / (D / 8), cc = c % (D / 8);
        const int row = i * kBM + r;
        const int bytes = row < T ? 16 : 0;
        const int64_t src = (head_row0 + min(row, T - 1)) * D + cc * 8;
        cp_async16(smem_u32(qd + r * LDS + cc * 8), st.q16 + src, bytes);
        cp_async16(smem_u32(dd + r * LDS + cc * 8), st.do16 + src, bytes);
      }
      const int t = threadIdx.x % kBM, which = threadIdx.x / kBM;  // 4 groups of 64 threads
      const int row = i * kBM + t;
      const int rc = min(row, T - 1);
      const int bytes = row < T ? 4 : 0;
      if (which == 0)
        cp_async4(smem_u32(lse_s + stage * kBM + t), st.lse2 + head_row0 + rc, bytes);
      else if (which == 1)
        cp_async4(smem_u32(dsum_s + stage * kBM + t), st.dsum + head_row0 + rc, bytes);
      else if (DOC && which == 2)
        cp_async4(smem_u32(qdoc_s + stage * kBM + t), docs.seq + int64_t(b) * S + offset + rc,
                  bytes);
    };

    float dka[D / 8][4], dva[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) dka[i][e] = dva[i][e] = 0.f;

#ifdef MAMBALM_BWD_BULK
    int* pending = nullptr;  // thread 0: the turn whose bulk copy is in flight
#endif
    if (!skipped(0)) load_step(0, 0);
    cp_async_commit();
    for (int s = 0; s < nsteps; ++s) {
      const int stage = s & 1;
      if (s + 1 < nsteps && !skipped(s + 1)) load_step(s + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const int h = step_head(s), i = step_tile(s);
      const bool skip = skipped(s);
      const uint16_t* Qs = bwd_smem + L::kQ + stage * kBM * LDS;
      const uint16_t* dOs = bwd_smem + L::kDO + stage * kBM * LDS;
      const float* lse = lse_s + stage * kBM;
      const float* dsm = dsum_s + stage * kBM;
      const int q0 = i * kBM;

      if (!skip) {
        // S^T = K Q^T, 16 keys x 64 queries per warp.
        float sa[kBM / 8][4];
#pragma unroll
        for (int n = 0; n < kBM / 8; ++n) sa[n][0] = sa[n][1] = sa[n][2] = sa[n][3] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < D / 16; ++kk) {
          uint32_t a[4];
          ldmatrix_x4(smem_u32(Ks + (krow + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8), a[0],
                      a[1], a[2], a[3]);
#pragma unroll
          for (int np = 0; np < kBM / 16; ++np) {
            const int br = np * 16 + (lane & 7) + ((lane >> 4) << 3);
            const int bc = kk * 16 + ((lane >> 3) & 1) * 8;
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4(smem_u32(Qs + br * LDS + bc), b0, b1, b2, b3);
            mma_bf16(sa[2 * np], a, b0, b1);
            mma_bf16(sa[2 * np + 1], a, b2, b3);
          }
        }

        // P^T = exp2(S^T scale log2e - lse2), masked; kept as bf16 A-fragments (which is what
        // the dV product consumes, and what dS is formed from: the fp32 copy would not fit in
        // registers beside dK and dV at D 128).
        const bool causal = kb0 + krow + 15 > offset + q0;  // this warp's keys reach past row q0
        const bool tail = q0 + kBM > T;
        bool docmask = false;
        if constexpr (DOC) docmask = !doc_uniform(krg, doc_range_load(qrb, i));
        uint32_t ap[kBM / 16][4];
#pragma unroll
        for (int n = 0; n < kBM / 8; ++n) {
          const int c = n * 8 + 2 * tq;
          const float2 l2 = *reinterpret_cast<const float2*>(lse + c);
          int2 qd2 = make_int2(0, 0);
          if constexpr (DOC) qd2 = *reinterpret_cast<const int2*>(qdoc_s + stage * kBM + c);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = kb0 + krow + g + 8 * (e >> 1);
            const int qi = q0 + c + (e & 1);
            bool masked = (causal && key > offset + qi) || (tail && qi >= T);
            if constexpr (DOC) masked = masked || (docmask && kdoc[e >> 1] != (e & 1 ? qd2.y : qd2.x));
            sa[n][e] = masked ? 0.f : fast_exp2(fmaf(sa[n][e], scale_log2, -(e & 1 ? l2.y : l2.x)));
          }
          ap[n >> 1][(n & 1) * 2] = pack_bf16(sa[n][0], sa[n][1]);
          ap[n >> 1][(n & 1) * 2 + 1] = pack_bf16(sa[n][2], sa[n][3]);
        }

        // dV += P^T dO (k = the 64 queries).
#pragma unroll
        for (int kk = 0; kk < kBM / 16; ++kk)
#pragma unroll
          for (int dp = 0; dp < D / 16; ++dp) {
            const int br = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            const int bc = dp * 16 + (lane >> 4) * 8;
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4_trans(smem_u32(dOs + br * LDS + bc), b0, b1, b2, b3);
            mma_bf16(dva[2 * dp], ap[kk], b0, b1);
            mma_bf16(dva[2 * dp + 1], ap[kk], b2, b3);
          }

        // dP^T = V dO^T.
        float pa[kBM / 8][4];
#pragma unroll
        for (int n = 0; n < kBM / 8; ++n) pa[n][0] = pa[n][1] = pa[n][2] = pa[n][3] = 0.f;
#pragma unroll 2
        for (int kk = 0; kk < D / 16; ++kk) {
          uint32_t a[4];
          ldmatrix_x4(smem_u32(Vs + (krow + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8), a[0],
                      a[1], a[2], a[3]);
#pragma unroll
          for (int np = 0; np < kBM / 16; ++np) {
            const int br = np * 16 + (lane & 7) + ((lane >> 4) << 3);
            const int bc = kk * 16 + ((lane >> 3) & 1) * 8;
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4(smem_u32(dOs + br * LDS + bc), b0, b1, b2, b3);
            mma_bf16(pa[2 * np], a, b0, b1);
            mma_bf16(pa[2 * np + 1], a, b2, b3);
          }
        }

        // dS^T = P^T o (dP^T - D), rounded to bf16: to shared memory (for dQ) and as the
        // A-fragments of dK += dS^T Q.
        uint32_t as[kBM / 16][4];
#pragma unroll
        for (int n = 0; n < kBM / 8; ++n) {
          const float2 d2 = *reinterpret_cast<const float2*>(dsm + n * 8 + 2 * tq);
          const uint32_t p01 = ap[n >> 1][(n & 1) * 2], p23 = ap[n >> 1][(n & 1) * 2 + 1];
          const float p[4] = {__uint_as_float(p01 << 16), __uint_as_float(p01 & 0xffff0000u),
                              __uint_as_float(p23 << 16), __uint_as_float(p23 & 0xffff0000u)};
#pragma unroll
          for (int e = 0; e < 4; ++e) pa[n][e] = p[e] * (pa[n][e] - (e & 1 ? d2.y : d2.x));
          as[n >> 1][(n & 1) * 2] = pack_bf16(pa[n][0], pa[n][1]);
          as[n >> 1][(n & 1) * 2 + 1] = pack_bf16(pa[n][2], pa[n][3]);
          uint16_t* ds_row = dSs + (krow + g) * LDSS + n * 8 + 2 * tq;
          *reinterpret_cast<uint32_t*>(ds_row) = as[n >> 1][(n & 1) * 2];
          *reinterpret_cast<uint32_t*>(ds_row + 8 * LDSS) = as[n >> 1][(n & 1) * 2 + 1];
        }
#pragma unroll
        for (int kk = 0; kk < kBM / 16; ++kk)
#pragma unroll
          for (int dp = 0; dp < D / 16; ++dp) {
            const int br = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            const int bc = dp * 16 + (lane >> 4) * 8;
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4_trans(smem_u32(Qs + br * LDS + bc), b0, b1, b2, b3);
            mma_bf16(dka[2 * dp], as[kk], b0, b1);
            mma_bf16(dka[2 * dp + 1], as[kk], b2, b3);
          }
      }
#ifdef MAMBALM_BWD_BULK
      if (threadIdx.x == 0 && pending) {  // the previous step's copy: complete by now
        release_turn(pending);
        pending = nullptr;
      }
#endif
      __syncthreads();  // dS^T complete (and, sm_90, the dQ buffer free)
      int* turn = sem + 1 + (int64_t(b) * Hq + h) * nqt + i;
#ifdef MAMBALM_BWD_BULK
      // Thread 0 reads the turn now, its latency hidden by the dQ product; the counter only
      // moves past jb by this item's own release, so a match stays true.
      bool my_turn = threadIdx.x == 0 && ld_acquire_gpu(turn) == jb;
#endif

      // dQ term of this key block: (64 queries x D) = dS (64 x 128 keys) K; warp w owns rows
      // 16 (w % 4) .. +15 and head dims (w / 4) D/2 .. +D/2.
      const int mq0 = 16 * (warp & 3), nd0 = (warp >> 2) * (D / 2);
      float qa[D / 16][4];
#pragma unroll
      for (int n = 0; n < D / 16; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) qa[n][e] = 0.f;
      if (!skip) {
#pragma unroll 2
        for (int kk = 0; kk < kBN / 16; ++kk) {
          uint32_t a[4];
          const int ar = kk * 16 + (lane & 7) + ((lane >> 4) << 3);
          const int ac = mq0 + ((lane >> 3) & 1) * 8;
          ldmatrix_x4_trans(smem_u32(dSs + ar * LDSS + ac), a[0], a[1], a[2], a[3]);
#pragma unroll
          for (int dp = 0; dp < D / 32; ++dp) {
            const int br = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
            const int bc = nd0 + dp * 16 + (lane >> 4) * 8;
            uint32_t b0, b1, b2, b3;
            ldmatrix_x4_trans(smem_u32(Ks + br * LDS + bc), b0, b1, b2, b3);
            mma_bf16(qa[2 * dp], a, b0, b1);
            mma_bf16(qa[2 * dp + 1], a, b2, b3);
          }
        }
      }

#ifdef MAMBALM_BWD_BULK
      // sm_90: the term to shared memory (scaled), then thread 0, in turn, has the copy engine
      // assign (key block 0) or add it into this tile of the accumulator; the turn is passed
      // on at the next step (release_turn), once the copy has completed.
      if (jb == 0 || !skip) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          float* row = dqs + (mq0 + g + 8 * half) * L::LDQ + nd0 + 2 * tq;
#pragma unroll
          for (int n = 0; n < D / 16; ++n)
            *reinterpret_cast<float2*>(row + n * 8) =
                make_float2(qa[n][2 * half] * scale, qa[n][2 * half + 1] * scale);
        }
        // generic-proxy shared-memory writes, read next by the copy engine (async proxy)
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        while (!my_turn) {
          __nanosleep(32);
          my_turn = ld_acquire_gpu(turn) == jb;
        }
        if (jb == 0 || !skip) {
          asm volatile("fence.proxy.async.global;\n" ::: "memory");
          float* dst = dq_accum + ((int64_t(b) * Hq + h) * nqt + i) * L::kTileFloats;
          if (jb == 0) bulk_store(dst, smem_u32(dqs), L::kTileFloats * 4);
          else bulk_add(dst, smem_u32(dqs), L::kTileFloats * 4);
        }
        pending = turn;
      }
#else
      // sm_80: every thread loads, adds and stores its part of dq in turn.
      if (threadIdx.x == 0)
        while (ld_acquire_gpu(turn) != jb) __nanosleep(32);
      __syncthreads();
      if (jb == 0 || !skip) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int r = q0 + mq0 + g + 8 * half;
          if (r < T) {
            float* row = dq + ((int64_t(b) * T + r) * Hq + h) * D + nd0 + 2 * tq;
#pragma unroll
            for (int n = 0; n < D / 16; ++n) {
              float2 x = make_float2(qa[n][2 * half] * scale, qa[n][2 * half + 1] * scale);
              if (jb != 0) {
                const float2 old = __ldcg(reinterpret_cast<const float2*>(row + n * 8));
                x.x += old.x;
                x.y += old.y;
              }
              *reinterpret_cast<float2*>(row + n * 8) = x;
            }
          }
        }
      }
      __syncthreads();  // every thread's dq stores precede the release below
      if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(turn, 1);
      }
#endif
    }
#ifdef MAMBALM_BWD_BULK
    if (threadIdx.x == 0 && pending) release_turn(pending);
#endif

    // dK (scaled) and dV of this warp's 16 keys.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int key = kb0 + krow + g + 8 * half;
      if (key < S) {
        const int64_t o = ((int64_t(b) * S + key) * Hkv + kvh) * D + 2 * tq;
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          *reinterpret_cast<float2*>(dk + o + n * 8) =
              make_float2(dka[n][2 * half] * scale, dka[n][2 * half + 1] * scale);
          *reinterpret_cast<float2*>(dv + o + n * 8) =
              make_float2(dva[n][2 * half], dva[n][2 * half + 1]);
        }
      }
    }
    cp_async_wait<0>();  // the last step's (empty) group, before shared memory is refilled
    __syncthreads();
  }
}

// dq [B, T, Hq, D] from the accumulator [B, Hq, nqt * 64, D + 8] (sm_90 path), float4-wise.
template <int D>
__global__ void dq_from_accum_kernel(const float* __restrict__ acc, float* __restrict__ dq, int B,
                                     int T, int Hq, int nqt) {
  constexpr int LDQ = BwdSmem<D>::LDQ;
  const int64_t n = int64_t(B) * T * Hq * (D / 4);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int c4 = int(idx % (D / 4));
    const int64_t row = idx / (D / 4);  // (b, t, h)
    const int h = int(row % Hq);
    const int t = int((row / Hq) % T);
    const int b = int(row / (int64_t(Hq) * T));
    const float4 x = *reinterpret_cast<const float4*>(
        acc + ((int64_t(b) * Hq + h) * nqt * kBM + t) * LDQ + c4 * 4);
    *reinterpret_cast<float4*>(dq + row * D + c4 * 4) = x;
  }
}

bool hopper_or_later() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    check_cuda(cudaGetDevice(&dev), "attention_backward", "device");
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev),
               "attention_backward", "compute capability");
    return major >= 9;
  }();
  return yes;
}

template <int D, bool DOC>
void launch_bwd(const Tensor& k, const Tensor& v, const DocView* docs, float scale,
                const FlashStats& st, Tensor& dq, float* dq_accum, Tensor& dk, Tensor& dv,
                int* sem, int B, int T, int S, int Hq, int Hkv) {
  const bool bulk = hopper_or_later();
  const int smem = BwdSmem<D>::bytes(bulk);
  static int per_sm = 0;  // blocks per SM, read once per process
  if (per_sm == 0) {
    check_cuda(cudaFuncSetAttribute(attn_bwd_kernel<D, DOC>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
               "attention_backward", "shared memory size");
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attn_bwd_kernel<D, DOC>,
                                                             kThreadsBwd, smem),
               "attention_backward", "occupancy");
    if (per_sm < 1) per_sm = 1;
  }
  const int nkb = (S + kBN - 1) / kBN, nqt = (T + kBM - 1) / kBM;
  const int64_t items = int64_t(nkb) * B * Hkv;
  const int grid = int(std::min<int64_t>(items, int64_t(per_sm) * sm_count()));
  // Groups of (batch, KV head) pairs whose key blocks together fill the grid.
  const int group = std::max(1, std::min(B * Hkv, grid / nkb));
  attn_bwd_kernel<D, DOC><<<grid, kThreadsBwd, smem>>>(
      k.data<uint16_t>(), v.data<uint16_t>(), st, docs ? *docs : DocView{}, dq.f32(), dq_accum,
      dk.f32(), dv.f32(), sem, scale, scale * kLog2e, B, T, S, Hq, Hkv, group);
  if (bulk) {
    check_launch("attention_backward");
    dq_from_accum_kernel<D><<<blocks_for(int64_t(B) * T * Hq * (D / 4)), kThreads>>>(
        dq_accum, dq.f32(), B, T, Hq, nqt);
  }
}

}  // namespace

size_t attention_backward_accum_floats(int64_t B, int64_t T, int64_t Hq, int64_t Dh) {
  if (!hopper_or_later()) return 0;
  return size_t(B * Hq * ((T + kBM - 1) / kBM) * kBM * (Dh + 8));
}

void attention_backward_flash(const Tensor& q, const Tensor& k, const Tensor& v,
                              const DocView* docs, float scale, const FlashStats& st, Tensor& dq,
                              float* dq_accum, Tensor& dk, Tensor& dv, int* sem) {
  const int B = int(q.dim(0)), T = int(q.dim(1)), Hq = int(q.dim(2)), Dh = int(q.dim(3));
  const int S = int(k.dim(1)), Hkv = int(k.dim(2));
  const int nqt = (T + kBM - 1) / kBM;
  // The claim counter and the turn counters start at zero on every call.
  check_cuda(cudaMemsetAsync(sem, 0, (1 + size_t(B) * Hq * nqt) * sizeof(int)),
             "attention_backward", "turn counters");
#define MAMBALM_BWD(DD)                                                                    \
  do {                                                                                     \
    if (docs) launch_bwd<DD, true>(k, v, docs, scale, st, dq, dq_accum, dk, dv, sem, B, T, S, Hq, Hkv); \
    else launch_bwd<DD, false>(k, v, docs, scale, st, dq, dq_accum, dk, dv, sem, B, T, S, Hq, Hkv);     \
  } while (0)
  if (Dh == 128) MAMBALM_BWD(128);
  else if (Dh == 64) MAMBALM_BWD(64);
  else fail("op attention_backward (cuda)",
            "tensor-core backward: head dim " + std::to_string(Dh) + ", not 64 or 128");
#undef MAMBALM_BWD
}

}  // namespace mambalm::ops::cuda
