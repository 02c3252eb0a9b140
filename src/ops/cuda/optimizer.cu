// The optimizer's ops on CUDA (ops/forward_ops.inc): the AdamW update and the two reductions the
// trainer runs over every gradient (the squared norm for clipping, the finiteness check).
//
// adamw_update: one fused pass, float4 loads and stores of master, grad, m and v (16 bytes a
// stream) and, for a BF16 copy, four bf16 values (8 bytes) rounded to nearest even from the new
// master; 28 bytes an element (30 with the copy), memory-bound. The arithmetic is the CPU's,
// element by element. Unaligned tensors take the same kernel with scalar accesses.
//
// squared_norm, nonfinite_flag: a fixed grid (the block count depends on the element count only)
// of grid-stride partials, then the last block to finish (a device counter) combines the
// partials in block order and writes the result: one launch per tensor, and the same value every
// run. squared_norm accumulates x * x in double (each product exact), so it differs from the
// CPU's double sum only by the order of the additions (relative ~1e-16 log n).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

// ---- AdamW ----------------------------------------------------------------------------------

enum class CopyKind { kNone, kF32, kBF16 };

struct AdamWArgs {
  float* w;
  const float* g;
  float* m;
  float* v;
  void* copy;
  float b1, b2, gs, step, ibc2, eps, shrink;
};

__device__ __forceinline__ float adamw_one(const AdamWArgs& a, float w, float g, float& m, float& v) {
  const float gj = g * a.gs;
  m = a.b1 * m + (1.0f - a.b1) * gj;
  v = a.b2 * v + (1.0f - a.b2) * gj * gj;
  return w * a.shrink - a.step * m / (sqrtf(v) * a.ibc2 + a.eps);
}

// Vectorised over the first n4 quads when kVec (every stream 16-byte aligned, a bf16 copy 8-byte
// aligned), scalar over the rest.
template <CopyKind kCopy, bool kVec>
__global__ void adamw_kernel(AdamWArgs a, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t n4 = kVec ? n / 4 : 0;
  for (int64_t i = tid; i < n4; i += stride) {
    float4 w = reinterpret_cast<const float4*>(a.w)[i];
    const float4 g = reinterpret_cast<const float4*>(a.g)[i];
    float4 m = reinterpret_cast<const float4*>(a.m)[i];
    float4 v = reinterpret_cast<const float4*>(a.v)[i];
    w.x = adamw_one(a, w.x, g.x, m.x, v.x);
    w.y = adamw_one(a, w.y, g.y, m.y, v.y);
    w.z = adamw_one(a, w.z, g.z, m.z, v.z);
    w.w = adamw_one(a, w.w, g.w, m.w, v.w);
    reinterpret_cast<float4*>(a.w)[i] = w;
    reinterpret_cast<float4*>(a.m)[i] = m;
    reinterpret_cast<float4*>(a.v)[i] = v;
    if constexpr (kCopy == CopyKind::kF32) reinterpret_cast<float4*>(a.copy)[i] = w;
    if constexpr (kCopy == CopyKind::kBF16) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(w.x, w.y), hi = __floats2bfloat162_rn(w.z, w.w);
      uint2 packed;
      packed.x = *reinterpret_cast<const uint32_t*>(&lo);
      packed.y = *reinterpret_cast<const uint32_t*>(&hi);
      reinterpret_cast<uint2*>(a.copy)[i] = packed;
    }
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) {
    float m = a.m[i], v = a.v[i];
    const float w = adamw_one(a, a.w[i], a.g[i], m, v);
    a.w[i] = w;
    a.m[i] = m;
    a.v[i] = v;
    if constexpr (kCopy == CopyKind::kF32) static_cast<float*>(a.copy)[i] = w;
    if constexpr (kCopy == CopyKind::kBF16) static_cast<__nv_bfloat16*>(a.copy)[i] = __float2bfloat16_rn(w);
  }
}

template <CopyKind kCopy>
void launch_adamw(const AdamWArgs& a, int64_t n, bool vec) {
  const int64_t work = vec ? std::max<int64_t>(n / 4, n % 4) : n;
  if (vec) adamw_kernel<kCopy, true><<<blocks_for(work), kThreads>>>(a, n);
  else adamw_kernel<kCopy, false><<<blocks_for(work), kThreads>>>(a, n);
}

// ---- reductions -----------------------------------------------------------------------------

constexpr int kRedThreads = 256;
constexpr int kRedMaxBlocks = 1024;

// Blocks for n elements: one per 16K elements (each thread then handles 16 quads), at most
// kRedMaxBlocks; a function of n alone, so the partition and the sums are the same every run.
unsigned reduction_blocks(int64_t n) {
  const int64_t b = (n + 16383) / 16384;
  return unsigned(std::clamp<int64_t>(b, 1, kRedMaxBlocks));
}

