// What the two translation units of the CUDA SSD backward share (ssd_backward.cu: the
// per-chunk vector kernels, the state passing and the launches; ssd_backward_products.cu: the
// three tensor-core product kernels gram, dx and dB/dC): the tile geometry, the staged GEMM
// helpers (bf16 or split fp32-accurate operands), the argument block and the product kernels'
// declarations. See ssd_backward.cu for the algorithm and its cost. The forward's kernels
// (ssd.cu) use the tile helpers too.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/ptx.cuh"

namespace mambalm::ops::cuda::ssd_bw {

constexpr int kQMax = 256;       // longest kernel chunk
constexpr int kTile = 64;        // tile rows
constexpr int kKs = 32;          // K per shared-memory stage
constexpr int kSMK = kKs + 4;    // row stride of a [rows][32] stage (K contiguous)
constexpr int kSKM = kTile + 8;  // row stride of a [32][64] stage (M or N contiguous)
constexpr int kWords64 = kTile * kSMK;  // one 64 x 32 operand stage, either layout
static_assert(kWords64 == kKs * kSKM, "both layouts of a 64 x 32 stage have one size");
constexpr int kRing = 3;         // shared-memory stages per operand
// The largest decay span cum_r0 - cum_{r0+63} over a 64-row tile for which the chunk scan, dx and
// gram factor exp(cum_i - cum_j) into a row and a column factor: both stay within e^40 (fp32 and bf16
// reach e^88), and __expf's error at |x| <= 40 (2 + 1.2 |x| ulp, ~3e-6) stays far below bf16's
// rounding.
constexpr float kFactorSpan = 40.0f;

// Whether the 64-row tile of a chunk's rows r0.. (L rows in the chunk, cum its cumulative decays,
// decreasing) factors its decays (see kFactorSpan).
__device__ __forceinline__ bool tile_factors(const float* cum, int r0, int L) {
  return cum[r0] - cum[min(r0 + kTile, L) - 1] <= kFactorSpan;
}

// The chunk length of the kernels, forward and backward: chunk_size when it is a multiple of 64
// up to 256, else the nearest such value.
inline int64_t kernel_chunk(int64_t chunk_size) {
  if (chunk_size % kTile == 0 && chunk_size <= kQMax) return chunk_size;
  const int64_t q = (chunk_size + kTile / 2) / kTile * kTile;
  return std::clamp<int64_t>(q, int64_t(kTile), int64_t(kQMax));
}

// The chunk the ops run at. Any chunking computes the same function (the chunk changes only the
// order of rounding), so the ops may run another chunk than the config's chunk_size where theirs
// is measured faster: 128 for N 64 (mamba2-26m's layer, H 16, B 64 x L 1024, H100: forward +
// backward 3.33 ms against 3.65 at its config's 64 and 3.80 at 256; with documents 3.59 against
// 3.84 and 4.19; its training step 115.8 -> 111.9 ms). At N 128 no chunk wins throughout (the
// training benchmark's layer, H 64, B 4 x L 4096: 256 is 2% faster than the config's 128 without
// documents, 2% slower with them and 5% slower with the exact products), so chunk_size stays.
inline int64_t op_chunk(int64_t chunk_size, int64_t N) {
  if (N >= 64 && N < 128) return 128;
  return kernel_chunk(chunk_size);
}

__host__ __device__ constexpr int cdiv(int a, int b) { return (a + b - 1) / b; }

// n / d and n % d for 0 <= n < 2^16 and 1 <= d < 2^16, d fixed for the kernel: one multiply-high
// (m = floor(2^32 / d) + 1 is off 2^32 / d by at most 1, an error in n m / 2^32 below n / 2^32 <
// 1 / d, too small to carry the quotient past an integer). The product kernels split their stage
// index into (head, K step) every stage; a division by a kernel argument is ~20 dependent
// instructions there.
struct StageDiv {
  int d;
  uint32_t m;  // 0 for d = 1 (2^32 does not fit)
  __device__ explicit StageDiv(int d_) : d(d_), m(d_ > 1 ? 0xffffffffu / uint32_t(d_) + 1u : 0u) {}
  __device__ int div(int n) const { return m ? int(__umulhi(uint32_t(n), m)) : n; }
  __device__ int mod(int n) const { return n - div(n) * d; }
};

// A block tile is 64 x (8 NI WNW): warps 2 x WNW, each 32 x 8 NI (2 x NI m16n8k8 fragments). B
// stored as [32][TN] (TN = 8 NI WNW) has row stride TN + 8.
template <int WNW, int NI>
__host__ __device__ constexpr int skn() { return 8 * NI * WNW + 8; }
constexpr int kWordsKN128 = kKs * skn<4, 4>();  // a [32][128] operand stage
// Words of one B stage of a 64 x 128 tile in either layout ([128][36] or [32][136]).
constexpr int kBWords128 = std::max(128 * kSMK, kWordsKN128);

// acc[mi][ni][2 hf + e]: tile row wm + 16 mi + (lane / 4) + 8 hf, column wn + 8 ni + 2 (lane % 4) + e.
template <int NI>
using AccT = float[2][NI][4];
using Acc = AccT<4>;

template <int WNW>
__device__ __forceinline__ int frag_wm() { return (int(threadIdx.x >> 5) / WNW) * 32; }
template <int WNW, int NI>
__device__ __forceinline__ int frag_wn() { return (int(threadIdx.x >> 5) % WNW) * 8 * NI; }

// acc += A B over one stage of fp32 operand bits, multiplied to fp32 accuracy as three TF32
// products (ptx.cuh, mma_split_fragments; Fp32Products::Exact). A(m, k) = As[k * kSKM + m] when
// kAKM, else As[m * kSMK + k]; B(k, n) = Bs[k * skn + n] when kBKN, else Bs[n * kSMK + k]. The
// strides put the fragment reads of a warp in 32 distinct banks. KU: k-steps unrolled (4 lets the
// compiler fetch every fragment of the stage ahead; 2 halves the registers that takes).
template <int WNW, int NI, bool kAKM, bool kBKN, int KU = 4>
__device__ __forceinline__ void tile_mma_split(const uint32_t* As, const uint32_t* Bs, AccT<NI>& acc) {
  constexpr int kSKN = skn<WNW, NI>();
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int wm = frag_wm<WNW>(), wn = frag_wn<WNW, NI>();
  auto A = [&](int m, int k) { return kAKM ? As[k * kSKM + m] : As[m * kSMK + k]; };
  auto B = [&](int k, int n) { return kBKN ? Bs[k * kSKN + n] : Bs[n * kSMK + k]; };
#pragma unroll KU
  for (int kk = 0; kk < kKs; kk += 8) {
    uint32_t a[2][4], b[NI][2];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
      const int r = wm + mi * 16 + g;
      a[mi][0] = A(r, kk + t);
      a[mi][1] = A(r + 8, kk + t);
      a[mi][2] = A(r, kk + t + 4);
      a[mi][3] = A(r + 8, kk + t + 4);
    }
#pragma unroll
    for (int ni = 0; ni < NI; ++ni) {
      const int c = wn + ni * 8 + g;
      b[ni][0] = B(kk + t, c);
      b[ni][1] = B(kk + t + 4, c);
    }
    mma_split_fragments(acc, a, b);
  }
}

