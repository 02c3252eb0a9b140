// Mamba-2 SSD on CUDA. ssd_sequential keeps the recurrent state in registers and walks time in
// order (lanes of a warp split the state dimension N and combine with shuffles): the decode path
// (T = 1) and the fallback for shapes the chunked kernels do not tile. ssd_chunked is the prefill
// path: the chunked SSD algorithm in four kernels whose matrix products run on the tensor cores
// (bf16 or TF32 mma.sync, fp32 accumulation), with cumulative decays and the state passing in fp32.
// Document ids (seq_idx) reset the state at each document start: the recurrence sets that step's
// decay to zero; the chunked kernels count the starts inside each chunk (seg_i, the number of
// starts at local positions <= i) and zero every decay that spans one (intra-chunk pairs with
// seg_i != seg_j, the entering state's reach where seg_i > 0, a token's reach into the chunk's
// final state where seg_j != seg_last, the chunk decay where seg_last > 0), as
// ops/cpu/ssd_backward.cpp does. The backward is in ssd_backward.cu.
#include <cuda_runtime.h>

#include <cstdint>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/ptx.cuh"
#include "ops/cuda/ssd_backward.cuh"  // the staged tile helpers (ssd_bw::tile_mma_op, run_stages)

namespace mambalm::ops::cuda {

namespace {

constexpr int kWarps = 8;          // warps per block in the scans
constexpr int kRowsPerWarp = 8;    // SSD rows of P per warp: a block covers 64 rows of P

// SSD, per (b, h) and block of 64 rows of P. Lane owns state columns n = lane + 32 k, k < NK;
// warp w owns rows p = p0 + w + 8 r. Per step: S = exp(dt A) S + dt x B^T; y = S C + D x.
// kDocs: seq (I32 [B, T]) marks document starts, where the decay is zero (the state restarts).
// XT: x, B and C in fp32, or bf16 (mixed-precision training's conv writes them so).
template <int NK, bool kDocs, class XT, class YT>
__global__ void __launch_bounds__(kWarps * 32)
ssd_recurrence_kernel(const XT* __restrict__ x, const float* __restrict__ dt,
                      const float* __restrict__ A, const XT* __restrict__ Bm,
                      const XT* __restrict__ Cm, const float* __restrict__ D,
                      const int32_t* __restrict__ seq, float* state, YT* __restrict__ y, int T, int H,
                      int P, int G, int N) {
  const int bh = blockIdx.x;
  const int b = bh / H, h = bh % H;
  const int g = h / (H / G);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int p0 = blockIdx.y * (kWarps * kRowsPerWarp);
  float S[kRowsPerWarp][NK];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int p = p0 + warp + kWarps * r;
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int n = lane + 32 * k;
      S[r][k] = (state && p < P && n < N) ? state[((int64_t(b) * H + h) * P + p) * N + n] : 0.0f;
    }
  }
  const float Ah = A[h];
  const float Dh = D ? D[h] : 0.0f;
  for (int t = 0; t < T; ++t) {
    const int64_t bt = int64_t(b) * T + t;
    const float dtv = dt[bt * H + h];
    float decay = expf(dtv * Ah);
    if (kDocs && t > 0 && seq[bt] != seq[bt - 1]) decay = 0.f;
    float Bn[NK], Cn[NK];
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int n = lane + 32 * k;
      Bn[k] = n < N ? as_float(Bm[(bt * G + g) * N + n]) : 0.0f;
      Cn[k] = n < N ? as_float(Cm[(bt * G + g) * N + n]) : 0.0f;
    }
    const XT* xr = x + (bt * H + h) * P;
    YT* yr = y + (bt * H + h) * P;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int p = p0 + warp + kWarps * r;
      if (p >= P) break;  // warp-uniform
      const float xv = as_float(xr[p]);
      const float coef = dtv * xv;
      float acc = 0.0f;
#pragma unroll
      for (int k = 0; k < NK; ++k) {
        const float s = decay * S[r][k] + coef * Bn[k];
        S[r][k] = s;
        acc += s * Cn[k];
      }
      acc = warp_sum(acc);
      if (lane == 0) store_float(yr + p, acc + Dh * xv);
    }
  }
  if (state) {
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int p = p0 + warp + kWarps * r;
#pragma unroll
      for (int k = 0; k < NK; ++k) {
        const int n = lane + 32 * k;
        if (p < P && n < N) state[((int64_t(b) * H + h) * P + p) * N + n] = S[r][k];
      }
    }
  }
}


}  // namespace

namespace {

// Calls f(x, Bm, Cm) with the three inputs' data as const float* or const __nv_bfloat16* (they
// share one dtype: the dispatch checks).
template <class F>
void with_inputs(const Tensor& x, const Tensor& Bm, const Tensor& Cm, F f) {
  if (x.dtype() == DType::BF16) f(x.data<__nv_bfloat16>(), Bm.data<__nv_bfloat16>(), Cm.data<__nv_bfloat16>());
  else f(x.f32(), Bm.f32(), Cm.f32());
}

// The register recurrence, with document resets when seq_idx is given.
void ssd_recurrence(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                    const Tensor* D, const Tensor* seq_idx, Tensor* state, Tensor& y) {
  const int64_t Bsz = x.dim(0), T = x.dim(1), H = x.dim(2), P = x.dim(3);
  const int64_t G = Bm.dim(2), N = Bm.dim(3);
  if (Bsz * H * P == 0) return;
  const dim3 grid(unsigned(Bsz * H), unsigned((P + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp)));
  const float* Dp = D ? D->f32() : nullptr;
  const int32_t* sq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  float* sp = state ? state->f32() : nullptr;
  auto launch = [&](const auto* xp, const auto* bp, const auto* cp, auto* yp) {
    auto go = [&](auto nk) {
      constexpr int NK = decltype(nk)::value;
      using XT = std::remove_cv_t<std::remove_pointer_t<decltype(xp)>>;
      using YT = std::remove_pointer_t<decltype(yp)>;
      if (sq)
        ssd_recurrence_kernel<NK, true, XT, YT><<<grid, kWarps * 32>>>(xp, dt.f32(), A.f32(), bp, cp, Dp, sq, sp, yp,
                                                                       int(T), int(H), int(P), int(G), int(N));
      else
        ssd_recurrence_kernel<NK, false, XT, YT><<<grid, kWarps * 32>>>(xp, dt.f32(), A.f32(), bp, cp, Dp, nullptr, sp,
                                                                        yp, int(T), int(H), int(P), int(G), int(N));
    };
    switch (lanes_k(N, "ssd")) {
      case 1: go(std::integral_constant<int, 1>{}); break;
      case 2: go(std::integral_constant<int, 2>{}); break;
      case 4: go(std::integral_constant<int, 4>{}); break;
      default: go(std::integral_constant<int, 8>{}); break;
    }
  };
  with_inputs(x, Bm, Cm, [&](const auto* xp, const auto* bp, const auto* cp) {
    if (y.dtype() == DType::BF16) launch(xp, bp, cp, y.data<__nv_bfloat16>());
    else launch(xp, bp, cp, y.f32());
  });
  check_launch("ssd");
}

}  // namespace

