// Rotary position embedding on CUDA (rotate-half convention), in place, for a batch in lockstep
// at positions pos0 + t, and its backward (the rotation by -angle, the transpose of the
// forward's). (rope_at, for sequences at their own positions, is in decode.cu.) Memory-bound:
// one read and one write of the rotated channels, ~1 GB/ms on the H200. x is fp32, or bf16
// (mixed precision's queries and keys: rotated in fp32, rounded once).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// One thread per (b, t, h, i < half). The angle is formed in double and cos/sin rounded to fp32
// once, as on the CPU, so both backends rotate by the same fp32 factors. sign = 1: the forward
// rotation; -1: its inverse (the backward).
template <class T>
__global__ void rope_kernel(T* x, int64_t rows /*B*T*/, int64_t T_, int64_t H, int64_t Dh, int64_t half, int64_t pos0,
                            int64_t rotary_dim, double theta, float sign) {
  const int64_t n = rows * H * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t h = (idx / half) % H;
    const int64_t row = idx / (half * H);
    const int64_t t = row % T_;
    const double inv_freq = pow(theta, -2.0 * double(i) / double(rotary_dim));
    double sd, cd;
    sincos(double(pos0 + t) * inv_freq, &sd, &cd);
    const float c = float(cd), s = sign * float(sd);
    T* v = x + (row * H + h) * Dh;
    const float a = load(v + i), b = load(v + i + half);
    store(v + i, a * c - b * s);
    store(v + i + half, b * c + a * s);
  }
}

void launch_rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta, float sign, const char* op) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), Dh = x.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || x.numel() == 0) return;
  const unsigned grid = blocks_for(B * T * H * half);
  if (x.dtype() == DType::BF16)
    rope_kernel<<<grid, kThreads>>>(x.data<__nv_bfloat16>(), B * T, T, H, Dh, half, pos0, rotary_dim, theta, sign);
  else
    rope_kernel<<<grid, kThreads>>>(x.f32(), B * T, T, H, Dh, half, pos0, rotary_dim, theta, sign);
  check_launch(op);
}
}  // namespace

void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta) { launch_rope(x, pos0, rotary_dim, theta, 1.0f, "rope"); }

// The backward is the inverse rotation (the transpose of the forward's), by the same fp32 cos and
// -sin: dx[i] <- dx[i] cos + dx[i + half] sin; dx[i + half] <- dx[i + half] cos - dx[i] sin.
void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta) {
  launch_rope(dx, pos0, rotary_dim, theta, -1.0f, "rope_backward");
}

}  // namespace mambalm::ops::cuda
