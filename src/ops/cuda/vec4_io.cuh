// Four consecutive activations at a time as fp32, whatever their storage (fp32, or bf16 in
// mixed-precision training), for the kernels that read and write rows of them in float4 steps.
#pragma once
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

namespace mambalm::ops::cuda {

// p holds a whole number of `bytes`-sized steps from address 0 (bytes = 4 elements' size for
// load_float4 / store_float4).
__host__ __device__ inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Four consecutive elements (p aligned to four of them) as fp32, and four fp32 values stored so.
__device__ __forceinline__ float4 load_float4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load_float4(const __nv_bfloat16* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
  const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ void store_float4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store_float4(__nv_bfloat16* p, float4 v) {
  const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&a);
  u.y = *reinterpret_cast<const uint32_t*>(&b);
  *reinterpret_cast<uint2*>(p) = u;
}

}  // namespace mambalm::ops::cuda