// The same product over one stage of bf16 operands (the fast products of kernels that store
// them so): m16n8k16 mma.sync, fragments by ldmatrix, .trans where the stage is K-major. Element
// strides: A(m, k) at [k * kSKM + m] when kAKM, else [m * kHMK + k]; B(k, n) at [k * skn + n] when
// kBKN, else [n * kHMK + k] (halves; a stage takes at most half the words of its fp32 form). Lane
// l addresses row l % 8 of 8x8 matrix l / 8: A's matrices are (rows +0, k +0), (+8, +0),
// (+0, +8), (+8, +8) = a[0..3]; a pair of B's column blocks takes (cols +0, k +0), (+0, +8),
// (+8, +0), (+8, +8) = b[ni][0], b[ni][1], b[ni+1][0], b[ni+1][1].
constexpr int kHMK = kKs + 8;  // row stride (halves) of a bf16 [rows][32] stage: 80 bytes
template <int WNW, int NI, bool kAKM, bool kBKN>
__device__ __forceinline__ void tile_mma_bf16(const uint32_t* As, const uint32_t* Bs, AccT<NI>& acc) {
  static_assert(NI % 2 == 0, "B fragments load in pairs of column blocks");
  constexpr int kSKN = skn<WNW, NI>();
  const int lane = threadIdx.x & 31, q = lane >> 3, r = lane & 7;
  const int wm = frag_wm<WNW>(), wn = frag_wn<WNW, NI>();
  const uint32_t a0 = smem_u32(As), b0 = smem_u32(Bs);
#pragma unroll
  for (int kk = 0; kk < kKs; kk += 16) {
    uint32_t a[2][4], b[NI][2];
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
      const int m = wm + mi * 16 + (q & 1) * 8, k = kk + (q >> 1) * 8;
      if (kAKM) ldmatrix_x4_trans(a0 + 2u * ((k + r) * kSKM + m), a[mi][0], a[mi][1], a[mi][2], a[mi][3]);
      else ldmatrix_x4(a0 + 2u * ((m + r) * kHMK + k), a[mi][0], a[mi][1], a[mi][2], a[mi][3]);
    }
#pragma unroll
    for (int np = 0; np < NI; np += 2) {
      const int n = wn + np * 8 + (q >> 1) * 8, k = kk + (q & 1) * 8;
      if (kBKN) ldmatrix_x4_trans(b0 + 2u * ((k + r) * kSKN + n), b[np][0], b[np][1], b[np + 1][0], b[np + 1][1]);
      else ldmatrix_x4(b0 + 2u * ((n + r) * kHMK + k), b[np][0], b[np][1], b[np + 1][0], b[np + 1][1]);
    }
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) mma_bf16(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
  }
}

