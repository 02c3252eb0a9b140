// Backward of the norms on CUDA: RMSNorm, LayerNorm (LayerNorm1p's zero-centred gain w + 1
// optional) and Mamba-2's gated grouped RMSNorm (g = x silu(z), y = g / rms_group(g) * w).
// The formulas are the CPU's (ops/cpu/norms_backward.cpp), with xhat the normalised row and r
// its inverse RMS / standard deviation:
//   RMSNorm:   dx = r (dy w - xhat mean(dy w xhat))
//   LayerNorm: dx = r (dy w' - mean(dy w') - xhat mean(dy w' xhat)),   w' = w (+ 1)
//   gated:     RMSNorm per group on g, then dx = dg silu(z), dz = dg x silu'(z)
//   dw += sum over rows of dy xhat;  db += sum over rows of dy
//
// Row statistics are recomputed from x in double, as the forward (norms.cu) and the CPU do: the
// kernels are bound by memory traffic, so the double adds cost nothing measurable, and the two
// backends then differ only in summation order.
//
// Layout. A "segment" is what one set of statistics covers: the whole row (RMSNorm, LayerNorm)
// or one group (gated norm). Block (i, g) owns segment g of a fixed run of consecutive rows
// (rows_per_block, a function of the row count only). Each thread keeps E elements of the
// segment in registers (x, dy, and z for the gated norm; float4 loads when the data allows), so
// a row is read from memory once and written once: 12 bytes per element (20 for the gated norm:
// x, z, dy in; dx, dz out). One block reduction of doubles per row gives the statistics (for
// LayerNorm, shifted sums: see ln_stats). Segments that no register row holds (above 8192, or
// 4096 for the gated norm and for rows without float4 access) take a generic kernel that reads
// the row again from L1/L2 for each pass.
//
// Parameter gradients, deterministically: each thread sums dy xhat (and dy) of its columns over
// the block's rows in fp32 (in shared memory, one slot per thread and column), the block writes
// that partial row into scratch [blocks, D], and a second kernel adds the partials in a fixed
// order (in double) into dw / db. No atomics; bit-identical run to run, independent of the GPU.
//
// accumulate_dx (RMSNorm, LayerNorm): dx is read where it is written and the gradient added to
// it, so a block's residual path needs no separate add (4 passes over [rows, D] instead of 6).
//
// One wait on memory per row: dx's old value is loaded with x and dy (not after the reduction),
// and (E 4) before the row's block reduction the block asks L2 for the next row's lines (x, dy,
// and z or dx), so they arrive while the barriers and the arithmetic run.
//
// Measured on the H200 (2026-11-30, cudaEvent means, bytes = 12 or 20 per element): RMSNorm
// 16384 x 4096 with dw 219 us (3.7 TB/s), 8192 x 8192 246 us (3.3 TB/s); gated 16384 x 4096 in 8
// groups 384 us (3.5 TB/s); LayerNorm(1p) 16384 x 4096 with dw, db 320 us (2.5 TB/s).
// The row-ahead loads, on an H100 (2026-12-06, 16 bytes per element counted): RMSNorm 16384 x
// 2048 with dx += 222 -> 197 us (2.72 TB/s), LayerNorm1p 270 -> 237 us, gated 16384 x 4096 in
// groups of 512, bf16 z 435 -> 405 us (2.65 TB/s).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/ptx.cuh"
#include "ops/cuda/vec4_io.cuh"

