// Inference ops on CUDA, the counterpart of ops/cpu/inference.cpp: argmax, and for batches of
// sequences at their own positions rope_at and kv_append.
// Positions are read on the device (I32 [B]), so a captured decode step stays valid as they
// advance between replays.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/cuda_memory.h"
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
    rope_pair(x + (row * H + h) * Dh, i, half, double(positions[b] + t), rotary_dim, theta);
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

// Argmax in two passes: kArgmaxChunks blocks per row each reduce a contiguous chunk to its
// (value, index) best, then one block per row reduces those. The largest value wins and, among
// equals, the smallest index (the CPU's first-index rule). One block per row walked the 256000
// logits of the 8B vocabulary in ~390 us (ncu, 2026-11-29), more than a tenth of a decode step.
constexpr int kArgmaxChunks = 128;
constexpr int kArgmaxThreads = 256;

__device__ __forceinline__ void better(float& bv, int32_t& bi, float v, int32_t i) {
  if (v > bv || (v == bv && i < bi)) {
    bv = v;
    bi = i;
  }
}

__device__ void block_best(float& bv, int32_t& bi) {
  __shared__ float sv[kArgmaxThreads];
  __shared__ int32_t si[kArgmaxThreads];
  sv[threadIdx.x] = bv;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int s = kArgmaxThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) better(sv[threadIdx.x], si[threadIdx.x], sv[threadIdx.x + s], si[threadIdx.x + s]);
    __syncthreads();
  }
  bv = sv[0];
  bi = si[0];
}

__global__ void argmax_partial(const float* __restrict__ x, int64_t V, int64_t limit, float* __restrict__ pv,
                               int32_t* __restrict__ pi) {
  const int64_t chunk = (limit + kArgmaxChunks - 1) / kArgmaxChunks;
  const int64_t begin = blockIdx.x * chunk, end = min(limit, begin + chunk);
  const float* row = x + blockIdx.y * V;
  float bv = -INFINITY;
  int32_t bi = 0x7fffffff;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) better(bv, bi, row[j], int32_t(j));
  block_best(bv, bi);
  if (threadIdx.x == 0) {
    pv[blockIdx.y * kArgmaxChunks + blockIdx.x] = bv;
    pi[blockIdx.y * kArgmaxChunks + blockIdx.x] = bi;
  }
}

__global__ void argmax_final(const float* __restrict__ pv, const int32_t* __restrict__ pi, int32_t* __restrict__ out) {
  float bv = -INFINITY;
  int32_t bi = 0x7fffffff;
  for (int j = threadIdx.x; j < kArgmaxChunks; j += blockDim.x)
    better(bv, bi, pv[blockIdx.x * kArgmaxChunks + j], pi[blockIdx.x * kArgmaxChunks + j]);
  block_best(bv, bi);
  // A row of NaNs leaves no winner: report index 0, as the CPU loop does.
  if (threadIdx.x == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
}

}  // namespace

void argmax(const Tensor& x, int64_t limit, Tensor& out) {
  const int64_t M = x.dim(0), V = x.dim(1);
  if (M == 0) return;
  // Partial results: a grow-only buffer (sized before any capture by the uncaptured warm-up).
  static GrowOnlyBuffer partial;
  float* pv = partial.get<float>(size_t(2 * M * kArgmaxChunks), "argmax");
  auto* pi = reinterpret_cast<int32_t*>(pv + M * kArgmaxChunks);
  argmax_partial<<<dim3(kArgmaxChunks, unsigned(M)), kArgmaxThreads>>>(x.f32(), V, limit, pv, pi);
  check_launch("argmax");
  argmax_final<<<unsigned(M), kArgmaxThreads>>>(pv, pi, out.data<int32_t>());
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