// The stage loop over a ring of kRing shared-memory stages: issue(s, buf) starts the cp.async
// copies of stage s into buffer buf (raw fp32, zero-filled out of range), fix(s, buf) rewrites
// this thread's share of buffer buf in place (scaled, masked, as operands), compute(s, buf)
// multiplies it (and may run a per-stage epilogue). Stages s+1 and s+2 are in flight while s is
// multiplied. Per stage: wait for stage s's copies, barrier (s visible everywhere; every warp is
// done with s-1), issue s+2 into s-1's buffer, fix s, barrier, multiply s. Ends with a barrier.
// Shared vectors the fix or compute steps read must be written before a barrier (or be copied in
// an earlier stage's group).
template <class Issue, class Fix, class Compute>
__device__ __forceinline__ void run_ring(int stages, Issue issue, Fix fix, Compute compute) {
  if (stages <= 0) return;
#pragma unroll
  for (int s = 0; s < kRing - 1; ++s) {
    if (s < stages) issue(s, s);
    cp_async_commit();
  }
  for (int s = 0; s < stages; ++s) {
    cp_async_wait<kRing - 2>();
    __syncthreads();
    if (s + kRing - 1 < stages) issue(s + kRing - 1, (s + kRing - 1) % kRing);
    cp_async_commit();
    fix(s, s % kRing);
    __syncthreads();
    compute(s, s % kRing);
  }
  cp_async_wait<0>();
  __syncthreads();
}

// The stage loop, double-buffered: load(s) fetches stage s from global memory into registers,
// store(s, buf) writes them (scaled, as operands) to buffer buf, compute(s, buf) multiplies
// buffer buf (and may run a per-stage epilogue). Stage s+1 is fetched before stage s is
// multiplied and stored after it, one barrier per stage: a buffer is rewritten only after the
// barrier that follows every warp's reads of it. Ends with a barrier. The caller's own shared
// vectors read by store(0, 0) must be written before a barrier.
template <class Load, class Store, class Compute>
__device__ __forceinline__ void run_stages(int stages, Load load, Store store, Compute compute) {
  if (stages <= 0) return;
  load(0);
  store(0, 0);
  __syncthreads();
  for (int s = 0; s < stages; ++s) {
    const bool more = s + 1 < stages;
    if (more) load(s + 1);
    compute(s, s & 1);
    if (more) store(s + 1, (s + 1) & 1);
    __syncthreads();
  }
}

