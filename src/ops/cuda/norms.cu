// Norms on CUDA: RMSNorm, LayerNorm (zero-centred gain optional), Mamba-2's gated grouped RMSNorm,
// and the residual add fused with the next RMSNorm.
//
// One thread block per row (per row and group for the gated norm). Row statistics are
// accumulated in double, as on the CPU: the kernels are bound by memory traffic, so the double
// adds cost nothing measurable, and the two backends then differ only in summation order.
// Each block reads its row's statistics before writing, so y may alias x.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/vec4_io.cuh"

namespace mambalm::ops::cuda {

namespace {

// A norm's output y is fp32, or bf16 in mixed-precision training, where it feeds only bf16 GEMMs
// (the block norms: the mixers' projections; the gated norm: out_proj), which would otherwise
// each round it: one store of one value, or of four consecutive ones (16- or 8-byte aligned).
__device__ __forceinline__ void store_out(float* y, int64_t i, float v) { y[i] = v; }
__device__ __forceinline__ void store_out(__nv_bfloat16* y, int64_t i, float v) { y[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store_out4(float* y, int64_t i, float a, float b, float c, float d) {
  *reinterpret_cast<float4*>(y + i) = make_float4(a, b, c, d);
}
__device__ __forceinline__ void store_out4(__nv_bfloat16* y, int64_t i, float a, float b, float c, float d) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(a, b), hi = __floats2bfloat162_rn(c, d);
  *reinterpret_cast<uint2*>(y + i) =
      make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
}

template <class OutT>
__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float eps,
                                OutT* y, int64_t D) {
  pdl_launch_dependents();  // a GEMV that follows may start streaming its weights
  __shared__ double scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * D;
  OutT* yr = y + int64_t(blockIdx.x) * D;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += double(xr[i]) * xr[i];
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) store_out(yr, i, xr[i] * inv * w[i]);
}

template <class OutT>
__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                  const float* __restrict__ b, float eps, float gain_offset,
                                  OutT* y, int64_t D) {
  __shared__ double scratch[32];
  const float* xr = x + int64_t(blockIdx.x) * D;
  OutT* yr = y + int64_t(blockIdx.x) * D;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
  const double mean = block_sum(s, scratch) / double(D);
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const double d = xr[i] - mean;
    v += d * d;
  }
  const double var = block_sum(v, scratch) / double(D);
  const float inv = float(1.0 / sqrt(var + double(eps)));
  const float meanf = float(mean);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float o = (xr[i] - meanf) * inv * (w[i] + gain_offset);
    store_out(yr, i, b ? o + b[i] : o);
  }
}

// Block (row, group): g = x * silu(z) is formed twice (for the statistic, then for the output)
// rather than staged, so y may alias x or z.
template <class ZT, class OutT>
__global__ void gated_rms_norm_kernel(const ZT* x, const ZT* z, const float* __restrict__ w,
                                      int64_t group_size, int64_t groups, float eps, OutT* y,
                                      int64_t D) {
  pdl_launch_dependents();  // a GEMV that follows may start streaming its weights
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
  const int64_t off = row * D + g * group_size;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float gv = as_float(x[off + i]) * silu_f(as_float(z[off + i]));
    s += double(gv) * gv;
  }
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(group_size) + double(eps)));
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float gv = as_float(x[off + i]) * silu_f(as_float(z[off + i]));
    store_out(y, off + i, gv * inv * w[g * group_size + i]);
  }
}