void ssd_sequential(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, Tensor* state, Tensor& y) {
  ssd_recurrence(x, dt, A, Bm, Cm, D, nullptr, state, y);
}

namespace {

// ---- chunked SSD on the tensor cores ---------------------------------------------------------
// For chunk c of length L (the last may be shorter), head h, group g, with the cumulative decay
// cum_i = sum_{k<=i} dt_k A_h (local to the chunk, fp32) and S_c the state entering the chunk:
//   (1) chunk_state:  Z_c[p, n] = sum_j exp(cum_{L-1} - cum_j) dt_j x_j[p] B_j[n]    (per head)
//   (2) cb:           CB_c[i, j] = C_i . B_j  for j-tiles <= i-tiles                  (per group)
//   (3) state_pass:   S_0 = initial state (or 0), S_{c+1} = exp(cum_{L-1}) S_c + Z_c;
//                     the buffer of Z_c is overwritten with S_c, the last S is the final state
//   (4) chunk_scan:   y_i[p] = exp(cum_i) C_i . S_c[p, :]
//                            + sum_{j<=i} CB_c[i, j] exp(cum_i - cum_j) dt_j x_j[p] + D x_i[p]
// Products (2) and (4) are 64x64 output tiles per block of 4 warps (each warp 32x32), K in steps
// of 32 staged through two shared-memory buffers; the next step's global loads are issued before
// the current step's mma so that they overlap. The fast products (Fp32Products::Tf32, the bf16
// models' choice) round the operands to bf16 as they are written to shared memory and multiply
// them as m16n8k16 bf16 mma.sync with ldmatrix fragment loads (as mamba_ssm's kernels multiply
// bf16 operands); sums are fp32. With kSplit (Fp32Products::Exact) shared memory keeps the fp32
// bits and each product is three TF32 products of the operands' halves (ptx.cuh,
// mma_split_fragments): fp32-accurate, ~2x the time. Product (1) is a 64 x 128 tile of 8 warps on
// ssd_bw's helpers, with the same two operand formats.
// The chunk length Q is a multiple of 64 up to 256, P and N multiples of 64 (ssd_chunked checks).

constexpr int kTile = ssd_bw::kTile;  // 64: output tile rows and columns of a block
constexpr int kStep = ssd_bw::kKs;    // 32: K per shared-memory stage
constexpr int kGemmThreads = 128;     // 4 warps, 2 x 2 over the 64 x 64 tile, each 32 x 32
constexpr int kMaxChunk = 256;

// Accumulator fragment of one thread (ssd_bw's layout, warps 2 x 2): acc[mi][ni][e] is tile row
// wm + 16 mi + g + 8 (e >= 2), column wn + 8 ni + 2 t + (e & 1) (g = lane / 4, t = lane % 4).
using Acc = ssd_bw::Acc;

// One operand stage in shared memory, in ssd_bw's formats: fp32 bits with kSplit (rows of kSMK
// words, [64][32], or kSKM, [32][64]), otherwise bf16 (rows of kHMK or kSKM halves). A bf16 stage
// takes kTile * kHMK / 2 words, the larger of its two layouts.
static_assert(kTile * ssd_bw::kHMK >= kStep * ssd_bw::kSKM, "a bf16 [32][64] stage fits a [64][32] one");
template <bool kSplit>
__host__ __device__ constexpr int stage_words() { return kSplit ? ssd_bw::kWords64 : kTile * ssd_bw::kHMK / 2; }
// Elements (fp32 words or bf16 halves) of one stage: the element offset of the second buffer.
template <bool kSplit>
__host__ __device__ constexpr int stage_elems() { return kSplit ? stage_words<true>() : 2 * stage_words<false>(); }
// The element index of (row, col) in a stage: [64][32] (kKMajor false) or [32][64].
template <bool kSplit, bool kKMajor>
__device__ __forceinline__ int stage_at(int row, int col) {
  return row * (kKMajor ? ssd_bw::kSKM : ssd_bw::smk<kSplit>()) + col;
}

// A K-stage loop on two buffers per operand (As and Bs hold two stages of stage_words each):
// load(s) fetches stage s from global memory into registers, store(s, buf) writes them (scaled,
// as operands) to buffer buf. Stage s+1 is fetched before stage s is multiplied and stored after
// it, one barrier per stage (ssd_bw::run_stages). Ends with a barrier.
template <bool kAKMajor, bool kBKMajor, bool kSplit, class Load, class Store>
__device__ __forceinline__ void gemm_stages(int stages, Load load, Store store, const uint32_t* As,
                                            const uint32_t* Bs, Acc& acc) {
  ssd_bw::run_stages(stages, load, store, [&](int, int buf) {
    const uint32_t* a = As + buf * stage_words<kSplit>();
    const uint32_t* b = Bs + buf * stage_words<kSplit>();
    ssd_bw::tile_mma_op<2, 4, kAKMajor, kBKMajor, kSplit>(a, b, acc);
  });
}

// Element r (0..3) of this thread's share of a 64 x 32 tile (row-major in global memory, 16-byte
// pieces): row and first column.
__device__ __forceinline__ void piece_64x32(int r, int& row, int& col) {
  const int idx = int(threadIdx.x) + kGemmThreads * r;
  row = idx >> 3;
  col = (idx & 7) * 4;
}
// The same for a 32 x 64 tile.
__device__ __forceinline__ void piece_32x64(int r, int& row, int& col) {
  const int idx = int(threadIdx.x) + kGemmThreads * r;
  row = idx >> 4;
  col = (idx & 15) * 4;
}

// Four consecutive elements of a stage row (at = stage_at(...), a multiple of 4) as operands:
// fp32 bits with kSplit, else bf16 (round to nearest even).
template <bool kSplit>
__device__ __forceinline__ void store4(uint32_t* buf, int at, float a, float b, float c, float d) {
  if constexpr (kSplit) {
    *reinterpret_cast<uint4*>(buf + at) = make_uint4(__float_as_uint(a), __float_as_uint(b), __float_as_uint(c),
                                                     __float_as_uint(d));
  } else {
    *reinterpret_cast<uint2*>(reinterpret_cast<__nv_bfloat16*>(buf) + at) = pack_bf16x4(a, b, c, d);
  }
}

// cum[i] = sum_{k<=i} dt_k A for i < L, cum[i] = cum[L-1] for L <= i < Q; dts[i] = dt_i (0 past L).
// dtp points at dt of the chunk's first token for this head (stride H). The head's first warp
// scans (gt: the thread's index among the head's threads); ends with a block barrier.
__device__ void chunk_cumsum(const float* dtp, int H, float Ah, int L, int Q, float* cum, float* dts, int gt) {
  if (gt < 32) {
    const int lane = gt;
    const int per = (Q + 31) / 32;  // <= 8 consecutive entries per lane
    float v[8];
    float run = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = lane * per + e;
      const float d = (e < per && i < L) ? dtp[int64_t(i) * H] : 0.0f;
      if (e < per && i < Q) dts[i] = d;
      run += d * Ah;
      v[e] = run;
    }
    float incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float n = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += n;
    }
    const float excl = incl - run;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = lane * per + e;
      if (e < per && i < Q) cum[i] = excl + v[e];
    }
  }
  __syncthreads();
}