// Piece k (16 bytes) of this thread in a tile of COLS floats per row read by NT threads.
template <int COLS, int NT>
__device__ __forceinline__ void piece(int k, int& row, int& col) {
  const int idx = int(threadIdx.x) + NT * k;
  row = idx / (COLS / 4);
  col = (idx % (COLS / 4)) * 4;
}

// 16-byte async copy of src into dst, zeros instead when !ok (src is then not read; `any` is a
// valid address to pass).
__device__ __forceinline__ void cp16(uint32_t* dst, const float* src, bool ok, const float* any) {
  cp_async16(smem_u32(dst), ok ? src : any, ok ? 16 : 0);
}
// Four elements of src copied as they are (16 bytes of fp32, 8 of bf16) to element index `at`
// (in src's elements) of a raw stage, zeros instead when !ok; raw4 reads them back as fp32.
__device__ __forceinline__ void cp4(uint32_t* stage, int at, const float* src, bool ok, const float* any) {
  cp16(stage + at, src, ok, any);
}
__device__ __forceinline__ void cp4(uint32_t* stage, int at, const __nv_bfloat16* src, bool ok,
                                    const __nv_bfloat16* any) {
  cp_async8(smem_u32(stage) + 2u * uint32_t(at), ok ? src : any, ok ? 8 : 0);
}
__device__ __forceinline__ float4 raw4(const uint32_t* stage, int at, const float*) {
  return *reinterpret_cast<const float4*>(stage + at);
}
__device__ __forceinline__ float4 raw4(const uint32_t* stage, int at, const __nv_bfloat16*) {
  const uint2 u = *reinterpret_cast<const uint2*>(reinterpret_cast<const __nv_bfloat16*>(stage) + at);
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xffff0000u));
}
// In place: four fp32 operand words scaled by s.
__device__ __forceinline__ void scale4(uint32_t* p, float s) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  *reinterpret_cast<float4*>(p) = make_float4(v.x * s, v.y * s, v.z * s, v.w * s);
}