namespace mambalm::ops::cuda {

namespace {

enum NormKind : int { kRms = 0, kLayer = 1, kGated = 2 };

// Rows per block: at least 8 (so a partial row of scratch serves several rows), and about 512
// blocks along the rows for large inputs (enough to fill the GPU; each partial is an fp32 sum of
// at most a few dozen rows at the training shapes). Rows shorter than 2048 get up to 4x as many
// blocks: at d 512 a block of 4 warps holds too little work to keep an SM's memory pipe busy
// (Nsight Compute: 24% occupancy, DRAM 44% with 512 blocks).
constexpr int64_t kMinRowsPerBlock = 8;
constexpr int64_t kTargetRowBlocks = 512;
int64_t target_row_blocks(int64_t D) {
  return kTargetRowBlocks * std::clamp<int64_t>(2048 / std::max<int64_t>(D, 1), 1, 4);
}

// The longest segment the register-resident kernels hold: E = 8 elements x 1024 threads (float4
// rows of RMSNorm / LayerNorm), else 4 x 1024.
constexpr int kMaxRegisterSegment = 8192;

// Sums NV doubles over the block (blockDim.x a multiple of 32, at most 1024); every thread gets
// the totals. scratch holds 32 * NV doubles. Fixed shuffle tree, so deterministic. Ends with a
// barrier, so scratch may be reused at once.
template <int NV>
__device__ __forceinline__ void block_sums(double (&v)[NV], double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
  for (int j = 0; j < NV; ++j) v[j] = warp_sum(v[j]);
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < NV; ++j) scratch[j * 32 + warp] = v[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < NV; ++j) v[j] = warp_sum(lane < nwarps ? scratch[j * 32 + lane] : 0.0);
  __syncthreads();
}

// ---- register rows ---------------------------------------------------------------------
// Thread t of a block of NT holds E elements of the segment. V4: float4 number t + q NT
// (q < E/4), element j at column 4t + 4 NT (j / 4) + j % 4 (coalesced 16-byte accesses).
// Scalar: column t + j NT. Both cover [0, E NT). The block size is a template constant so every
// element's offset from the thread's first column is an immediate: one address per array per row.
template <int E, int NT, bool V4>
struct RowSlots {
  static __host__ __device__ constexpr int first_col(int t) { return V4 ? 4 * t : t; }
  static __host__ __device__ constexpr int offset(int j) { return V4 ? (j >> 2) * 4 * NT + (j & 3) : j * NT; }
  // bit j set when element j's column is inside the segment [0, S)
  static __device__ __forceinline__ unsigned valid_mask(int S) {
    const int c0 = first_col(int(threadIdx.x));
    unsigned m = 0;
#pragma unroll
    for (int j = 0; j < E; ++j) m |= (c0 + offset(j) < S ? 1u : 0u) << j;
    return m;
  }
  // v[j] = p[offset(j)] (p at the thread's first column), 0 outside the segment, from fp32 or
  // bf16 (the gated norm's z in mixed precision). With V4, S % 4 == 0, so four elements are wholly
  // inside or wholly outside, and p is aligned to four of them.
  template <class T>
  static __device__ __forceinline__ void load(const T* __restrict__ p, unsigned valid, float (&v)[E]) {
    if constexpr (V4) {
#pragma unroll
      for (int q = 0; q < E / 4; ++q) {
        float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (valid & (1u << (4 * q))) f = load_float4(p + offset(4 * q));
        v[4 * q] = f.x;
        v[4 * q + 1] = f.y;
        v[4 * q + 2] = f.z;
        v[4 * q + 3] = f.w;
      }
    } else {
#pragma unroll
      for (int j = 0; j < E; ++j) v[j] = (valid & (1u << j)) ? as_float(p[offset(j)]) : 0.0f;
    }
  }
  // The same through ld.global.ca (an asm volatile load, which the compiler neither merges with
  // another load nor hoists): the small, L1-resident gain is loaded where it is used, before and
  // after a row's reduction, rather than held in E registers across it (which spilled at E = 8).
  static __device__ __forceinline__ void load_l1(const float* __restrict__ p, unsigned valid, float (&v)[E]) {
    if constexpr (V4) {
#pragma unroll
      for (int q = 0; q < E / 4; ++q) {
        float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (valid & (1u << (4 * q))) f = __ldca(reinterpret_cast<const float4*>(p + offset(4 * q)));
        v[4 * q] = f.x;
        v[4 * q + 1] = f.y;
        v[4 * q + 2] = f.z;
        v[4 * q + 3] = f.w;
      }
    } else {
#pragma unroll
      for (int j = 0; j < E; ++j) v[j] = (valid & (1u << j)) ? __ldca(p + offset(j)) : 0.0f;
    }
  }
  // Asks L2 for the 128-byte lines of the segment at p (the thread's first column), one request
  // per line, from the thread whose element (or four elements) starts it. Nothing waits on it.
  template <class T>
  static __device__ __forceinline__ void prefetch(const T* p, unsigned valid) {
#pragma unroll
    for (int j = 0; j < E; j += V4 ? 4 : 1)
      if ((valid & (1u << j)) && (reinterpret_cast<uintptr_t>(p + offset(j)) & 127) == 0) prefetch_l2(p + offset(j));
  }
  // p[offset(j)] = v[j] inside the segment, into fp32 or bf16 (rounded to nearest even).
  template <class T>
  static __device__ __forceinline__ void store(T* __restrict__ p, unsigned valid, const float (&v)[E]) {
    if constexpr (V4) {
#pragma unroll
      for (int q = 0; q < E / 4; ++q)
        if (valid & (1u << (4 * q)))
          store_float4(p + offset(4 * q), make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]));
    } else {
#pragma unroll
      for (int j = 0; j < E; ++j)
        if (valid & (1u << j)) store_float(p + offset(j), v[j]);
    }
  }
};

// ---- the per-element formulas (written once, shared by both kernels) ----------------------

// Gated norm, one element: g = x silu(z) as the CPU forms it (x * (z / (1 + e^-z))), and the
// factors that turn dg into dx = dg * ax (ax = z sigmoid(z)) and dz = dg * az
// (az = x sigmoid(z) (1 + z (1 - sigmoid(z)))).
__device__ __forceinline__ float gated_input(float x, float z, float& ax, float& az) {
  const float e = expf(-z);
  const float sg = 1.0f / (1.0f + e);
  ax = z * sg;
  az = x * sg * (1.0f + z * (1.0f - sg));
  return x * (z / (1.0f + e));
}

