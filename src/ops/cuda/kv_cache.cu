// Inference ops on CUDA: argmax, and for batches of sequences at their own positions rope_at and
// kv_append.
// Positions are read on the device (I32 [B]), so a captured decode step stays valid as they
// advance between replays.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

// One thread per (b, t, h, i < half); angle in double, cos/sin rounded to fp32 once, as rope().
__global__ void rope_at_kernel(float* x, const int32_t* __restrict__ positions, int64_t B, int64_t T, int64_t H,
                               int64_t Dh, int64_t half, int64_t rotary_dim, double theta) {
  const int64_t n = B * T * H * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t h = (idx / half) % H;
    const int64_t row = idx / (half * H);  // b * T + t
    const int64_t b = row / T, t = row % T;
    const double inv_freq = pow(theta, -2.0 * double(i) / double(rotary_dim));
    const double angle = double(positions[b] + t) * inv_freq;
    double sd, cd;
    sincos(angle, &sd, &cd);
    const float c = float(cd), s = float(sd);
    float* v = x + (row * H + h) * Dh;
    const float a = v[i], bb = v[i + half];
    v[i] = a * c - bb * s;
    v[i + half] = bb * c + a * s;
  }
}

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// cache[b, positions[b] + t, :] = x[b, t, :] with `row` = Hkv * Dh elements per token.
template <class T>
__global__ void kv_append_kernel(const float* __restrict__ x, const int32_t* __restrict__ positions, T* cache,
                                 int64_t B, int64_t Tn, int64_t row, int64_t capacity) {
  const int64_t n = B * Tn * row;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = idx % row;
    const int64_t bt = idx / row;
    const int64_t b = bt / Tn, t = bt % Tn;
    const int64_t p = positions[b] + t;
    if (p < capacity) store(cache + (b * capacity + p) * row + e, x[idx]);  // never write past the cache
  }
}

// One block per row: each thread scans a strided slice, then a shared-memory reduction keeps the
// largest value and, among equals, the smallest index (the CPU's first-index rule).
__global__ void argmax_kernel(const float* __restrict__ x, int64_t V, int64_t limit, int32_t* __restrict__ out) {
  __shared__ float best_v[256];
  __shared__ int32_t best_i[256];
  const float* row = x + blockIdx.x * V;
  float bv = -INFINITY;
  int32_t bi = 0x7fffffff;
  for (int64_t j = threadIdx.x; j < limit; j += blockDim.x) {
    const float v = row[j];
    if (v > bv || (v == bv && j < bi) || bi == 0x7fffffff) {
      bv = v;
      bi = int32_t(j);
    }
  }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = best_v[threadIdx.x + s];
      const int32_t oi = best_i[threadIdx.x + s];
      if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x])) {
        best_v[threadIdx.x] = ov;
        best_i[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = best_i[0];
}

}  // namespace

void argmax(const Tensor& x, int64_t limit, Tensor& out) {
  const int64_t M = x.dim(0), V = x.dim(1);
  if (M == 0) return;
  argmax_kernel<<<unsigned(M), 256>>>(x.f32(), V, limit, out.data<int32_t>());
  check_launch("argmax");
}

void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), Dh = x.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || x.numel() == 0) return;
  rope_at_kernel<<<blocks_for(B * T * H * half), kThreads>>>(x.f32(), positions.data<int32_t>(), B, T, H, Dh, half,
                                                             rotary_dim, theta);
  check_launch("rope_at");
}

void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache) {
  const int64_t B = x.dim(0), T = x.dim(1), row = x.dim(2) * x.dim(3), cap = cache.dim(1);
  if (x.numel() == 0) return;
  if (cache.dtype() == DType::BF16)
    kv_append_kernel<<<blocks_for(x.numel()), kThreads>>>(x.f32(), positions.data<int32_t>(),
                                                          cache.data<__nv_bfloat16>(), B, T, row, cap);
  else
    kv_append_kernel<<<blocks_for(x.numel()), kThreads>>>(x.f32(), positions.data<int32_t>(), cache.f32(), B, T, row,
                                                          cap);
  check_launch("kv_append");
}

}  // namespace mambalm::ops::cuda