// The same for groups of 4 x blockDim.x elements (a multiple of 128 up to 4096, 16-byte aligned):
// each thread keeps its four gated values in registers, so x and z are read once and SiLU is
// evaluated once (the loop above reads both twice). Mamba-2 at d_model 2048: 16384 x 4096 in
// 0.42 ms above, ~3 bytes in 4 of that traffic here.
template <class ZT, class OutT>
__global__ void gated_rms_norm_vec4(const ZT* x, const ZT* z, const float* __restrict__ w, int64_t groups,
                                    float eps, OutT* y, int64_t D) {
  pdl_launch_dependents();
  __shared__ double scratch[32];
  const int64_t gs = 4 * int64_t(blockDim.x);
  const int64_t row = blockIdx.x / groups, g = blockIdx.x % groups;
  const int64_t col = g * gs + 4 * int64_t(threadIdx.x);
  const int64_t off = row * D + col;
  const float4 xv = load_float4(x + off);
  const float4 zv = load_float4(z + off);
  const float g0 = xv.x * silu_f(zv.x), g1 = xv.y * silu_f(zv.y), g2 = xv.z * silu_f(zv.z), g3 = xv.w * silu_f(zv.w);
  double s = double(g0) * g0 + double(g1) * g1 + double(g2) * g2 + double(g3) * g3;
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(gs) + double(eps)));
  const float4 wv = __ldg(reinterpret_cast<const float4*>(w + col));
  store_out4(y, off, g0 * inv * wv.x, g1 * inv * wv.y, g2 * inv * wv.z, g3 * inv * wv.w);
}

// Groups of at most 256 channels (Mamba-2's 8 norm groups at d_inner 1024: 128), float4-aligned:
// one warp per (row, group), lane l holding float4 number l + 32 q (q < V), statistics by warp
// shuffles alone. The kernel above would run such a group as a block of 32-64 threads with a
// barrier per row, limited by the blocks an SM may hold rather than by memory.
constexpr int kNormWarps = 8;

template <int V, class ZT, class OutT>
__global__ void __launch_bounds__(32 * kNormWarps)
gated_rms_norm_warps(const ZT* x, const ZT* z, const float* __restrict__ w, int64_t items, int64_t groups,
                     int S, float eps, OutT* y, int64_t D) {
  pdl_launch_dependents();
  const int lane = threadIdx.x & 31;
  const int64_t item = int64_t(blockIdx.x) * kNormWarps + (threadIdx.x >> 5);  // (row, group)
  if (item >= items) return;  // no barriers below
  const int64_t row = item / groups, g = item % groups;
  const int64_t off = row * D + g * S;
  float gv[V][4];
  double s = 0.0;
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const int c = 4 * (lane + 32 * q);
    if (c >= S) {
      gv[q][0] = gv[q][1] = gv[q][2] = gv[q][3] = 0.0f;
      continue;
    }
    const float4 xv = load_float4(x + off + c);
    const float4 zv = load_float4(z + off + c);
    gv[q][0] = xv.x * silu_f(zv.x);
    gv[q][1] = xv.y * silu_f(zv.y);
    gv[q][2] = xv.z * silu_f(zv.z);
    gv[q][3] = xv.w * silu_f(zv.w);
#pragma unroll
    for (int j = 0; j < 4; ++j) s += double(gv[q][j]) * gv[q][j];
  }
  s = warp_sum(s);
  const float inv = float(1.0 / sqrt(s / double(S) + double(eps)));
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const int c = 4 * (lane + 32 * q);
    if (c >= S) continue;
    const float4 wv = __ldg(reinterpret_cast<const float4*>(w + g * S + c));
    store_out4(y, off + c, gv[q][0] * inv * wv.x, gv[q][1] * inv * wv.y, gv[q][2] * inv * wv.z, gv[q][3] * inv * wv.w);
  }
}

int row_threads(int64_t D) { return D >= 1024 ? 512 : (D >= 256 ? 256 : 64); }