// RMSNorm of one segment: rf = 1/rms, mf = mean(dy w xhat). dg and xhat (for dw) of one element
// from g and dyw = dy * w.
__device__ __forceinline__ float rms_element(float g, float dyw, float rf, float mf, float& xhat) {
  xhat = g * rf;
  return rf * (dyw - xhat * mf);
}

// LayerNorm: w is the gain w' (w + 1 for LayerNorm1p); m1 = mean(dy w'), m2 = mean(dy w' xhat).
__device__ __forceinline__ float ln_element(float x, float dy, float w, float meanf, float invf, float m1, float m2,
                                            float& xhat) {
  xhat = (x - meanf) * invf;
  return invf * (dy * w - m1 - xhat * m2);
}

// Statistics of a segment from its block sums (n = segment length).
struct RmsStats {
  float rf, mf;
};
__device__ __forceinline__ RmsStats rms_stats(double sum_sq, double sum_dywg, int n, float eps) {
  const double r = 1.0 / sqrt(sum_sq / double(n) + double(eps));
  return {float(r), float(sum_dywg * r / double(n))};
}
struct LnStats {
  float meanf, invf, m1, m2;
};
// LayerNorm statistics in one reduction: with K a reference value of the row (its first element),
// v = (sum (x-K), sum (x-K)^2, sum dy w', sum dy w' (x-K)) over the segment. Then
// mean = K + v0/n, var = v1/n - (v0/n)^2, s2 = sum dy w' (x - mean) = v3 - (v0/n) v2. The shift
// keeps the cancellation in var small (K is within the row's spread), and in double it would
// need |mean - K| / std above ~1e4 to move the fp32 statistics: the same numbers as the CPU's
// two-pass sums up to double rounding, with one block reduction per row instead of two.
__device__ __forceinline__ LnStats ln_stats(const double (&v)[4], float K, int n, float eps) {
  const double mo = v[0] / double(n);
  const double var = fmax(v[1] / double(n) - mo * mo, 0.0);
  const double inv = 1.0 / sqrt(var + double(eps));
  const double s2 = v[3] - mo * v[2];
  return {float(double(K) + mo), float(inv), float(v[2] / double(n)), float(s2 * inv / double(n))};
}
// Adds one element's terms to the LayerNorm sums (see ln_stats).
__device__ __forceinline__ void ln_terms(float x, float dy, float w, float K, double (&v)[4]) {
  const double d = double(x) - double(K);
  const double dxh = double(dy) * double(w);
  v[0] += d;
  v[1] += d * d;
  v[2] += dxh;
  v[3] += dxh * d;
}

// With acc, v = old + v elementwise (the residual path's dx += dnorm): a rounded add, not
// contracted into the product before it, so the sum is dx + dnorm's.
template <int E>
__device__ __forceinline__ void add_old(float (&v)[E], const float (&old)[E], bool acc) {
  if (!acc) return;
#pragma unroll
  for (int j = 0; j < E; ++j) v[j] = __fadd_rn(old[j], v[j]);
}

