// Helpers shared by the CUDA kernels: error checks that throw mambalm errors, launch sizes,
// warp and block reductions.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/error.h"

namespace mambalm::ops::cuda {

inline void check_cuda(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess)
    fail(std::string("op ") + op + " (cuda)", std::string(what) + ": " + cudaGetErrorString(e));
}

// After every launch: catches bad launch configurations at once (execution errors surface at
// the next synchronising call).
inline void check_launch(const char* op) { check_cuda(cudaGetLastError(), op, "kernel launch"); }

constexpr int kThreads = 256;

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

}  // namespace mambalm::ops::cuda