// Scratch of one reduction kind: the block partials and the arrival counter (zero between
// calls: the last block resets it). Allocated once at a fixed size.
template <class T>
struct ReductionScratch {
  T* partial;
  unsigned* counter;
};

template <class T>
ReductionScratch<T> reduction_scratch(const char* op) {
  static GrowOnlyBuffer buf;  // zero-filled when allocated: the counter starts at 0
  char* p = static_cast<char*>(buf.get(kRedMaxBlocks * sizeof(T) + 256, op));
  return {reinterpret_cast<T*>(p + 256), reinterpret_cast<unsigned*>(p)};
}

// True in every thread of the block that arrives last (after its partial is visible).
__device__ __forceinline__ bool last_block_arrives(unsigned* counter) {
  __shared__ bool last;
  __syncthreads();  // this block's partial has been written (by thread 0)
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  return last;
}

__global__ void __launch_bounds__(kRedThreads)
squared_norm_kernel(const float* __restrict__ x, int64_t n, bool vec, double* partial, unsigned* counter,
                    double* __restrict__ out) {
  __shared__ double scratch[32];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t n4 = vec ? n / 4 : 0;
  double s = 0.0;
  for (int64_t i = tid; i < n4; i += stride) {
    const float4 q = reinterpret_cast<const float4*>(x)[i];
    s += double(q.x) * q.x;
    s += double(q.y) * q.y;
    s += double(q.z) * q.z;
    s += double(q.w) * q.w;
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) s += double(x[i]) * x[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
  if (!last_block_arrives(counter)) return;
  __threadfence();
  double t = 0.0;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) t += static_cast<volatile double*>(partial)[b];
  t = block_sum(t, scratch);
  if (threadIdx.x == 0) {
    *out = t;
    *counter = 0;
  }
}

__device__ __forceinline__ bool nonfinite(float v) { return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u; }

__global__ void __launch_bounds__(kRedThreads)
nonfinite_kernel(const float* __restrict__ x, int64_t n, bool vec, int* partial, unsigned* counter,
                 int32_t* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t n4 = vec ? n / 4 : 0;
  bool bad = false;
  for (int64_t i = tid; i < n4; i += stride) {
    const float4 q = reinterpret_cast<const float4*>(x)[i];
    bad |= nonfinite(q.x) | nonfinite(q.y) | nonfinite(q.z) | nonfinite(q.w);
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) bad |= nonfinite(x[i]);
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) partial[blockIdx.x] = bad;
  if (!last_block_arrives(counter)) return;
  __threadfence();
  int any = 0;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) any |= static_cast<volatile int*>(partial)[b];
  any = __syncthreads_or(any);
  if (threadIdx.x == 0) {
    *out = any ? 1 : 0;
    *counter = 0;
  }
}

}  // namespace

void adamw_update(Tensor& master, Tensor* copy, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  const int64_t n = master.numel();
  if (n == 0) return;
  AdamWArgs a{master.f32(), grad.f32(), m.f32(), v.f32(), nullptr,
              s.beta1,      s.beta2,    s.grad_scale, s.step_size, s.inv_sqrt_bias2, s.eps, s.shrink};
  const bool streams_aligned = aligned16(a.w) && aligned16(a.g) && aligned16(a.m) && aligned16(a.v);
  if (copy && copy->raw() != master.raw()) {
    a.copy = copy->raw();
    if (copy->dtype() == DType::BF16)
      launch_adamw<CopyKind::kBF16>(a, n, streams_aligned && reinterpret_cast<uintptr_t>(a.copy) % 8 == 0);
    else
      launch_adamw<CopyKind::kF32>(a, n, streams_aligned && aligned16(a.copy));
  } else {
    launch_adamw<CopyKind::kNone>(a, n, streams_aligned);
  }
  check_launch("adamw_update");
}

void squared_norm(const Tensor& x, Tensor& out) {
  const int64_t n = x.numel();
  const auto sc = reduction_scratch<double>("squared_norm");
  squared_norm_kernel<<<reduction_blocks(n), kRedThreads>>>(x.f32(), n, aligned16(x.f32()), sc.partial, sc.counter,
                                                            out.data<double>());
  check_launch("squared_norm");
}

void nonfinite_flag(const Tensor& x, Tensor& out) {
  const int64_t n = x.numel();
  const auto sc = reduction_scratch<int>("nonfinite_flag");
  nonfinite_kernel<<<reduction_blocks(n), kRedThreads>>>(x.f32(), n, aligned16(x.f32()), sc.partial, sc.counter,
                                                         out.data<int32_t>());
  check_launch("nonfinite_flag");
}

}  // namespace mambalm::ops::cuda