// RMSNorm / LayerNorm rows of at most 1024 floats, float4-aligned: one warp per row, lane l
// holding float4 number l + 32 q (q < V) in registers, statistics by warp shuffles alone (in
// double, the same formulas as the block kernels above). A block per row of d 512 (the study's
// width) spent two barriers on 8 elements a thread: rms_norm x16 took 2.6 ms a mamba-26m step,
// 2.5x its memory time.
template <int V, bool kLayer, class OutT>
__global__ void __launch_bounds__(32 * kNormWarps)
norm_rows_warps(const float* x, const float* __restrict__ w, const float* __restrict__ b, float eps,
                float gain_offset, OutT* y, int64_t rows, int D) {
  pdl_launch_dependents();
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kNormWarps + (threadIdx.x >> 5);
  if (row >= rows) return;  // no barriers below
  const float* xr = x + row * D;
  OutT* yr = y + row * D;
  float xv[V][4];
  double s = 0.0;
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const int c = 4 * (lane + 32 * q);
    const float4 v = c < D ? *reinterpret_cast<const float4*>(xr + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    xv[q][0] = v.x, xv[q][1] = v.y, xv[q][2] = v.z, xv[q][3] = v.w;
#pragma unroll
    for (int j = 0; j < 4; ++j) s += kLayer ? double(xv[q][j]) : double(xv[q][j]) * xv[q][j];
  }
  s = warp_sum(s);
  float inv, meanf = 0.0f;
  if constexpr (kLayer) {
    const double mean = s / double(D);
    double v = 0.0;
#pragma unroll
    for (int q = 0; q < V; ++q) {
      if (4 * (lane + 32 * q) >= D) continue;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const double d = xv[q][j] - mean;
        v += d * d;
      }
    }
    inv = float(1.0 / sqrt(warp_sum(v) / double(D) + double(eps)));
    meanf = float(mean);
  } else {
    inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  }
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const int c = 4 * (lane + 32 * q);
    if (c >= D) continue;
    const float4 wv = __ldg(reinterpret_cast<const float4*>(w + c));
    float4 o;
    if constexpr (kLayer) {
      o = make_float4((xv[q][0] - meanf) * inv * (wv.x + gain_offset), (xv[q][1] - meanf) * inv * (wv.y + gain_offset),
                      (xv[q][2] - meanf) * inv * (wv.z + gain_offset), (xv[q][3] - meanf) * inv * (wv.w + gain_offset));
      if (b) {
        const float4 bv = __ldg(reinterpret_cast<const float4*>(b + c));
        o.x += bv.x, o.y += bv.y, o.z += bv.z, o.w += bv.w;
      }
    } else {
      o = make_float4(xv[q][0] * inv * wv.x, xv[q][1] * inv * wv.y, xv[q][2] * inv * wv.z, xv[q][3] * inv * wv.w);
    }
    store_out4(yr, c, o.x, o.y, o.z, o.w);
  }
}

// The warp kernel for D <= 1024 (a multiple of 4, every row 16-byte aligned), and for D <= 2048
// when there are rows enough to fill the machine with warps (training: at d_model 2048 the block
// kernel moved 1.8 TB/s); false otherwise (decode's few long rows keep a block per row).
template <bool kLayer, class OutT>
bool launch_norm_rows_warps(const float* x, const float* w, const float* b, float eps, float gain_offset, OutT* y,
                            int64_t rows, int64_t D) {
  const bool fits = D <= 1024 || (D <= 2048 && rows >= 4096);
  const bool ok = D % 4 == 0 && fits && aligned16(x) && aligned16(w) && aligned16(y) && (!b || aligned16(b));
  if (!ok) return false;
  const unsigned blocks = unsigned((rows + kNormWarps - 1) / kNormWarps);
  if (D <= 128) norm_rows_warps<1, kLayer, OutT><<<blocks, 32 * kNormWarps>>>(x, w, b, eps, gain_offset, y, rows, int(D));
  else if (D <= 256) norm_rows_warps<2, kLayer, OutT><<<blocks, 32 * kNormWarps>>>(x, w, b, eps, gain_offset, y, rows, int(D));
  else if (D <= 512) norm_rows_warps<4, kLayer, OutT><<<blocks, 32 * kNormWarps>>>(x, w, b, eps, gain_offset, y, rows, int(D));
  else if (D <= 1024) norm_rows_warps<8, kLayer, OutT><<<blocks, 32 * kNormWarps>>>(x, w, b, eps, gain_offset, y, rows, int(D));
  else norm_rows_warps<16, kLayer, OutT><<<blocks, 32 * kNormWarps>>>(x, w, b, eps, gain_offset, y, rows, int(D));
  return true;
}