// seg[i] (i < Q) = the number of document starts at local positions <= i of the chunk (position 0
// counts when the chunk does not start the row; positions past L repeat seg[L-1]). seq points at
// the row's document ids. The head's second warp (gt as in chunk_cumsum), alongside
// chunk_cumsum's first, whose closing barrier it shares.
__device__ void chunk_segments(const int32_t* seq, int c0, int L, int Q, int* seg, int gt) {
  if (gt >= 32 && gt < 64) {
    const int lane = gt - 32;
    const int per = (Q + 31) / 32;
    int f[8];
    int run = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = lane * per + e, t = c0 + i;
      if (e < per && i < L && t > 0 && seq[t] != seq[t - 1]) ++run;
      f[e] = run;
    }
    int incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += n;
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = lane * per + e;
      if (e < per && i < Q) seg[i] = incl - run + f[e];
    }
  }
}

struct SsdDims {
  int T, H, P, G, N, Q, nc;  // nc = chunks per sequence
};

// (1) grid (H, nc * (P/64) * (N/TN), B), 256 threads (warps 2 x 4; TN = 128 columns of N, or 64
// when N is not a multiple of 128): the chunk's local state Z_c, tile [p0:+64, n0:+TN]; the
// first tile's block also writes the chunk's cum and dt ([B][H][nc][Q]) for the chunk scan (4);
// A = (w_j x_j[p])^T (K-major), B = B_j[n] (K-major), K = the chunk's tokens, on two
// shared-memory buffers (ssd_bw::run_stages). A 128-column tile reads each x stage once for all of
// N at the 8B shape, where 64 x 64 tiles (single-buffered, 4 warps) read it twice. Measured on
// the H200 beside that version (bench/cuda/ssd.cpp, two rounds): chunk 256, B 2, L 4096
// 0.261 / 0.257 -> 0.250 / 0.246 ms; B 1, L 16384 0.501 / 0.502 -> 0.475 / 0.475 ms; chunk 128
// unchanged (0.296 / 0.298 -> 0.303 / 0.295).
// kDocs: only the tokens of the chunk's last document reach Z_c; the chunk decay is zero when the
// chunk holds a document start.
constexpr int kStateThreads = 256;
template <int NI>
__host__ __device__ constexpr int state_b_words() { return ssd_bw::kKs * ssd_bw::skn<4, NI>(); }
template <int NI>
__host__ __device__ constexpr int state_smem_bytes() {  // As[2] (32 x 64), Bs[2] (32 x TN), cum, w, seg
  return (2 * ssd_bw::kWords64 + 2 * state_b_words<NI>() + 3 * kMaxChunk) * 4;
}