// ---- register-resident kernel -------------------------------------------------------------
// Block (blockIdx.x, blockIdx.y): rows [blockIdx.x rpb, +rpb), segment blockIdx.y (columns
// [col0, col0 + S) of each row), NT threads with NT * E >= S. part_w / part_b (either may be
// null): row blockIdx.x of [gridDim.x, D] scratch receives this block's column sums.
// Dynamic shared memory: E * NT floats per wanted partial.
template <int KIND, int E, int NT, bool V4, class ZT>
__global__ void __launch_bounds__(NT, NT <= 512 ? 2 : 1)
norm_backward_regs(const ZT* __restrict__ x, const ZT* __restrict__ z, const float* __restrict__ w,
                   const ZT* __restrict__ dy, float* __restrict__ dx, ZT* __restrict__ dz,
                   float* __restrict__ part_w, float* __restrict__ part_b, int64_t rows, int64_t D, int64_t ldz, int S,
                   int64_t rpb, float eps, bool acc) {
  using Slots = RowSlots<E, NT, V4>;
  // Measured (H100, bench/NOTES.md): at E 4 (rows up to 2048, all gated groups up to 4096) the
  // next row's prefetch takes 7-12% off; at E 8 (rows of 4096-8192) it added 3-9%.
  constexpr bool kPrefetchNextRow = E <= 4;
  __shared__ double scratch[4 * 32];
  // This thread's column partials live in shared memory (slot j * NT + threadIdx.x, touched by
  // this thread alone, so no barrier): the registers hold the rows.
  extern __shared__ float spart[];
  const bool want_w = part_w != nullptr, want_b = KIND == kLayer && part_b != nullptr;
  float* spw = spart + threadIdx.x;
  float* spb = spart + (want_w ? E * NT : 0) + threadIdx.x;
#pragma unroll
  for (int j = 0; j < E; ++j) {
    if (want_w) spw[j * NT] = 0.0f;
    if (want_b) spb[j * NT] = 0.0f;
  }
  const unsigned valid = Slots::valid_mask(S);
  const int64_t col0 = int64_t(blockIdx.y) * S + Slots::first_col(int(threadIdx.x));
  const int64_t r0 = int64_t(blockIdx.x) * rpb;
  const int64_t r1 = min(rows, r0 + rpb);

  for (int64_t r = r0; r < r1; ++r) {
    const int64_t off = r * D + col0;
    // x, dy and (acc) dx's old value of this row, loaded together: one wait on memory per row
    float xv[E], gv[E], ov[E], wv[E], dx_old[E];
    Slots::load(x + off, valid, xv);
    Slots::load(dy + off, valid, gv);
    if (KIND != kGated && acc) Slots::load(dx + off, valid, dx_old);
    if (kPrefetchNextRow && r + 1 < r1) {  // the next row's lines into L2 while this row reduces
      Slots::prefetch(x + off + D, valid);
      Slots::prefetch(dy + off + D, valid);
      if constexpr (KIND == kGated) Slots::prefetch(z + off + D, valid);
      if (KIND != kGated && acc) Slots::prefetch(dx + off + D, valid);
    }
    // the gain (w' = w + 1 for LayerNorm1p, formed by the caller): L1 hits, loaded before the
    // reduction and again after it
    Slots::load_l1(w + col0, valid, wv);
    if constexpr (KIND == kLayer) {
      const float K = as_float(x[r * D + int64_t(blockIdx.y) * S]);  // the segment's first element (broadcast)
      double v[4] = {0.0, 0.0, 0.0, 0.0};
#pragma unroll
      for (int j = 0; j < E; ++j)
        if (valid & (1u << j)) ln_terms(xv[j], gv[j], wv[j], K, v);
      block_sums<4>(v, scratch);
      const LnStats st = ln_stats(v, K, S, eps);
      const float meanf = st.meanf;
      Slots::load_l1(w + col0, valid, wv);
#pragma unroll
      for (int j = 0; j < E; ++j) {
        float xhat;
        ov[j] = ln_element(xv[j], gv[j], wv[j], meanf, st.invf, st.m1, st.m2, xhat);
        if (want_w) spw[j * NT] += gv[j] * xhat;
        if (want_b) spb[j * NT] += gv[j];
      }
      add_old(ov, dx_old, acc);
      Slots::store(dx + off, valid, ov);
    } else {
      // g = x silu(z) (gated) or x. The gated norm holds, across the reduction, g, dy and
      // the two factors that turn dg into dx and dz (z sigmoid(z) and x sigmoid(z) (1 + z (1 -
      // sigmoid(z)))), not x and z.
      float g[E], ax[E], az[E];
      if constexpr (KIND == kGated) {
        float zv[E];
        Slots::load(z + off, valid, zv);
#pragma unroll
        for (int j = 0; j < E; ++j) g[j] = gated_input(xv[j], zv[j], ax[j], az[j]);
      } else {
#pragma unroll
        for (int j = 0; j < E; ++j) g[j] = xv[j];
      }
      double v[2] = {0.0, 0.0};
#pragma unroll
      for (int j = 0; j < E; ++j) {  // elements outside the segment hold 0 in x, z and dy
        v[0] += double(g[j]) * double(g[j]);
        v[1] += double(gv[j]) * double(wv[j]) * double(g[j]);
      }
      block_sums<2>(v, scratch);
      const RmsStats st = rms_stats(v[0], v[1], S, eps);
      Slots::load_l1(w + col0, valid, wv);
#pragma unroll
      for (int j = 0; j < E; ++j) wv[j] = gv[j] * wv[j];  // dy w
#pragma unroll
      for (int j = 0; j < E; ++j) {
        float xhat;
        const float dg = rms_element(g[j], wv[j], st.rf, st.mf, xhat);
        if (want_w) spw[j * NT] += gv[j] * xhat;
        ov[j] = dg;
        if constexpr (KIND == kGated) {
          ov[j] = dg * ax[j];
          g[j] = dg * az[j];  // dz (g is no longer needed)
        }
      }
      if constexpr (KIND == kGated) Slots::store(dz + r * ldz + col0, valid, g);
      add_old(ov, dx_old, KIND != kGated && acc);
      Slots::store(dx + off, valid, ov);
    }
  }
  float pv[E];
  if (want_w) {
#pragma unroll
    for (int j = 0; j < E; ++j) pv[j] = spw[j * NT];
    Slots::store(part_w + int64_t(blockIdx.x) * D + col0, valid, pv);
  }
  if (want_b) {
#pragma unroll
    for (int j = 0; j < E; ++j) pv[j] = spb[j * NT];
    Slots::store(part_b + int64_t(blockIdx.x) * D + col0, valid, pv);
  }
}

