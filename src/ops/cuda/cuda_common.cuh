// Helpers shared by the CUDA kernels: error checks that throw mambalm errors, launch sizes,
// warp and block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/device.h"
#include "core/error.h"
#include "ops/cuda/bf16_convert.cuh"

namespace mambalm::ops::cuda {

inline void check_cuda(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess)
    fail(std::string("op ") + op + " (cuda)", std::string(what) + ": " + cudaGetErrorString(e));
}

// After every launch: catches bad launch configurations at once (execution errors surface at
// the next synchronising call).
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), op, "kernel launch"); }

constexpr int kThreads = 256;

// Device time of work queued on cudaStreamPerThread, by a pair of CUDA events made once:
// ms(launch) queues `launch` between them and waits for it (the autotuner's candidates, the
// profile's GEMMs, the matrix rate).
class StreamTimer {
 public:
  explicit StreamTimer(const char* op) : op_(op) {
    check_cuda(cudaEventCreate(&start_), op_, "cudaEventCreate");
    check_cuda(cudaEventCreate(&stop_), op_, "cudaEventCreate");
  }
  ~StreamTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;
  template <class Launch>
  float ms(Launch launch) {
    check_cuda(cudaEventRecord(start_, cudaStreamPerThread), op_, "cudaEventRecord");
    launch();
    check_cuda(cudaEventRecord(stop_, cudaStreamPerThread), op_, "cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop_), op_, "cudaEventSynchronize");
    float t = 0.0f;
    check_cuda(cudaEventElapsedTime(&t, start_, stop_), op_, "cudaEventElapsedTime");
    return t;
  }

 private:
  const char* op_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Device scratch that only grows: one static instance per call site. A call needing more than
// any earlier one frees the old block (cudaFree waits for queued work) and allocates anew;
// steady-state inference (same or smaller shapes) never allocates, and growth is refused inside
// a CUDA-graph capture (decode steps are captured after an uncaptured warm-up of the same
// shapes). Zero-filled when allocated.
struct GrowOnlyBuffer {
  void* data = nullptr;
  size_t bytes = 0;
  void* get(size_t need, const char* op) {
    if (need <= bytes) return data;
    if (cuda_capturing())
      fail(std::string("op ") + op + " (cuda)", "scratch grows inside a captured step",
           "run the step once uncaptured first so that its scratch reaches full size");
    if (data) check_cuda(cudaFree(data), op, "cudaFree (scratch growth)");
    data = nullptr;
    bytes = 0;
    check_cuda(cudaMalloc(&data, need), op, "cudaMalloc (scratch)");
    check_cuda(cudaMemset(data, 0, need), op, "cudaMemset (scratch)");
    check_cuda(cudaDeviceSynchronize(), op, "scratch");
    bytes = need;
    return data;
  }
  template <class T>
  T* get(size_t count, const char* op) {
    return static_cast<T*>(get(count * sizeof(T), op));
  }
};

// An F32 CUDA tensor of `shape` over `buf` (the caller's scratch for this role).
inline Tensor f32_scratch(GrowOnlyBuffer& buf, const Shape& shape, const char* op) {
  return Tensor::view_of(buf.get<float>(size_t(shape_numel(shape)), op), shape, DType::F32, nullptr, Device::CUDA);
}

// t itself when F32; a BF16 t widened (exactly) into an F32 tensor over `buf`. The paths that
// take mixed precision's bf16 activations but have only fp32 kernels run on such copies.
inline Tensor as_f32(const Tensor& t, GrowOnlyBuffer& buf, const char* op) {
  if (t.dtype() == DType::F32) return t;
  Tensor f = f32_scratch(buf, t.shape(), op);
  bf16_to_f32({{t.data<uint16_t>(), f.f32(), t.numel()}});
  return f;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

inline int sm_count() {
  static int n = 0;
  if (n == 0) {
    int dev = 0;
    check_cuda(cudaGetDevice(&dev), "device", "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "device", "SM count");
  }
  return n;
}

// Rotate-half RoPE of one pair (v[i], v[i + half]) at position `pos`: the angle in double, cos and
// sin rounded to fp32 once, as the CPU backend does.
__device__ __forceinline__ void rope_pair(float* v, int64_t i, int64_t half, double pos, int64_t rotary_dim, double theta) {
  const double inv_freq = pow(theta, -2.0 * double(i) / double(rotary_dim));
  double sd, cd;
  sincos(pos * inv_freq, &sd, &cd);
  const float c = float(cd), s = float(sd);
  const float a = v[i], b = v[i + half];
  v[i] = a * c - b * s;
  v[i + half] = b * c + a * s;
}

// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 16) b = 65535LL * 16;
  return static_cast<unsigned>(b);
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// `scratch` holds 32 values; the call ends with a barrier so scratch may be reused.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? scratch[lane] : T(0);
  r = warp_sum(r);
  __syncthreads();
  return r;
}

// Lanes-per-state-row choice of the scans: the smallest NK in {1, 2, 4, 8} with 32 NK >= N.
inline int lanes_k(int64_t N, const char* op) {
  if (N <= 32) return 1;
  if (N <= 64) return 2;
  if (N <= 128) return 4;
  if (N <= 256) return 8;
  fail(std::string("op ") + op + " (cuda)",
       "state size N = " + std::to_string(N) + " is above the supported 256");
}

// Programmatic dependent launch (sm_90): a kernel launched with the programmatic-serialization
// attribute (the decode GEMV) may start while the kernel before it finishes; it must call
// pdl_wait() before reading anything that kernel wrote. pdl_launch_dependents() at the top of
// a kernel lets such a successor start as soon as every block of this one is running. Both are
// no-ops without the attribute and on older architectures.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }

// One element of an fp32 or bf16 array as fp32, and an fp32 value stored into one (bf16: rounded
// to nearest even): for kernels templated on their activations' dtype.
__device__ __forceinline__ float as_float(float v) { return v; }
__device__ __forceinline__ float as_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void store_float(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

}  // namespace mambalm::ops::cuda