template <int NI, bool kDocs, bool kSplit, class XT>
__global__ void __launch_bounds__(kStateThreads, 2)
ssd_chunk_state_kernel(const XT* __restrict__ x, const float* __restrict__ dt,
                       const float* __restrict__ A, const XT* __restrict__ Bm,
                       const int32_t* __restrict__ seq, float* __restrict__ states,
                       float* __restrict__ chunk_decay, float* __restrict__ cum_out,
                       float* __restrict__ dt_out, SsdDims d) {
  namespace bw = ssd_bw;
  constexpr int TN = 32 * NI;
  constexpr int kBWords = state_b_words<NI>();
  constexpr int kSKN = bw::skn<4, NI>();
  constexpr int kAPieces = kTile * bw::kKs / 4 / kStateThreads, kBPieces = TN * bw::kKs / 4 / kStateThreads;
  extern __shared__ __align__(16) unsigned char ssd_smem[];
  uint32_t* As = reinterpret_cast<uint32_t*>(ssd_smem);  // [2][32][kSKM]
  uint32_t* Bs = As + 2 * bw::kWords64;                  // [2][32][kSKN]
  float* cum = reinterpret_cast<float*>(Bs + 2 * kBWords);
  float* w = cum + kMaxChunk;
  int* seg = reinterpret_cast<int*>(w + kMaxChunk);
  const int tid = threadIdx.x, h = blockIdx.x, b = blockIdx.z;
  const int ntn = d.N / TN, tiles = (d.P / kTile) * ntn;
  const int c = blockIdx.y / tiles, tile = blockIdx.y % tiles;
  const int p0 = (tile / ntn) * kTile, n0 = (tile % ntn) * TN;
  const int g = h / (d.H / d.G);
  const int c0 = c * d.Q, L = min(d.Q, d.T - c0);
  const int64_t bt0 = int64_t(b) * d.T + c0;
  if (kDocs) chunk_segments(seq + int64_t(b) * d.T, c0, L, d.Q, seg, tid);
  chunk_cumsum(dt + bt0 * d.H + h, d.H, A[h], L, d.Q, cum, w, tid);
  const float last = cum[L - 1];
  if (tile == 0) {  // for the chunk scan (4), which would otherwise scan dt again in every block
    const int64_t v = ((int64_t(b) * d.H + h) * d.nc + c) * d.Q;
    for (int j = tid; j < d.Q; j += kStateThreads) {
      cum_out[v + j] = cum[j];
      dt_out[v + j] = w[j];  // dt_j, before w is formed from it below (the same thread's j)
    }
  }
  // w_j = exp(cum_last - cum_j) dt_j (0 past L, where chunk_cumsum left dt_j = 0)
  if (kDocs) {
    const int seg_last = seg[L - 1];
    for (int j = tid; j < L; j += kStateThreads)
      w[j] = seg[j] == seg_last ? __expf(last - cum[j]) * w[j] : 0.0f;
    if (tid == 0 && tile == 0)
      chunk_decay[(int64_t(b) * d.H + h) * d.nc + c] = seg_last == 0 ? expf(last) : 0.0f;
  } else {
    for (int j = tid; j < L; j += kStateThreads) w[j] = __expf(last - cum[j]) * w[j];
    if (tid == 0 && tile == 0) chunk_decay[(int64_t(b) * d.H + h) * d.nc + c] = expf(last);
  }
  __syncthreads();

  const int64_t ldx = int64_t(d.H) * d.P, ldb = int64_t(d.G) * d.N;
  const XT* xb = x + (bt0 * d.H + h) * d.P + p0;
  const XT* Bb = Bm + (bt0 * d.G + g) * d.N + n0;
  float4 ra[kAPieces], rb[kBPieces];
  bw::AccT<NI> acc = {};
  auto load = [&](int s) {
#pragma unroll
    for (int r = 0; r < kAPieces; ++r) {
      int row, col;
      bw::piece<kTile, kStateThreads>(r, row, col);
      const int j = s * bw::kKs + row;
      ra[r] = bw::ld_scratch(xb + j * ldx + col, j < L);
    }
#pragma unroll
    for (int r = 0; r < kBPieces; ++r) {
      int row, col;
      bw::piece<TN, kStateThreads>(r, row, col);
      const int j = s * bw::kKs + row;
      rb[r] = bw::ld_scratch(Bb + j * ldb + col, j < L);
    }
  };
  auto store = [&](int s, int buf) {
#pragma unroll
    for (int r = 0; r < kAPieces; ++r) {
      int row, col;
      bw::piece<kTile, kStateThreads>(r, row, col);
      bw::st_op<kSplit>(As + buf * bw::kWords64, row * bw::kSKM + col, ra[r], w[s * bw::kKs + row]);
    }
#pragma unroll
    for (int r = 0; r < kBPieces; ++r) {
      int row, col;
      bw::piece<TN, kStateThreads>(r, row, col);
      bw::st_op<kSplit>(Bs + buf * kBWords, row * kSKN + col, rb[r], 1.f);
    }
  };
  auto compute = [&](int, int buf) {
    bw::tile_mma_op<4, NI, true, true, kSplit>(As + buf * bw::kWords64, Bs + buf * kBWords, acc);
  };
  bw::run_stages((L + bw::kKs - 1) / bw::kKs, load, store, compute);

  const int lane = tid & 31;
  const int wm = bw::frag_wm<4>(), wn = bw::frag_wn<4, NI>();
  float* out = states + ((int64_t(b) * d.H + h) * d.nc + c) * int64_t(d.P) * d.N;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int p = p0 + wm + mi * 16 + (lane >> 2) + 8 * hf;
        const int n = n0 + wn + ni * 8 + 2 * (lane & 3);
        *reinterpret_cast<float2*>(out + int64_t(p) * d.N + n) =
            make_float2(acc[mi][ni][2 * hf], acc[mi][ni][2 * hf + 1]);
      }
}