// One block per row; statistics in double as rms_norm_kernel. Each thread reads x and r before
// writing sum at the same index, so sum may alias x.
__global__ void add_rms_norm_kernel(const float* x, const float* __restrict__ r, const float* __restrict__ w, float eps,
                                    float* sum, float* __restrict__ y, int64_t D) {
  pdl_launch_dependents();  // the next GEMV may start streaming its weights
  __shared__ double scratch[32];
  const int64_t off = int64_t(blockIdx.x) * D;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float v = x[off + i] + r[off + i];
    sum[off + i] = v;
    s += double(v) * v;
  }
  s = block_sum(s, scratch);  // ends with a barrier: every sum element of the row is written
  const float inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) y[off + i] = sum[off + i] * inv * w[i];
}

// The same for rows of D = 8 x blockDim.x (4096 with 512 threads): each thread keeps its 8
// values in registers (two float4 of x and of r), so the row is read once and there is no
// second pass over memory. At batch 1 a norm is one block: latency, not bandwidth, sets its
// time (8.8 us for the generic kernel under ncu, 2026-11-29).
__global__ void add_rms_norm_vec8(const float* x, const float* __restrict__ r, const float* __restrict__ w, float eps,
                                  float* sum, float* __restrict__ y, int64_t D) {
  pdl_launch_dependents();
  __shared__ double scratch[32];
  const int64_t off = int64_t(blockIdx.x) * D + 8 * threadIdx.x;
  const float4* xp = reinterpret_cast<const float4*>(x + off);
  const float4* rp = reinterpret_cast<const float4*>(r + off);
  float4 a = xp[0], b = xp[1];
  const float4 ra = rp[0], rb = rp[1];
  a.x += ra.x; a.y += ra.y; a.z += ra.z; a.w += ra.w;
  b.x += rb.x; b.y += rb.y; b.z += rb.z; b.w += rb.w;
  reinterpret_cast<float4*>(sum + off)[0] = a;
  reinterpret_cast<float4*>(sum + off)[1] = b;
  double s = double(a.x) * a.x + double(a.y) * a.y + double(a.z) * a.z + double(a.w) * a.w + double(b.x) * b.x +
             double(b.y) * b.y + double(b.z) * b.z + double(b.w) * b.w;
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  const float4* wp = reinterpret_cast<const float4*>(w + 8 * threadIdx.x);
  const float4 wa = wp[0], wb = wp[1];
  float4* yp = reinterpret_cast<float4*>(y + off);
  yp[0] = make_float4(a.x * inv * wa.x, a.y * inv * wa.y, a.z * inv * wa.z, a.w * inv * wa.w);
  yp[1] = make_float4(b.x * inv * wb.x, b.y * inv * wb.y, b.z * inv * wb.z, b.w * inv * wb.w);
}

}  // namespace

namespace {

template <class OutT>
void launch_rms_norm(const Tensor& x, const Tensor& w, float eps, OutT* y, int64_t rows, int64_t D) {
  if (!launch_norm_rows_warps<false>(x.f32(), w.f32(), nullptr, eps, 0.0f, y, rows, D))
    rms_norm_kernel<<<unsigned(rows), row_threads(D)>>>(x.f32(), w.f32(), eps, y, D);
}

template <class OutT>
void launch_layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, float gain_offset, OutT* y,
                       int64_t rows, int64_t D) {
  const float* bp = b ? b->f32() : nullptr;
  if (!launch_norm_rows_warps<true>(x.f32(), w.f32(), bp, eps, gain_offset, y, rows, D))
    layer_norm_kernel<<<unsigned(rows), row_threads(D)>>>(x.f32(), w.f32(), bp, eps, gain_offset, y, D);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  if (rows == 0) return;
  if (y.dtype() == DType::BF16) launch_rms_norm(x, w, eps, y.data<__nv_bfloat16>(), rows, D);
  else launch_rms_norm(x, w, eps, y.f32(), rows, D);
  check_launch("rms_norm");
}