// The SSD's inputs x, B and C come in fp32, or in bf16 from mixed-precision training's conv
// (half the bytes; the fast products round them to bf16 anyway). XT is their element type in the
// kernels; everything else they read (dY, scratch) is fp32. Four elements (p aligned to four) as
// fp32 through the read-only cache; a bf16 value widens exactly (its bits are the top half).
__device__ __forceinline__ float4 ldg4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
__device__ __forceinline__ float4 ldg4(const __nv_bfloat16* p) {
  const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ float2 ldg2(const float* p) { return __ldg(reinterpret_cast<const float2*>(p)); }
__device__ __forceinline__ float2 ldg2(const __nv_bfloat16* p) {
  const uint32_t u = __ldg(reinterpret_cast<const unsigned int*>(p));
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

// Four elements at p (columns col..col+3 of a row with `cols` valid columns, cols a multiple of 4,
// p aligned to four elements); zeros where out of range.
template <class T>
__device__ __forceinline__ float4 ld_piece(const T* p, bool row_ok, int col, int cols) {
  return (row_ok && col < cols) ? ldg4(p) : make_float4(0.f, 0.f, 0.f, 0.f);
}
// Scratch written by an earlier kernel of this op (or an input the op checked): always aligned,
// always in range.
template <class T>
__device__ __forceinline__ float4 ld_scratch(const T* p, bool row_ok) {
  return row_ok ? ldg4(p) : make_float4(0.f, 0.f, 0.f, 0.f);
}

// Four fp32 operand words (v scaled by s) at word index at of a stage buffer.
__device__ __forceinline__ void st_f32(uint32_t* buf, int at, float4 v, float s) {
  *reinterpret_cast<float4*>(buf + at) = make_float4(v.x * s, v.y * s, v.z * s, v.w * s);
}

// Four bf16 operands (v scaled by s) at element index at (a multiple of 4) of a stage buffer.
__device__ __forceinline__ void st_bf16(uint32_t* buf, int at, float4 v, float s) {
  *reinterpret_cast<uint2*>(reinterpret_cast<__nv_bfloat16*>(buf) + at) =
      pack_bf16x4(v.x * s, v.y * s, v.z * s, v.w * s);
}

// A [64][32] bf16 operand stage (rows of kHMK halves) copied as it is, by 128 threads with two
// 16-byte cp.async copies each, from rows p0.. and columns k0.. of a bf16 [rows][N] matrix (N a
// multiple of 8); zeros past `rows_left` rows or N columns. Commits the copies as one group.
__device__ __forceinline__ void cp_bf16_stage_64x32(uint32_t* stage, const __nv_bfloat16* m, int p0, int rows_left,
                                                    int k0, int N) {
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const int idx = int(threadIdx.x) + 128 * k, row = idx >> 2, col = (idx & 3) * 8;
    const bool ok = row < rows_left && k0 + col < N;
    cp_async16(smem_u32(stage) + 2u * uint32_t(row * kHMK + col), ok ? m + int64_t(p0 + row) * N + k0 + col : m,
               ok ? 16 : 0);
  }
  cp_async_commit();
}

// A kernel's operand format: with kSplit fp32 bits (split TF32 products, Fp32Products::Exact),
// otherwise bf16 (the fast products). Element index strides of a [rows][32] stage (K contiguous)
// differ (kSMK words, kHMK halves); the K-major strides (kSKM, skn) are the same in both.
template <bool kSplit>
__host__ __device__ constexpr int smk() { return kSplit ? kSMK : kHMK; }
template <bool kSplit>
__device__ __forceinline__ void st_op(uint32_t* buf, int at, float4 v, float s) {
  if constexpr (kSplit) st_f32(buf, at, v, s);
  else st_bf16(buf, at, v, s);
}
template <bool kSplit>
__device__ __forceinline__ void st_op(uint32_t* buf, int at, float a, float b, float c, float d) {
  st_op<kSplit>(buf, at, make_float4(a, b, c, d), 1.f);
}
template <int WNW, int NI, bool kAKM, bool kBKN, bool kSplit>
__device__ __forceinline__ void tile_mma_op(const uint32_t* As, const uint32_t* Bs, AccT<NI>& acc) {
  if constexpr (kSplit) tile_mma_split<WNW, NI, kAKM, kBKN>(As, Bs, acc);
  else tile_mma_bf16<WNW, NI, kAKM, kBKN>(As, Bs, acc);
}

// Two adjacent elements at an even column col (< cols, a multiple of 4) of a user tensor.
template <class T>
__device__ __forceinline__ float2 ld_pair(const T* p, int col, int cols) {
  return col < cols ? ldg2(p) : make_float2(0.f, 0.f);
}
__device__ __forceinline__ void st_pair(float* p, int col, int cols, float a, float b) {
  if (col < cols) *reinterpret_cast<float2*>(p) = make_float2(a, b);
}

// Everything the kernels read and write. Scratch layouts:
//   cum, dtq, wv, ev [B][H][nc][Q]  (cum_i, dt_i, w_i, e_i; past a chunk's end cum = cum_last, the
//                                    others 0)
//   seg      [B][nc][Q]      (documents only)
//   elast    [B][H][nc]
//   S, dS    [B][H][nc][P][N]  (Z then S entering chunk c; dZ then, with the split products, dS
//                               leaving chunk c)
//   dS16     [B][H][nc][P][N]  (bf16 products: dS leaving chunk c in bf16, the operand dx and dB
//                               take; N is then a multiple of 8, so rows are 16-byte aligned)
//   cb, gs   [B][nc][G][Q][Q]  (64 x 64 tiles j <= i of rows i < L only)
//   rpart    [B][H][nc][nt][Q] (row sums of Q over the columns of tile jt)
//   cpart    [B][H][nc][nt][Q] (column sums of Q over the rows of tile it)
//   ddir, us [B][H][nc][Q]     (us_j = x_j . w_j dS B_j)
//   dcs      [B][H][nc][ntn][Q] (C_i . e_i S^T dY_i per 128 columns of N)
//   sds      [B][H][nc][nsl]   (<dS_c, S_c> per warp of the pass)
//   dpart    [B][H][nc][nt]    (x . dY per dx block), dapart [B][H][nc]
// x, Bm, Cm: XT of the kernels (fp32, or bf16 with the bf16 products), read through in<XT>().
struct BwArgs {
  int B, T, H, P, G, N, Q, nc, nt, hpg, ntn, nsl;
  const void *x, *Bm, *Cm;
  const float *dt, *A, *D, *dy, *init, *dfin;
  const int32_t* seq;
  float *dx, *ddt, *dBm, *dCm, *dA, *dD, *dinit;
  float *cum, *dtq, *wv, *ev, *elast, *S, *dS, *cb, *gs, *rpart, *cpart, *ddir, *us, *dcs, *sds, *dpart, *dapart;
  __nv_bfloat16* dS16;
  int* seg;
  bool in16;  // host side: x, Bm, Cm are bf16 (then the products are the bf16 ones)
};

// x, Bm or Cm of the arguments as the kernel's input type.
template <class XT>
__device__ __forceinline__ const XT* in(const void* p) { return static_cast<const XT*>(p); }

__device__ __forceinline__ int64_t bhc(const BwArgs& a, int b, int h, int c) {
  return (int64_t(b) * a.H + h) * a.nc + c;
}
__device__ __forceinline__ int64_t bcg(const BwArgs& a, int b, int c, int g) {
  return (int64_t(b) * a.nc + c) * a.G + g;
}


template <class T>
struct TypeTag {
  using type = T;
};
// Calls f(kSplit, TypeTag<XT>{}) for the kernels' operand build: the split products on fp32
// inputs, or the bf16 products on fp32 or bf16 inputs (bf16 inputs come with the bf16 products
// only: the split ones exist to be exact on fp32 inputs).
template <class F>
void with_operands(bool split, bool in16, F f) {
  if (split) f(std::true_type{}, TypeTag<float>{});
  else if (in16) f(std::false_type{}, TypeTag<__nv_bfloat16>{});
  else f(std::false_type{}, TypeTag<float>{});
}

// Product kernels (ssd_backward_products.cu) and their launch geometry.
constexpr int kGramThreads = 256;
constexpr int kGramWn = 4, kGramNi = 2;  // warps 2 x 4, each 32 x 16
constexpr int kGramSmemBytes = (4 * kWords64 + 16 * kGramThreads) * 4;  // As[2], Bs[2], CB fragments
constexpr int kBcThreads = 256;
// dB and dC tiles are 64 rows x (32 NI) columns of N: NI = 4 (128 columns), or NI = 2 when N <= 64,
// where a 128-column tile would multiply zeros in half its columns (the study's small models).
__host__ __device__ constexpr int bc_ni(int N) { return N <= 64 ? 2 : 4; }
template <int NI>
__host__ __device__ constexpr int bc_b_words() { return NI == 4 ? kBWords128 : kKs * skn<4, NI>(); }  // one B stage
template <int NI>
__host__ __device__ constexpr int bc_smem_words() { return 2 * kWords64 + 2 * bc_b_words<NI>(); }  // As[2], Bs[2]
template <int NI>
__host__ __device__ constexpr int bc_cs_stride() { return 32 * NI + 4; }
template <int NI>
__host__ __device__ constexpr int db_smem_bytes() { return bc_smem_words<NI>() * 4; }
template <int NI>
__host__ __device__ constexpr int dc_smem_bytes() { return db_smem_bytes<NI>() + kTile * bc_cs_stride<NI>() * 4; }
// Host launchers of the product kernels (a __global__ template cannot be launched from another
// translation unit without relocatable device code): each queues one kernel on `stream`.
// allow_product_smem raises their dynamic shared-memory limits (once per build).
// split: Fp32Products::Exact (fp32-accurate split products) rather than the bf16 products; the
// input type is a.in16's (with_operands).
void allow_product_smem(bool docs, bool split, bool in16);
void launch_gram(bool docs, bool split, unsigned blocks, cudaStream_t stream, const BwArgs& a);
void launch_dx(bool docs, bool split, unsigned blocks, cudaStream_t stream, const BwArgs& a);
void launch_dbc(bool docs, bool split, bool is_c, unsigned blocks, cudaStream_t stream, const BwArgs& a);

}  // namespace mambalm::ops::cuda::ssd_bw