// (2) grid ((Q/64)^2, nc * G, B): CB_c tile [i0:+64, j0:+64] for j0 <= i0 < L (other tiles are
// never read). A = C_i[n] (row-major), B(n, j) = B_j[n] (N-major), K = N.
template <bool kSplit, class XT>
__global__ void __launch_bounds__(kGemmThreads, 4)
ssd_cb_kernel(const XT* __restrict__ Bm, const XT* __restrict__ Cm, float* __restrict__ cb, SsdDims d) {
  __shared__ __align__(16) uint32_t As[2 * stage_words<kSplit>()], Bs[2 * stage_words<kSplit>()];
  const int nt = d.Q / kTile;
  const int it = blockIdx.x / nt, jt = blockIdx.x % nt;
  const int c = blockIdx.y / d.G, g = blockIdx.y % d.G, b = blockIdx.z;
  const int c0 = c * d.Q, L = min(d.Q, d.T - c0);
  const int i0 = it * kTile, j0 = jt * kTile;
  if (jt > it || i0 >= L) return;
  const int64_t bt0 = int64_t(b) * d.T + c0, ld = int64_t(d.G) * d.N;
  const XT* Cb = Cm + (bt0 * d.G + g) * d.N;
  const XT* Bb = Bm + (bt0 * d.G + g) * d.N;
  float4 ra[4], rb[4];
  Acc acc = {};
  auto load = [&](int s) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      int row, col;
      piece_64x32(r, row, col);
      const int k = s * kStep + col;
      ra[r] = ssd_bw::ld_scratch(Cb + (i0 + row) * ld + k, i0 + row < L);
      rb[r] = ssd_bw::ld_scratch(Bb + (j0 + row) * ld + k, j0 + row < L);
    }
  };
  auto store = [&](int, int buf) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      int row, col;
      piece_64x32(r, row, col);
      const int at = buf * stage_elems<kSplit>() + stage_at<kSplit, false>(row, col);
      store4<kSplit>(As, at, ra[r].x, ra[r].y, ra[r].z, ra[r].w);
      store4<kSplit>(Bs, at, rb[r].x, rb[r].y, rb[r].z, rb[r].w);
    }
  };
  gemm_stages<false, false, kSplit>(d.N / kStep, load, store, As, Bs, acc);

  const int lane = threadIdx.x & 31, warp = int(threadIdx.x >> 5);
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  float* out = cb + ((int64_t(b) * d.nc + c) * d.G + g) * int64_t(d.Q) * d.Q;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int hlf = 0; hlf < 2; ++hlf) {
        const int i = i0 + wm + mi * 16 + (lane >> 2) + 8 * hlf;
        const int j = j0 + wn + ni * 8 + 2 * (lane & 3);
        *reinterpret_cast<float2*>(out + int64_t(i) * d.Q + j) =
            make_float2(acc[mi][ni][2 * hlf], acc[mi][ni][2 * hlf + 1]);
      }
}

// (3) grid (ceil(P N / 1024), B H), 256 threads: four state elements per thread (16-byte
// accesses), chunks in order, fp32. The loads of a batch of chunks are issued before their stores
// so that they overlap. S_c goes in place of Z_c, or with kHalf (the bf16 products, whose chunk
// scan rounds S_c to bf16 as it stages it) to states16 as bf16, half the bytes to write here and
// to read in (4), the same operand bits.
constexpr int kPassThreads = 256;
constexpr int kPassBatch = 8;
template <bool kHalf>
__global__ void __launch_bounds__(kPassThreads)
ssd_state_pass_kernel(float* states, __nv_bfloat16* states16, const float* __restrict__ chunk_decay,
                      float* state_io, int nc, int64_t PN) {
  const int64_t e = int64_t(blockIdx.x) * kPassThreads + threadIdx.x;  // float4 index
  const int64_t PN4 = PN / 4;
  if (e >= PN4) return;
  const int64_t bh = blockIdx.y;
  float4* io = state_io ? reinterpret_cast<float4*>(state_io + bh * PN) + e : nullptr;
  float4 s = io ? *io : make_float4(0, 0, 0, 0);
  float4* z = reinterpret_cast<float4*>(states + bh * nc * PN) + e;
  uint2* z16 = kHalf ? reinterpret_cast<uint2*>(states16 + bh * nc * PN) + e : nullptr;
  const float* dec = chunk_decay + bh * nc;
  for (int c0 = 0; c0 < nc; c0 += kPassBatch) {
    float4 loc[kPassBatch];
#pragma unroll
    for (int k = 0; k < kPassBatch; ++k) loc[k] = c0 + k < nc ? z[(c0 + k) * PN4] : make_float4(0, 0, 0, 0);
#pragma unroll
    for (int k = 0; k < kPassBatch; ++k) {
      if (c0 + k < nc) {
        if (kHalf) z16[(c0 + k) * PN4] = pack_bf16x4(s.x, s.y, s.z, s.w);
        else z[(c0 + k) * PN4] = s;
        const float a = dec[c0 + k];
        s = make_float4(a * s.x + loc[k].x, a * s.y + loc[k].y, a * s.z + loc[k].z, a * s.w + loc[k].w);
      }
    }
  }
  if (io) *io = s;
}