void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, bool zero_centered,
                Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  if (rows == 0) return;
  const float gain_offset = zero_centered ? 1.0f : 0.0f;
  if (y.dtype() == DType::BF16) launch_layer_norm(x, w, b, eps, gain_offset, y.data<__nv_bfloat16>(), rows, D);
  else launch_layer_norm(x, w, b, eps, gain_offset, y.f32(), rows, D);
  check_launch("layer_norm");
}

namespace {
// x and z share a dtype: fp32, or bf16 in mixed-precision training (the SSD's output and in_proj's).
template <class ZT, class OutT>
void launch_gated_rms_norm(const Tensor& x, const ZT* zp, const Tensor& w, int64_t group_size, float eps,
                           OutT* y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D > 0 ? x.numel() / D : 0;
  const int64_t groups = D / group_size;
  if (rows == 0) return;
  const ZT* xp = x.data<ZT>();
  // x's and z's rows are read four elements at a time: 16 bytes (fp32) or 8 (bf16), aligned so
  const bool aligned = aligned_to(xp, 4 * sizeof(ZT)) && aligned_to(zp, 4 * sizeof(ZT)) &&
                       aligned16(w.f32()) && aligned16(y);
  const bool vec = group_size % 128 == 0 && group_size <= 4096 && aligned;
  const int64_t items = rows * groups;
  const unsigned warp_blocks = unsigned((items + kNormWarps - 1) / kNormWarps);
  if (aligned && group_size % 4 == 0 && group_size <= 128)
    gated_rms_norm_warps<1><<<warp_blocks, 32 * kNormWarps>>>(xp, zp, w.f32(), items, groups,
                                                             int(group_size), eps, y, D);
  else if (aligned && group_size % 4 == 0 && group_size <= 256)
    gated_rms_norm_warps<2><<<warp_blocks, 32 * kNormWarps>>>(xp, zp, w.f32(), items, groups,
                                                             int(group_size), eps, y, D);
  else if (vec)
    gated_rms_norm_vec4<<<unsigned(rows * groups), unsigned(group_size / 4)>>>(xp, zp, w.f32(), groups, eps,
                                                                                y, D);
  else
    gated_rms_norm_kernel<<<unsigned(rows * groups), row_threads(group_size)>>>(
        xp, zp, w.f32(), group_size, groups, eps, y, D);
  check_launch("gated_rms_norm");
}
}  // namespace

void gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size,
                    float eps, Tensor& y) {
  auto run = [&](auto* zp) {
    if (y.dtype() == DType::BF16) launch_gated_rms_norm(x, zp, w, group_size, eps, y.data<__nv_bfloat16>());
    else launch_gated_rms_norm(x, zp, w, group_size, eps, y.f32());
  };
  if (z.dtype() == DType::BF16) run(z.data<__nv_bfloat16>());
  else run(z.f32());
}

void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D ? x.numel() / D : 0;
  if (rows == 0) return;
  const bool aligned = (reinterpret_cast<uintptr_t>(x.f32()) | reinterpret_cast<uintptr_t>(r.f32()) |
                        reinterpret_cast<uintptr_t>(w.f32()) | reinterpret_cast<uintptr_t>(sum.f32()) |
                        reinterpret_cast<uintptr_t>(y.f32())) % 16 == 0;
  if (aligned && D % 256 == 0 && D / 8 <= 1024)
    add_rms_norm_vec8<<<unsigned(rows), unsigned(D / 8)>>>(x.f32(), r.f32(), w.f32(), eps, sum.f32(), y.f32(), D);
  else
    add_rms_norm_kernel<<<unsigned(rows), D >= 1024 ? 512 : 128>>>(x.f32(), r.f32(), w.f32(), eps, sum.f32(), y.f32(), D);
  check_launch("add_rms_norm");
}

}  // namespace mambalm::ops::cuda