// ---- generic kernel (segments longer than kMaxRegisterSegment) ------------------------------
// Same block layout and formulas; each pass re-reads the segment (L1/L2 hits). Thread t owns
// columns t, t + blockDim.x, ...; it alone reads and writes those columns of its partial row,
// which it zeroes first, so the read-modify-write of the partial is race-free.
template <int KIND, class ZT>
__global__ void __launch_bounds__(1024)
norm_backward_any(const ZT* __restrict__ x, const ZT* __restrict__ z, const float* __restrict__ w,
                  const ZT* __restrict__ dy, float* __restrict__ dx, ZT* __restrict__ dz,
                  float* __restrict__ part_w, float* __restrict__ part_b, int64_t rows, int64_t D, int64_t ldz, int S,
                  int64_t rpb, float eps, bool acc) {
  __shared__ double scratch[4 * 32];
  const int64_t col0 = int64_t(blockIdx.y) * S;
  const int64_t r0 = int64_t(blockIdx.x) * rpb;
  const int64_t r1 = min(rows, r0 + rpb);
  float* pwr = part_w ? part_w + int64_t(blockIdx.x) * D + col0 : nullptr;
  float* pbr = part_b ? part_b + int64_t(blockIdx.x) * D + col0 : nullptr;
  for (int c = threadIdx.x; c < S; c += blockDim.x) {
    if (pwr) pwr[c] = 0.0f;
    if (pbr) pbr[c] = 0.0f;
  }
  const float* wr = w + col0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t off = r * D + col0;
    const ZT* xr = x + off;
    const ZT* gr = dy + off;
    if constexpr (KIND == kLayer) {
      const float K = as_float(xr[0]);
      double v[4] = {0.0, 0.0, 0.0, 0.0};
      for (int c = threadIdx.x; c < S; c += blockDim.x) ln_terms(as_float(xr[c]), as_float(gr[c]), wr[c], K, v);
      block_sums<4>(v, scratch);
      const LnStats st = ln_stats(v, K, S, eps);
      const float meanf = st.meanf;
      for (int c = threadIdx.x; c < S; c += blockDim.x) {
        float xhat;
        const float v = ln_element(as_float(xr[c]), as_float(gr[c]), wr[c], meanf, st.invf, st.m1, st.m2, xhat);
        dx[off + c] = acc ? __fadd_rn(dx[off + c], v) : v;
        if (pwr) pwr[c] += as_float(gr[c]) * xhat;
        if (pbr) pbr[c] += as_float(gr[c]);
      }
    } else {
      double v[2] = {0.0, 0.0};
      for (int c = threadIdx.x; c < S; c += blockDim.x) {
        float ax, az;
        const float g = KIND == kGated ? gated_input(as_float(xr[c]), as_float(z[off + c]), ax, az) : as_float(xr[c]);
        v[0] += double(g) * double(g);
        v[1] += double(as_float(gr[c])) * double(wr[c]) * double(g);
      }
      block_sums<2>(v, scratch);
      const RmsStats st = rms_stats(v[0], v[1], S, eps);
      for (int c = threadIdx.x; c < S; c += blockDim.x) {
        float ax = 0.0f, az = 0.0f;
        const float g = KIND == kGated ? gated_input(as_float(xr[c]), as_float(z[off + c]), ax, az) : as_float(xr[c]);
        float xhat;
        const float dg = rms_element(g, as_float(gr[c]) * wr[c], st.rf, st.mf, xhat);
        if (pwr) pwr[c] += as_float(gr[c]) * xhat;
        if constexpr (KIND == kGated) {
          dx[off + c] = dg * ax;
          store_float(dz + r * ldz + col0 + c, dg * az);
        } else {
          dx[off + c] = acc ? __fadd_rn(dx[off + c], dg) : dg;
        }
      }
    }
  }
}

// ---- short gated segments: one warp per (row, group) ------------------------------------------
// Groups of at most 256 channels (Mamba-2's 8 norm groups at d_inner 1024: 128) leave most of a
// register-row block idle and pay a block-wide barrier per row. Here each warp owns one row of the
// segment at a time, lane l holding float4 number l + 32 q (q < V) of it, and reduces with
// shuffles alone. Block (blockIdx.x, group blockIdx.y) takes the same rows as the register-row
// kernel's block; warp w walks rows r0 + w, r0 + w + kNormWarps, ... The warps' column partials
// meet in shared memory and are added in warp order: deterministic as before.
constexpr int kNormWarps = 8;