// (4) grid (H, nc * (Q/64) * (P/64), B): y rows [i0:+64] of the chunk, columns [p0:+64]. cum and
// dt of the chunk's rows up to i0 + 63 come from (1).
// Part 1 (when the entering state can be nonzero): acc = C_i . S_c[p, :] (A = C row-major,
// B(n, p) = S_c[p][n], N-major; the bf16 products copy S_c's bf16 rows from (3) into shared
// memory as they are, cp.async), then row i scaled by exp(cum_i). Part 2: acc += M X with
// M[i, j] = CB[i, j] exp(cum_i - cum_j) dt_j for j <= i (row-major), X = x_j[p] (K-major), over
// the j-stages up to the tile's diagonal. Then y = acc + D x.
// kDocs: exp(cum_i) is zero for rows after a document start in the chunk (seg_i > 0), and the
// intra-chunk decay is zero between tokens of different documents.
template <bool kDocs, bool kSplit, class XT, class YT>
__global__ void __launch_bounds__(kGemmThreads, 4)
ssd_chunk_scan_kernel(const XT* __restrict__ x, const XT* __restrict__ Cm,
                      const float* __restrict__ D, const int32_t* __restrict__ seq,
                      const float* __restrict__ states, const __nv_bfloat16* __restrict__ states16,
                      const float* __restrict__ cumq, const float* __restrict__ dtq,
                      const float* __restrict__ cb, bool state_in, YT* __restrict__ y, SsdDims d) {
  __shared__ __align__(16) uint32_t As[2 * stage_words<kSplit>()], Bs[2 * stage_words<kSplit>()];
  __shared__ float cum[kMaxChunk], dts[kMaxChunk];
  __shared__ int seg[kDocs ? kMaxChunk : 1];
  const int h = blockIdx.x, b = blockIdx.z;
  const int nt = d.Q / kTile, npt = d.P / kTile;
  const int c = blockIdx.y / (nt * npt), rem = blockIdx.y % (nt * npt);
  const int i0 = (rem / npt) * kTile, p0 = (rem % npt) * kTile;
  const int g = h / (d.H / d.G);
  const int c0 = c * d.Q, L = min(d.Q, d.T - c0);
  if (i0 >= L) return;
  const int64_t bt0 = int64_t(b) * d.T + c0;
  if (kDocs) chunk_segments(seq + int64_t(b) * d.T, c0, L, d.Q, seg, int(threadIdx.x));
  {
    const int64_t v = ((int64_t(b) * d.H + h) * d.nc + c) * d.Q;
    const int j = 4 * int(threadIdx.x);
    if (j < i0 + kTile) {
      *reinterpret_cast<float4*>(cum + j) = ssd_bw::ldg4(cumq + v + j);
      *reinterpret_cast<float4*>(dts + j) = ssd_bw::ldg4(dtq + v + j);
    }
    __syncthreads();
  }
  // The bf16 products factor the decay: exp(cum_i - cum_j) = a_i b_j with a_i = exp(cum_i -
  // cum_i0) over the tile's rows and b_j = exp(cum_i0 - cum_j), so that no exp is left in the
  // per-element staging of M: b_j dt_j scales x's row j as it is staged (dts holds it from here
  // on), a_i the output row at the end, and CB goes in as it is, masked only in the stages that
  // reach the diagonal. Taken while the tile's own decay span keeps the factors in range (a_i >=
  // e^-kFactorSpan, b_j <= e^kFactorSpan); a steeper tile multiplies each element by its own exp.
  const bool factored = !kSplit && ssd_bw::tile_factors(cum, i0, L);
  if (factored) {
    for (int j = int(threadIdx.x); j < i0 + kTile; j += kGemmThreads) dts[j] *= __expf(cum[i0] - cum[j]);
    __syncthreads();
  }

  const int lane = threadIdx.x & 31, warp = int(threadIdx.x >> 5);
  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  const int64_t ldx = int64_t(d.H) * d.P, ldc = int64_t(d.G) * d.N;
  float4 ra[4], rb[4];
  Acc acc = {};

  if (state_in || c > 0) {
    const XT* Cb = Cm + (bt0 * d.G + g) * d.N;
    const int64_t s_off = ((int64_t(b) * d.H + h) * d.nc + c) * int64_t(d.P) * d.N;  // S_c's [P][N]
    auto load = [&](int s) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        int row, col;
        piece_64x32(r, row, col);
        const int k = s * kStep + col;
        ra[r] = ssd_bw::ld_scratch(Cb + (i0 + row) * ldc + k, i0 + row < L);
        if constexpr (kSplit) rb[r] = ssd_bw::ldg4(states + s_off + int64_t(p0 + row) * d.N + k);
      }
      if constexpr (!kSplit)  // stage s's bf16 rows of S_c into buffer s & 1
        ssd_bw::cp_bf16_stage_64x32(Bs + (s & 1) * stage_words<false>(), states16 + s_off, p0, d.P - p0, s * kStep, d.N);
    };
    auto store = [&](int, int buf) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        int row, col;
        piece_64x32(r, row, col);
        const int at = buf * stage_elems<kSplit>() + stage_at<kSplit, false>(row, col);
        store4<kSplit>(As, at, ra[r].x, ra[r].y, ra[r].z, ra[r].w);
        if constexpr (kSplit) store4<kSplit>(Bs, at, rb[r].x, rb[r].y, rb[r].z, rb[r].w);
      }
      if constexpr (!kSplit) cp_async_wait<0>();  // this thread's copies land before the stage's barrier
    };
    gemm_stages<false, false, kSplit>(d.N / kStep, load, store, As, Bs, acc);
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int hlf = 0; hlf < 2; ++hlf) {
        const int i = i0 + wm + mi * 16 + (lane >> 2) + 8 * hlf;
        const float e = (!kDocs || seg[i] == 0) ? __expf(factored ? cum[i0] : cum[i]) : 0.0f;  // a_i comes last
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          acc[mi][ni][2 * hlf] *= e;
          acc[mi][ni][2 * hlf + 1] *= e;
        }
      }
  }

  {
    const float* cbb = cb + ((int64_t(b) * d.nc + c) * d.G + g) * int64_t(d.Q) * d.Q +
                       int64_t(i0) * d.Q;
    const XT* xb = x + (bt0 * d.H + h) * d.P + p0;
    auto load = [&](int s) {
      const int j0 = s * kStep;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        int row, col;
        piece_64x32(r, row, col);
        ra[r] = i0 + row < L ? ssd_bw::ldg4(cbb + int64_t(row) * d.Q + j0 + col) : make_float4(0, 0, 0, 0);
        piece_32x64(r, row, col);
        rb[r] = ssd_bw::ld_scratch(xb + (j0 + row) * ldx + col, j0 + row < L);
      }
    };
    auto store = [&](int s, int buf) {
      const int j0 = s * kStep, base = buf * stage_elems<kSplit>();
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        int row, col;
        piece_64x32(r, row, col);
        const int i = i0 + row;
        float m[4] = {ra[r].x, ra[r].y, ra[r].z, ra[r].w};
        if (factored) {  // rows past L are zero as loaded; below the diagonal every j <= i
          if (kDocs || j0 + kStep > i0) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              const int j = j0 + col + q;
              if (j > i || (kDocs && seg[i] != seg[j])) m[q] = 0.0f;
            }
          }
        } else {
          const float ci = cum[i];
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const int j = j0 + col + q;
            m[q] = (j <= i && i < L && (!kDocs || seg[i] == seg[j])) ? m[q] * __expf(ci - cum[j]) * dts[j] : 0.0f;
          }
        }
        store4<kSplit>(As, base + stage_at<kSplit, false>(row, col), m[0], m[1], m[2], m[3]);
        piece_32x64(r, row, col);
        const float bj = factored ? dts[j0 + row] : 1.0f;
        store4<kSplit>(Bs, base + stage_at<kSplit, true>(row, col), bj * rb[r].x, bj * rb[r].y, bj * rb[r].z,
                       bj * rb[r].w);
      }
    };
    const int jend = min(i0 + kTile, L);
    gemm_stages<false, true, kSplit>((jend + kStep - 1) / kStep, load, store, As, Bs, acc);
  }

  const float Dh = D ? D[h] : 0.0f;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hlf = 0; hlf < 2; ++hlf) {
      const int i = i0 + wm + mi * 16 + (lane >> 2) + 8 * hlf;
      if (i >= L) continue;
      const int64_t row = (bt0 + i) * ldx + int64_t(h) * d.P;
      const float ai = factored ? __expf(cum[i] - cum[i0]) : 1.0f;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int p = p0 + wn + ni * 8 + 2 * (lane & 3);
        const float2 xv = ssd_bw::ldg2(x + row + p);
        const float y0 = ai * acc[mi][ni][2 * hlf] + Dh * xv.x, y1 = ai * acc[mi][ni][2 * hlf + 1] + Dh * xv.y;
        if constexpr (std::is_same_v<YT, float>) *reinterpret_cast<float2*>(y + row + p) = make_float2(y0, y1);
        else *reinterpret_cast<__nv_bfloat162*>(y + row + p) = __floats2bfloat162_rn(y0, y1);
      }
    }
}

