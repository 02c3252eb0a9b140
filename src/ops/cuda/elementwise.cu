// Elementwise ops on CUDA: the activations, add, neg_exp and softplus_dt (one thread per
// element, grid-stride loops).
#include <cuda_runtime.h>

#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

template <class F>
__global__ void map1(const float* __restrict__ x, float* y, int64_t n, F f) {
  pdl_launch_dependents();  // activations feed the down projection GEMV
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = f(x[i]);
}

template <class F>
__global__ void map2(const float* a, const float* b, float* y, int64_t n, F f) {
  pdl_launch_dependents();  // activations feed the down projection GEMV
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = f(a[i], b[i]);
}

struct SiluF { __device__ float operator()(float v) const { return silu_f(v); } };
struct Relu2F { __device__ float operator()(float v) const { float r = v > 0.0f ? v : 0.0f; return r * r; } };
// Exact GeLU as x/2 * erfc(-x/sqrt 2) (see the CPU kernel for why erfc, not 1 + erf).
struct GeluF { __device__ float operator()(float v) const { return 0.5f * v * erfcf(-v * 0.70710678118654752f); } };
struct NegExpF { __device__ float operator()(float v) const { return -expf(v); } };
struct AddF { __device__ float operator()(float a, float b) const { return a + b; } };
struct SwigluF { __device__ float operator()(float g, float u) const { return silu_f(g) * u; } };

template <class F>
void launch1(const char* op, const Tensor& x, Tensor& y, F f) {
  const int64_t n = y.numel();
  if (n == 0) return;
  map1<<<blocks_for(n), kThreads>>>(x.f32(), y.f32(), n, f);
  check_launch(op);
}

template <class F>
void launch2(const char* op, const Tensor& a, const Tensor& b, Tensor& y, F f) {
  const int64_t n = y.numel();
  if (n == 0) return;
  map2<<<blocks_for(n), kThreads>>>(a.f32(), b.f32(), y.f32(), n, f);
  check_launch(op);
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) { launch2("add", a, b, y, AddF{}); }
void silu(const Tensor& x, Tensor& y) { launch1("silu", x, y, SiluF{}); }
void relu_squared(const Tensor& x, Tensor& y) { launch1("relu_squared", x, y, Relu2F{}); }
void gelu(const Tensor& x, Tensor& y) { launch1("gelu", x, y, GeluF{}); }
void swiglu(const Tensor& gate, const Tensor& up, Tensor& y) { launch2("swiglu", gate, up, y, SwigluF{}); }
void neg_exp(const Tensor& x, Tensor& y) { launch1("neg_exp", x, y, NegExpF{}); }

namespace {
__global__ void softplus_dt_kernel(const float* __restrict__ dt, const float* __restrict__ bias,
                                   float dt_min, float dt_max, float* out, int64_t n, int64_t H) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = dt[i] + bias[i % H];
    const float sp = v > 20.0f ? v : log1pf(expf(v));  // torch softplus, threshold 20
    out[i] = fminf(fmaxf(sp, dt_min), dt_max);
  }
}
}  // namespace

void softplus_dt(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                 Tensor& dt_out) {
  const int64_t n = dt.numel();
  if (n == 0) return;
  softplus_dt_kernel<<<blocks_for(n), kThreads>>>(dt.f32(), dt_bias.f32(), dt_min, dt_max,
                                                  dt_out.f32(), n, dt.dim(-1));
  check_launch("softplus_dt");
}

}  // namespace mambalm::ops::cuda