template <int V, class ZT>
__global__ void __launch_bounds__(32 * kNormWarps)
gated_norm_backward_warps(const ZT* __restrict__ x, const ZT* __restrict__ z, const float* __restrict__ w,
                          const ZT* __restrict__ dy, float* __restrict__ dx, ZT* __restrict__ dz,
                          float* __restrict__ part_w, int64_t rows, int64_t D, int64_t ldz, int S, int64_t rpb,
                          float eps) {
  __shared__ float4 spart[kNormWarps][32 * V];  // each warp's column partials
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t col0 = int64_t(blockIdx.y) * S;
  const int64_t r0 = int64_t(blockIdx.x) * rpb;
  const int64_t r1 = min(rows, r0 + rpb);
  bool valid[V];
  float4 wv[V], pw[V];
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const int c = 4 * (lane + 32 * q);
    valid[q] = c < S;
    wv[q] = valid[q] ? __ldg(reinterpret_cast<const float4*>(w + col0 + c)) : make_float4(0, 0, 0, 0);
    pw[q] = make_float4(0, 0, 0, 0);
  }
  for (int64_t r = r0 + warp; r < r1; r += kNormWarps) {
    const int64_t off = r * D + col0;
    float g[V][4], gv[V][4], ax[V][4], az[V][4];
    double sq = 0.0, sdg = 0.0;
#pragma unroll
    for (int q = 0; q < V; ++q) {
      const int c = 4 * (lane + 32 * q);
      const float4 zero = make_float4(0, 0, 0, 0);
      const float4 xq = valid[q] ? load_float4(x + off + c) : zero;
      const float4 zq = valid[q] ? load_float4(z + off + c) : zero;
      const float4 dq = valid[q] ? load_float4(dy + off + c) : zero;
      const float xs[4] = {xq.x, xq.y, xq.z, xq.w}, zs[4] = {zq.x, zq.y, zq.z, zq.w};
      const float ds[4] = {dq.x, dq.y, dq.z, dq.w}, ws[4] = {wv[q].x, wv[q].y, wv[q].z, wv[q].w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        g[q][j] = gated_input(xs[j], zs[j], ax[q][j], az[q][j]);
        gv[q][j] = ds[j];
        sq += double(g[q][j]) * double(g[q][j]);
        sdg += double(ds[j]) * double(ws[j]) * double(g[q][j]);
      }
    }
    sq = warp_sum(sq);
    sdg = warp_sum(sdg);
    const RmsStats st = rms_stats(sq, sdg, S, eps);
#pragma unroll
    for (int q = 0; q < V; ++q) {
      if (!valid[q]) continue;
      const float ws[4] = {wv[q].x, wv[q].y, wv[q].z, wv[q].w};
      float ox[4], oz[4], px[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float xhat;
        const float dg = rms_element(g[q][j], gv[q][j] * ws[j], st.rf, st.mf, xhat);
        px[j] = gv[q][j] * xhat;
        ox[j] = dg * ax[q][j];
        oz[j] = dg * az[q][j];
      }
      pw[q].x += px[0];
      pw[q].y += px[1];
      pw[q].z += px[2];
      pw[q].w += px[3];
      const int c = 4 * (lane + 32 * q);
      *reinterpret_cast<float4*>(dx + off + c) = make_float4(ox[0], ox[1], ox[2], ox[3]);
      store_float4(dz + r * ldz + col0 + c, make_float4(oz[0], oz[1], oz[2], oz[3]));
    }
  }
  if (!part_w) return;  // uniform over the block
#pragma unroll
  for (int q = 0; q < V; ++q) spart[warp][lane + 32 * q] = pw[q];
  __syncthreads();
  for (int i = threadIdx.x; i < 32 * V; i += blockDim.x) {
    if (4 * i >= S) continue;
    float4 t = spart[0][i];
    for (int k = 1; k < kNormWarps; ++k) {
      const float4 u = spart[k][i];
      t.x += u.x;
      t.y += u.y;
      t.z += u.z;
      t.w += u.w;
    }
    *reinterpret_cast<float4*>(part_w + int64_t(blockIdx.x) * D + col0 + 4 * i) = t;
  }
}

// out[c] += sum over p < np of part[p * D + c]: lane ty of a (32 x 8) block sums p = ty, ty + 8,
// ... in double, then lanes 0..7 are added in order; one fp32 rounding into out. blockIdx.y picks
// (part_w, dw) or (part_b, db); a null pair returns.
__global__ void __launch_bounds__(256)
reduce_partials(const float* __restrict__ part_w, const float* __restrict__ part_b, int64_t np, int64_t D,
                float* __restrict__ dw, float* __restrict__ db) {
  __shared__ double acc[8][33];
  const float* part = blockIdx.y == 0 ? part_w : part_b;
  float* out = blockIdx.y == 0 ? dw : db;
  if (!part || !out) return;  // uniform over the block
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * 32 + tx;
  double s = 0.0;
  if (c < D)
    for (int64_t p = ty; p < np; p += 8) s += double(part[p * D + c]);
  acc[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < D) {
    double t = acc[0][tx];
#pragma unroll
    for (int l = 1; l < 8; ++l) t += acc[l][tx];
    out[c] += float(t);
  }
}