// Device scratch of the chunked path (chunk states, CB blocks, chunk decays), grown only when a
// call needs more than any earlier one, never shrunk: steady-state inference (same or smaller
// shapes) never allocates. Growing frees the old block first (cudaFree waits for queued work) and
// cannot happen during CUDA-graph capture: warm up with the largest shape before capturing.
float* ssd_scratch(size_t floats) {
  static GrowOnlyBuffer buf;
  return buf.get<float>(floats, "ssd_chunked");
}

// Raises the dynamic shared-memory limits of kernel (1) (56 KB at TN = 128) once.
template <class Kernel>
void allow_smem(Kernel kernel, int bytes) {
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), "ssd_chunked",
             "cudaFuncSetAttribute");
}
template <bool kDocs, bool kSplit>
void allow_state_smem() {
  allow_smem(ssd_chunk_state_kernel<4, kDocs, kSplit, float>, state_smem_bytes<4>());
  allow_smem(ssd_chunk_state_kernel<2, kDocs, kSplit, float>, state_smem_bytes<2>());
  allow_smem(ssd_chunk_state_kernel<4, kDocs, kSplit, __nv_bfloat16>, state_smem_bytes<4>());
  allow_smem(ssd_chunk_state_kernel<2, kDocs, kSplit, __nv_bfloat16>, state_smem_bytes<2>());
}
void allow_state_smem_once() {
  static bool done = false;
  if (done) return;
  allow_state_smem<false, false>();
  allow_state_smem<true, false>();
  allow_state_smem<false, true>();
  allow_state_smem<true, true>();
  done = true;
}

// Calls f(docs, split) with the two flags as std::bool_constant values (one kernel instantiation
// per combination).
template <class F>
void with_variant(bool docs, bool split, F f) {
  if (docs) {
    if (split) f(std::true_type{}, std::true_type{});
    else f(std::true_type{}, std::false_type{});
  } else if (split) {
    f(std::false_type{}, std::true_type{});
  } else {
    f(std::false_type{}, std::false_type{});
  }
}


// Shortest T sent to the chunked kernels; below it the recurrence (T sequential steps of a few
// microseconds) beats four launches. Measured (H200, B 2, 8B heads): T 8: recurrence 0.029 ms,
// chunked 0.041; T 16: 0.048 vs 0.041; T 64: 0.166 vs 0.051 (bench/cuda/ssd.cpp, "short T").
constexpr int64_t kChunkedMinT = 16;

}  // namespace

