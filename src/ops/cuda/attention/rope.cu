// Rotary position embedding on CUDA (rotate-half convention), in place, for a batch in lockstep
// at positions pos0 + t, and its backward (the rotation by -angle, the transpose of the
// forward's). (rope_at, for sequences at their own positions, is in decode.cu.) Memory-bound:
// one read and one write of the rotated channels, ~1 GB/ms on the H200.
#include <cuda_runtime.h>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {
// One thread per (b, t, h, i < half). The angle is formed in double and cos/sin rounded to fp32
// once, as on the CPU, so both backends rotate by the same fp32 factors.
__global__ void rope_kernel(float* x, int64_t rows /*B*T*/, int64_t T, int64_t H, int64_t Dh,
                            int64_t half, int64_t pos0, int64_t rotary_dim, double theta) {
  const int64_t n = rows * H * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t h = (idx / half) % H;
    const int64_t row = idx / (half * H);
    const int64_t t = row % T;
    rope_pair(x + (row * H + h) * Dh, i, half, double(pos0 + t), rotary_dim, theta);
  }
}
}  // namespace

void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), Dh = x.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || x.numel() == 0) return;
  rope_kernel<<<blocks_for(B * T * H * half), kThreads>>>(x.f32(), B * T, T, H, Dh, half, pos0,
                                                          rotary_dim, theta);
  check_launch("rope");
}

namespace {
// The backward of rope_kernel: the same fp32 cos / sin (angle in double, rounded once, as the
// CPU does), applied as the inverse rotation
//   dx[i] <- dx[i] cos + dx[i + half] sin;  dx[i + half] <- dx[i + half] cos - dx[i] sin.
__global__ void rope_backward_kernel(float* x, int64_t rows /*B*T*/, int64_t T, int64_t H,
                                     int64_t Dh, int64_t half, int64_t pos0, int64_t rotary_dim,
                                     double theta) {
  const int64_t n = rows * H * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t h = (idx / half) % H;
    const int64_t row = idx / (half * H);
    const int64_t t = row % T;
    const double inv_freq = pow(theta, -2.0 * double(i) / double(rotary_dim));
    double sd, cd;
    sincos(double(pos0 + t) * inv_freq, &sd, &cd);
    const float c = float(cd), s = float(sd);
    float* v = x + (row * H + h) * Dh;
    const float a = v[i], b = v[i + half];
    v[i] = a * c + b * s;
    v[i + half] = b * c - a * s;
  }
}
}  // namespace

void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta) {
  const int64_t B = dx.dim(0), T = dx.dim(1), H = dx.dim(2), Dh = dx.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || dx.numel() == 0) return;
  rope_backward_kernel<<<blocks_for(B * T * H * half), kThreads>>>(dx.f32(), B * T, T, H, Dh, half,
                                                                   pos0, rotary_dim, theta);
  check_launch("rope_backward");
}

}  // namespace mambalm::ops::cuda