// ZT: the gated norm's z and dz (fp32, or bf16 in mixed-precision training); float for the others.
template <class ZT>
struct NormArgs {
  // The gated norm's x and dy share z's dtype (in mixed precision: the SSD's output, out_proj's
  // backward's dx); dx stays fp32 (the SSD backward reads it)
  const ZT* x;
  const ZT* z;
  const float* w;
  const ZT* dy;
  float* dx;
  ZT* dz;
  float *dw, *db;
  int64_t rows, D;
  int S;
  float eps;
  bool acc = false;  // dx += (RMSNorm, LayerNorm)
  int64_t ldz = 0;   // dz's row stride (the gated norm's), 0: D
  int64_t dz_ld() const { return ldz ? ldz : D; }
};

template <int KIND, int E, int NT, bool V4, class ZT>
void launch_regs(const NormArgs<ZT>& a, dim3 grid, float* pw, float* pb, int64_t rpb) {
  const size_t smem = size_t(E) * NT * sizeof(float) * ((pw ? 1 : 0) + (pb ? 1 : 0));
  static bool attribute_set = false;  // up to 64 KiB (E 8, 1024 threads, dw and db)
  if (!attribute_set) {
    check_cuda(cudaFuncSetAttribute(norm_backward_regs<KIND, E, NT, V4, ZT>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, 2 * E * NT * int(sizeof(float))),
               "norm backward", "cudaFuncSetAttribute");
    attribute_set = true;
  }
  norm_backward_regs<KIND, E, NT, V4, ZT><<<grid, NT, smem>>>(a.x, a.z, a.w, a.dy, a.dx, a.dz, pw, pb, a.rows, a.D,
                                                          a.dz_ld(), a.S, rpb, a.eps, a.acc);
}

template <int KIND, int E, int NT, class ZT>
void launch_regs(const NormArgs<ZT>& a, bool v4, dim3 grid, float* pw, float* pb, int64_t rpb) {
  if (v4) {
    launch_regs<KIND, E, NT, true>(a, grid, pw, pb, rpb);
  } else {
    launch_regs<KIND, E, NT, false>(a, grid, pw, pb, rpb);
  }
}

// Picks the kernel for segment length S and launches it, then the partial reduction.
template <int KIND, class ZT>
void norm_backward(const NormArgs<ZT>& a, GrowOnlyBuffer& scratch, const char* op) {
  if (a.rows == 0 || a.D == 0) return;
  const int64_t groups = a.D / a.S;
  const int64_t blocks_wanted = target_row_blocks(a.D);
  const int64_t rpb = std::max(kMinRowsPerBlock, (a.rows + blocks_wanted - 1) / blocks_wanted);
  const int64_t nb = (a.rows + rpb - 1) / rpb;
  float* pw = nullptr;
  float* pb = nullptr;
  if (a.dw || a.db) {
    float* p = scratch.get<float>(size_t(nb * a.D) * ((a.dw && a.db) ? 2 : 1), op);
    pw = a.dw ? p : nullptr;
    pb = a.db ? (a.dw ? p + nb * a.D : p) : nullptr;
  }
  if (groups > 65535)
    fail(std::string("op ") + op + " (cuda)", std::to_string(groups) + " groups per row are above the supported 65535");
  const dim3 grid{unsigned(nb), unsigned(groups), 1u};
  const bool v4 = a.S % 4 == 0 && aligned_to(a.x, 4 * sizeof(ZT)) && aligned16(a.w) &&
                  aligned_to(a.dy, 4 * sizeof(ZT)) && aligned16(a.dx) &&
                  (KIND != kGated || (aligned_to(a.z, 4 * sizeof(ZT)) && aligned_to(a.dz, 4 * sizeof(ZT)) &&
                                      a.dz_ld() % 4 == 0)) &&
                  (!pw || aligned16(pw)) &&
                  (!pb || aligned16(pb));
  // (E, NT): E elements per thread in registers, NT threads, NT * E >= S. E = 8 only for float4
  // rows of RMSNorm / LayerNorm: the gated norm holds more per element, and scalar rows more
  // addresses, and either would spill at 64 registers; they take E = 4 up to 1024 threads.
  if (KIND == kGated && v4 && a.S <= 256) {
    if (a.S <= 128)
      gated_norm_backward_warps<1><<<grid, 32 * kNormWarps>>>(a.x, a.z, a.w, a.dy, a.dx, a.dz, pw, a.rows, a.D,
                                                                a.dz_ld(), a.S, rpb, a.eps);
    else
      gated_norm_backward_warps<2><<<grid, 32 * kNormWarps>>>(a.x, a.z, a.w, a.dy, a.dx, a.dz, pw, a.rows, a.D,
                                                                a.dz_ld(), a.S, rpb, a.eps);
  } else if (a.S <= 512) {
    launch_regs<KIND, 4, 128>(a, v4, grid, pw, pb, rpb);
  } else if (a.S <= 1024) {
    launch_regs<KIND, 4, 256>(a, v4, grid, pw, pb, rpb);
  } else if (a.S <= 2048) {
    launch_regs<KIND, 4, 512>(a, v4, grid, pw, pb, rpb);
  } else if (KIND != kGated && v4 && a.S <= kMaxRegisterSegment) {
    if constexpr (KIND != kGated) {
      if (a.S <= 4096) {
        launch_regs<KIND, 8, 512, true>(a, grid, pw, pb, rpb);
      } else {
        launch_regs<KIND, 8, 1024, true>(a, grid, pw, pb, rpb);
      }
    }
  } else if (a.S <= 4096) {
    launch_regs<KIND, 4, 1024>(a, v4, grid, pw, pb, rpb);
  } else {
    norm_backward_any<KIND, ZT><<<grid, 1024>>>(a.x, a.z, a.w, a.dy, a.dx, a.dz, pw, pb, a.rows, a.D,
                                            a.dz_ld(), a.S, rpb, a.eps, a.acc);
  }
  check_launch(op);
  if (pw || pb) {
    reduce_partials<<<dim3(unsigned((a.D + 31) / 32), 2), dim3(32, 8)>>>(pw, pb, nb, a.D, a.dw, a.db);
    check_launch(op);
  }
}