namespace {

// Runs kernels (1)-(4), with document resets when seq_idx is given; stage_ms (optional, 4
// entries) receives each kernel's time in ms (events around each launch; for benchmarks only).
// False when the shape is not
// tiled here.
bool ssd_chunked_tc(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                    const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, Tensor* state, Tensor& y,
                    Fp32Products products, float* stage_ms) {
  const bool split = products == Fp32Products::Exact;
  const int64_t Bsz = x.dim(0), T = x.dim(1), H = x.dim(2), P = x.dim(3);
  const int64_t G = Bm.dim(2), N = Bm.dim(3);
  if (Bsz == 0 || T == 0 || H == 0) return true;
  if (P % kTile || N % kTile || G < 1 || H % G) return false;
  for (const void* p : {x.raw(), Bm.raw(), Cm.raw(), y.raw()})
    if (!aligned16(p)) return false;
  if (state && !aligned16(state->raw())) return false;
  const int64_t Q = ssd_bw::kernel_chunk(chunk_size);
  const int64_t nc = (T + Q - 1) / Q;
  if (Bsz > 65535 || nc * (Q / kTile) * (P / kTile) > 65535 || nc * (P / kTile) * (N / kTile) > 65535 ||
      nc * G > 65535 || Bsz * H > 65535 || T > INT32_MAX / 2)
    return false;
  const int64_t PN = P * N;
  // Scratch, each part a multiple of 4 floats (16-byte aligned): Z_c (then S_c with the split
  // products), CB, the chunk decays, cum and dt per chunk, and S_c in bf16 (the bf16 products).
  const int64_t n_states = Bsz * H * nc * PN, n_cb = Bsz * nc * G * Q * Q, n_decay = (Bsz * H * nc + 3) / 4 * 4;
  const int64_t n_cum = Bsz * H * nc * Q, n_states16 = split ? 0 : n_states / 2;
  float* scratch = ssd_scratch(size_t(n_states + n_cb + n_decay + 2 * n_cum + n_states16));
  float* states = scratch;
  float* cbuf = states + n_states;
  float* decay = cbuf + n_cb;
  float* cumq = decay + n_decay;
  float* dtq = cumq + n_cum;
  auto* states16 = split ? nullptr : reinterpret_cast<__nv_bfloat16*>(dtq + n_cum);
  const SsdDims d{int(T), int(H), int(P), int(G), int(N), int(Q), int(nc)};
  allow_state_smem_once();
  float* sp = state ? state->f32() : nullptr;
  const int32_t* sq = seq_idx ? seq_idx->data<int32_t>() : nullptr;

  cudaEvent_t ev[5];
  if (stage_ms)
    for (auto& e : ev) check_cuda(cudaEventCreate(&e), "ssd_chunked", "cudaEventCreate");
  auto mark = [&](int k) {
    if (stage_ms) check_cuda(cudaEventRecord(ev[k]), "ssd_chunked", "cudaEventRecord");
  };
  mark(0);
  const int NI = N % 128 == 0 ? 4 : 2;  // kernel (1)'s tile: 64 x 32 NI
  const dim3 grid1(unsigned(H), unsigned(nc * (P / kTile) * (N / (32 * NI))), unsigned(Bsz));
  with_variant(sq != nullptr, split, [&](auto docs, auto exact) {
    constexpr bool kDocs = decltype(docs)::value, kSplit = decltype(exact)::value;
    with_inputs(x, Bm, Cm, [&](const auto* xp, const auto* bp, const auto*) {
      if (NI == 4)
        ssd_chunk_state_kernel<4, kDocs, kSplit><<<grid1, kStateThreads, state_smem_bytes<4>()>>>(
            xp, dt.f32(), A.f32(), bp, sq, states, decay, cumq, dtq, d);
      else
        ssd_chunk_state_kernel<2, kDocs, kSplit><<<grid1, kStateThreads, state_smem_bytes<2>()>>>(
            xp, dt.f32(), A.f32(), bp, sq, states, decay, cumq, dtq, d);
    });
  });
  check_launch("ssd_chunked (chunk states)");
  mark(1);
  const dim3 grid2(unsigned((Q / kTile) * (Q / kTile)), unsigned(nc * G), unsigned(Bsz));
  with_inputs(x, Bm, Cm, [&](const auto*, const auto* bp, const auto* cp) {
    if (split) ssd_cb_kernel<true><<<grid2, kGemmThreads>>>(bp, cp, cbuf, d);
    else ssd_cb_kernel<false><<<grid2, kGemmThreads>>>(bp, cp, cbuf, d);
  });
  check_launch("ssd_chunked (C B^T)");
  mark(2);
  const dim3 grid3(unsigned((PN / 4 + kPassThreads - 1) / kPassThreads), unsigned(Bsz * H));
  if (split) ssd_state_pass_kernel<false><<<grid3, kPassThreads>>>(states, nullptr, decay, sp, int(nc), PN);
  else ssd_state_pass_kernel<true><<<grid3, kPassThreads>>>(states, states16, decay, sp, int(nc), PN);
  check_launch("ssd_chunked (state passing)");
  mark(3);
  const dim3 grid4(unsigned(H), unsigned(nc * (Q / kTile) * (P / kTile)), unsigned(Bsz));
  auto scan = [&](auto* yp) {
    with_variant(sq != nullptr, split, [&](auto docs, auto exact) {
      with_inputs(x, Bm, Cm, [&](const auto* xp, const auto*, const auto* cp) {
        ssd_chunk_scan_kernel<decltype(docs)::value, decltype(exact)::value><<<grid4, kGemmThreads>>>(
            xp, cp, D ? D->f32() : nullptr, sq, states, states16, cumq, dtq, cbuf, sp != nullptr, yp, d);
      });
    });
  };
  if (y.dtype() == DType::BF16) scan(y.data<__nv_bfloat16>());
  else scan(y.f32());
  check_launch("ssd_chunked (chunk scan)");
  mark(4);
  if (stage_ms) {
    check_cuda(cudaEventSynchronize(ev[4]), "ssd_chunked", "cudaEventSynchronize");
    for (int k = 0; k < 4; ++k) cudaEventElapsedTime(&stage_ms[k], ev[k], ev[k + 1]);
    for (auto& e : ev) cudaEventDestroy(e);
  }
  return true;
}

}  // namespace

bool ssd_chunked_tensor_cores(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                              const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, Tensor* state,
                              Tensor& y, float* stage_ms, Fp32Products products) {
  return ssd_chunked_tc(x, dt, A, Bm, Cm, D, seq_idx, chunk_size, state, y, products, stage_ms);
}

// Prefill. Measured on the H200 (2026-12-03, 8B heads H 128, P 64, G 8, N 128, chunk 256, bf16
// operands): 0.90 ms at B 2 / L 4096 (73 GFLOP, 81 TFLOP/s; the register recurrence takes 13.6 ms
// there) and 1.76 ms at B 1 / L 16384; per kernel (1) 0.21, (2) 0.04, (3) 0.05, (4) 0.59 ms.
// bench/cuda/ssd.cpp and bench/NOTES.md hold the numbers. Short T and shapes the tiles do not
// cover run the recurrence. Document ids take the same two paths with resets. The kernels run at
// ssd_bw::op_chunk's chunk, not necessarily the config's chunk_size.
void ssd_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, Tensor* state, Tensor& y,
                 Fp32Products products) {
  if (x.dim(1) >= kChunkedMinT &&
      ssd_chunked_tc(x, dt, A, Bm, Cm, D, seq_idx, ssd_bw::op_chunk(chunk_size, Bm.dim(3)), state, y, products, nullptr))
    return;
  ssd_recurrence(x, dt, A, Bm, Cm, D, seq_idx, state, y);
}

}  // namespace mambalm::ops::cuda