// LayerNorm1p: the gain the formulas use is w + 1, formed in fp32 as the CPU does (wp[i] + off).
__global__ void add_offset(const float* __restrict__ w, float off, float* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = w[i] + off;
}

}  // namespace

void rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx, Tensor* dw,
                       bool accumulate_dx) {
  static GrowOnlyBuffer scratch;
  const int64_t D = x.dim(-1);
  NormArgs<float> a{x.f32(), nullptr, w.f32(), dy.f32(), dx.f32(), nullptr, dw ? dw->f32() : nullptr, nullptr,
                    D > 0 ? x.numel() / D : 0, D, int(D), eps, accumulate_dx};
  norm_backward<kRms>(a, scratch, "rms_norm_backward");
}

void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered, const Tensor& dy,
                         Tensor& dx, Tensor* dw, Tensor* db, bool accumulate_dx) {
  static GrowOnlyBuffer scratch, gain;
  const int64_t D = x.dim(-1);
  const float* wp = w.f32();
  if (zero_centered && D > 0) {  // w' = w + 1 once per call (D floats) instead of per element
    float* g = gain.get<float>(size_t(D), "layer_norm_backward");
    add_offset<<<blocks_for(D), kThreads>>>(wp, 1.0f, g, D);
    check_launch("layer_norm_backward");
    wp = g;
  }
  NormArgs<float> a{x.f32(), nullptr, wp, dy.f32(), dx.f32(), nullptr, dw ? dw->f32() : nullptr,
                    db ? db->f32() : nullptr, D > 0 ? x.numel() / D : 0, D, int(D), eps, accumulate_dx};
  norm_backward<kLayer>(a, scratch, "layer_norm_backward");
}

void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size, float eps,
                             const Tensor& dy, Tensor& dx, Tensor& dz, Tensor* dw, int64_t dz_col0) {
  static GrowOnlyBuffer scratch;
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  // dz's rows: its own, or columns [dz_col0, dz_col0 + D) of a wider tensor's
  const int64_t col0 = std::max<int64_t>(dz_col0, 0), ldz = dz_col0 >= 0 ? dz.dim(-1) : D;
  if (z.dtype() == DType::BF16) {  // x, dy and dz then bf16 too (dispatch checks it)
    NormArgs<__nv_bfloat16> a{x.data<__nv_bfloat16>(), z.data<__nv_bfloat16>(), w.f32(),
                              dy.data<__nv_bfloat16>(), dx.f32(), dz.data<__nv_bfloat16>() + col0,
                              dw ? dw->f32() : nullptr, nullptr, rows, D, int(group_size), eps};
    a.ldz = ldz;
    norm_backward<kGated>(a, scratch, "gated_rms_norm_backward");
  } else {
    NormArgs<float> a{x.f32(), z.f32(), w.f32(), dy.f32(), dx.f32(), dz.f32() + col0, dw ? dw->f32() : nullptr,
                      nullptr, rows, D, int(group_size), eps};
    a.ldz = ldz;
    norm_backward<kGated>(a, scratch, "gated_rms_norm_backward");
  }
}

}  // namespace mambalm::ops::cuda
