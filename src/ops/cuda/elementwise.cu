// Elementwise ops on CUDA: the activations, add, neg_exp and softplus_dt (one thread per
// element, grid-stride loops), and their backward passes. The activations and their backwards
// take fp32 or bf16 tensors (all of one dtype; bf16 for the MLP's intermediates in mixed
// precision, computed in fp32). The stream ops move four elements per access when every tensor
// is aligned to that (a scalar loop takes the rest); each thread reads an element's
// inputs before writing its outputs, so dx may alias dy as the contract allows. The formulas are
// the CPU's, in the same order (expf / erfcf where the CPU has exp_fast / std::erfc: a few ulp).
// softplus_dt_backward sums ddt over rows into ddt_bias in the same pass: fixed row chunks summed
// in double, the chunks added in order (bit-identical run to run, as the CPU's double sums).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/column_sums.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

struct SiluF { __device__ float operator()(float v) const { return silu_f(v); } };
struct Relu2F { __device__ float operator()(float v) const { float r = v > 0.0f ? v : 0.0f; return r * r; } };
// Exact GeLU as x/2 * erfc(-x/sqrt 2) (see the CPU kernel for why erfc, not 1 + erf).
struct GeluF { __device__ float operator()(float v) const { return 0.5f * v * erfcf(-v * 0.70710678118654752f); } };
// Phi(v) = P(X <= v), X standard normal, without erfcf: erfc(z) for z >= 0 through the Chebyshev
// fit of Numerical Recipes (2nd ed., section 6.2), erfc(z) = t exp(-z^2 + P(t)) with t = 1 / (1 + z/2),
// fractional error below 1.2e-7 for every z (fp32 evaluation adds a few ulp, and in the far tail
// the rounding of -z^2, up to ~1e-5 relative where Phi < 1e-30). One reciprocal, nine FMAs and
// one exp, branch-free: erfcf's longer path made GeLU compute-bound on bf16 tensors (0.36 ms
// against relu^2's ~0.1 ms for the 67M activations of a d_model 2048 MLP at 16K tokens, H200).
// The reciprocal and the exp are the hardware's approximations (__fdividef: 2 ulp; __expf: 2 ulp
// plus ~2^-24 |x| log2(e) from rounding its argument, ~1e-5 relative where exp(-z^2) underflows
// anyway): IEEE division and expf are ~20 instructions each, which kept this kernel issue-bound at
// ~2.1 TB/s (0.25 ms for 134M values) after the erfcf change. The error stays far below the
// 2^-9 of the bf16 rounding that follows. The bf16 path only; fp32 tensors keep erfcf.
__device__ __forceinline__ float erfc_nonnegative(float z) {
  const float t = __fdividef(1.0f, fmaf(0.5f, z, 1.0f));
  float p = 0.17087277f;
  p = fmaf(p, t, -0.82215223f);
  p = fmaf(p, t, 1.48851587f);
  p = fmaf(p, t, -1.13520398f);
  p = fmaf(p, t, 0.27886807f);
  p = fmaf(p, t, -0.18628806f);
  p = fmaf(p, t, 0.09678418f);
  p = fmaf(p, t, 0.37409196f);
  p = fmaf(p, t, 1.00002368f);
  p = fmaf(p, t, -1.26551223f);
  return t * __expf(fmaf(-z, z, p));
}
__device__ __forceinline__ float normal_cdf_fast(float v) {
  const float half_tail = 0.5f * erfc_nonnegative(fabsf(v) * 0.70710678118654752f);  // P(X > |v|)
  return v <= 0.0f ? half_tail : 1.0f - half_tail;
}
struct GeluFastF { __device__ float operator()(float v) const { return v * normal_cdf_fast(v); } };
struct NegExpF { __device__ float operator()(float v) const { return -expf(v); } };
struct AddF { __device__ float operator()(float a, float b) const { return a + b; } };
struct SwigluF { __device__ float operator()(float g, float u) const { return silu_f(g) * u; } };

}  // namespace

namespace {
__device__ __forceinline__ float softplus_dt_value(float v, float dt_min, float dt_max) {
  const float sp = v > 20.0f ? v : log1pf(expf(v));  // torch softplus, threshold 20
  return fminf(fmaxf(sp, dt_min), dt_max);
}

// V consecutive elements of a row per step (V = 4: H % 4 == 0 and 16-byte aligned). Index I is
// uint32_t when n < 2^32: a 64-bit remainder for the bias column cost more than the arithmetic
// (Mamba-1's [B, T, Di] dt: 0.37 ms for 67M elements, a fifth of the bandwidth). n < 2^31 then.
template <int V, class I>
__global__ void softplus_dt_kernel(const float* __restrict__ dt, const float* __restrict__ bias,
                                   float dt_min, float dt_max, float* out, I n, I H) {
  for (I i = (blockIdx.x * I(blockDim.x) + threadIdx.x) * V; i < n; i += I(gridDim.x) * blockDim.x * V) {
    const I c = i % H;
    if constexpr (V == 4) {
      const float4 x = *reinterpret_cast<const float4*>(dt + i), b = *reinterpret_cast<const float4*>(bias + c);
      *reinterpret_cast<float4*>(out + i) =
          make_float4(softplus_dt_value(x.x + b.x, dt_min, dt_max), softplus_dt_value(x.y + b.y, dt_min, dt_max),
                      softplus_dt_value(x.z + b.z, dt_min, dt_max), softplus_dt_value(x.w + b.w, dt_min, dt_max));
    } else {
      out[i] = softplus_dt_value(dt[i] + bias[c], dt_min, dt_max);
    }
  }
}
}  // namespace

void softplus_dt(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                 Tensor& dt_out) {
  const int64_t n = dt.numel(), H = dt.dim(-1);
  if (n == 0) return;
  const bool vec = H % 4 == 0 && aligned16(dt.f32()) && aligned16(dt_bias.f32()) && aligned16(dt_out.f32());
  if (n < (int64_t(1) << 31)) {  // i + the grid's stride (at most 2^30) stays below 2^32
    const uint32_t n32 = uint32_t(n), H32 = uint32_t(H);
    if (vec)
      softplus_dt_kernel<4, uint32_t><<<blocks_for(n / 4), kThreads>>>(dt.f32(), dt_bias.f32(), dt_min, dt_max,
                                                                        dt_out.f32(), n32, H32);
    else
      softplus_dt_kernel<1, uint32_t><<<blocks_for(n), kThreads>>>(dt.f32(), dt_bias.f32(), dt_min, dt_max,
                                                                    dt_out.f32(), n32, H32);
  } else {
    softplus_dt_kernel<1, int64_t><<<blocks_for(n), kThreads>>>(dt.f32(), dt_bias.f32(), dt_min, dt_max, dt_out.f32(),
                                                                 n, H);
  }
  check_launch("softplus_dt");
}

// ---- backward ----------------------------------------------------------------------------------

namespace {

// One 16-byte access of a stream as fp32 values: 4 fp32 or 8 bf16 elements (bf16 widened exactly
// on load, rounded to nearest even on store). 16 bytes per thread per stream keeps enough bytes
// in flight for the HBM; 8-byte bf16 accesses left GeLU at ~1.9 TB/s on the H200.
template <class T>
constexpr int kVec = 16 / int(sizeof(T));
__device__ __forceinline__ void load_vec(const float* p, int64_t q, float (&v)[4]) {
  const float4 a = reinterpret_cast<const float4*>(p)[q];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
__device__ __forceinline__ void load_vec(const __nv_bfloat16* p, int64_t q, float (&v)[8]) {
  const uint4 a = reinterpret_cast<const uint4*>(p)[q];
  const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[j]));
    v[2 * j] = f.x, v[2 * j + 1] = f.y;
  }
}
__device__ __forceinline__ void store_vec(float* p, int64_t q, const float (&v)[4]) {
  reinterpret_cast<float4*>(p)[q] = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store_vec(__nv_bfloat16* p, int64_t q, const float (&v)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * j], v[2 * j + 1]);
    w[j] = *reinterpret_cast<const uint32_t*>(&h);
  }
  reinterpret_cast<uint4*>(p)[q] = make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ float load1(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load1(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store1(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store1(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// NI input and NO output streams of n elements of type T (float or bf16; the arithmetic is fp32).
template <class T, int NI, int NO>
struct Streams {
  const T* in[NI];
  T* out[NO];
};

// y = f(inputs) element by element: 16-byte vectors over the first nv vectors, then scalars. No
// __restrict__: outputs may alias inputs (each element's inputs are read before its outputs are
// written).
template <class T, int NI, int NO, class F>
__global__ void map_streams(Streams<T, NI, NO> s, int64_t n, int64_t nv, F f) {
  constexpr int V = kVec<T>;
  pdl_launch_dependents();  // forward activations feed the down projection GEMV of decode
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (int64_t i = tid; i < nv; i += stride) {
    float a[NI][V], y[NO][V];
#pragma unroll
    for (int k = 0; k < NI; ++k) load_vec(s.in[k], i, a[k]);
#pragma unroll
    for (int l = 0; l < V; ++l) {
      float ai[NI], yi[NO];
#pragma unroll
      for (int k = 0; k < NI; ++k) ai[k] = a[k][l];
      f(ai, yi);
#pragma unroll
      for (int k = 0; k < NO; ++k) y[k][l] = yi[k];
    }
#pragma unroll
    for (int k = 0; k < NO; ++k) store_vec(s.out[k], i, y[k]);
  }
  for (int64_t i = nv * V + tid; i < n; i += stride) {
    float ai[NI], yi[NO];
#pragma unroll
    for (int k = 0; k < NI; ++k) ai[k] = load1(s.in[k], i);
    f(ai, yi);
#pragma unroll
    for (int k = 0; k < NO; ++k) store1(s.out[k], i, yi[k]);
  }
}

template <class T, int NI, int NO, class F>
void launch_streams_of(const char* op, int64_t n, const std::array<const Tensor*, NI>& in,
                       const std::array<Tensor*, NO>& out, F f) {
  constexpr int V = kVec<T>;
  Streams<T, NI, NO> s;
  bool vec = true;  // 16-byte vectors need every stream 16-byte aligned
  for (int k = 0; k < NI; ++k) {
    s.in[k] = in[k]->template data<T>();
    vec = vec && aligned16(s.in[k]);
  }
  for (int k = 0; k < NO; ++k) {
    s.out[k] = out[k]->template data<T>();
    vec = vec && aligned16(s.out[k]);
  }
  const int64_t nv = vec ? n / V : 0;
  map_streams<<<blocks_for(std::max<int64_t>(nv, n - V * nv)), kThreads>>>(s, n, nv, f);
  check_launch(op);
}

// The streams' element type is the first input's (the dispatcher checked that all agree).
template <int NI, int NO, class F>
void launch_streams(const char* op, const std::array<const Tensor*, NI>& in, const std::array<Tensor*, NO>& out, F f) {
  const int64_t n = in[0]->numel();
  if (n == 0) return;
  if (in[0]->dtype() == DType::BF16) launch_streams_of<__nv_bfloat16, NI, NO>(op, n, in, out, f);
  else launch_streams_of<float, NI, NO>(op, n, in, out, f);
}

// The forward maps through the same streams: y = f(x), y = f(a, b).
template <class F>
struct Unary {
  F f;
  __device__ void operator()(const float (&a)[1], float (&y)[1]) const { y[0] = f(a[0]); }
};
template <class F>
struct Binary {
  F f;
  __device__ void operator()(const float (&a)[2], float (&y)[1]) const { y[0] = f(a[0], a[1]); }
};
template <class F>
void launch1(const char* op, const Tensor& x, Tensor& y, F f) {
  launch_streams<1, 1>(op, {&x}, {&y}, Unary<F>{f});
}
template <class F>
void launch2(const char* op, const Tensor& a, const Tensor& b, Tensor& y, F f) {
  launch_streams<2, 1>(op, {&a, &b}, {&y}, Binary<F>{f});
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) { launch2("add", a, b, y, AddF{}); }
void silu(const Tensor& x, Tensor& y) { launch1("silu", x, y, SiluF{}); }
void relu_squared(const Tensor& x, Tensor& y) { launch1("relu_squared", x, y, Relu2F{}); }
void gelu(const Tensor& x, Tensor& y) {
  if (x.dtype() == DType::BF16) launch1("gelu", x, y, GeluFastF{});
  else launch1("gelu", x, y, GeluF{});
}
void swiglu(const Tensor& gate, const Tensor& up, Tensor& y) { launch2("swiglu", gate, up, y, SwigluF{}); }
void neg_exp(const Tensor& x, Tensor& y) { launch1("neg_exp", x, y, NegExpF{}); }

namespace {

__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

// d/dx [x sigmoid(x)] = s (1 + x (1 - s)); inputs x, dy.
struct SiluBwd {
  __device__ void operator()(const float (&a)[2], float (&y)[1]) const {
    const float s = sigmoid_f(a[0]);
    y[0] = a[1] * s * (1.0f + a[0] * (1.0f - s));
  }
};
struct Relu2Bwd {
  __device__ void operator()(const float (&a)[2], float (&y)[1]) const { y[0] = a[0] > 0.0f ? 2.0f * a[0] * a[1] : 0.0f; }
};
// d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi through erfc (no cancellation for x << 0).
struct GeluBwd {
  __device__ void operator()(const float (&a)[2], float (&y)[1]) const {
    const float v = a[0];
    const float cdf = 0.5f * erfcf(-v * 0.70710678118654752f);
    const float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
    y[0] = a[1] * (cdf + v * pdf);
  }
};
// The same with normal_cdf_fast (the bf16 path).
struct GeluFastBwd {
  __device__ void operator()(const float (&a)[2], float (&y)[1]) const {
    const float v = a[0];
    const float pdf = 0.39894228040143268f * __expf(-0.5f * v * v);
    y[0] = a[1] * (normal_cdf_fast(v) + v * pdf);
  }
};
// Inputs gate, up, dy; outputs dgate, dup.
struct SwigluBwd {
  __device__ void operator()(const float (&a)[3], float (&y)[2]) const {
    const float x = a[0], s = sigmoid_f(x), g = a[2], u = a[1];
    y[0] = g * u * s * (1.0f + x * (1.0f - s));
    y[1] = g * x * s;
  }
};
// Inputs y (= -exp(x)), dy, dx; output dx + dy * y.
struct NegExpBwd {
  __device__ void operator()(const float (&a)[3], float (&y)[1]) const { y[0] = a[2] + a[1] * a[0]; }
};

// The gradient of clamp(softplus(dt + bias), dt_min, dt_max) times g, as the CPU computes it.
__device__ __forceinline__ float softplus_dt_grad(float dt, float bias, float g, float dt_min, float dt_max) {
  const float v = dt + bias;
  const float sp = v > 20.0f ? v : log1pf(expf(v));  // as the forward
  const bool clamped = sp < dt_min || sp > dt_max;
  return clamped ? 0.0f : g * (v > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-v)));
}

__global__ void softplus_dt_bwd(const float* dt, const float* __restrict__ bias, const float* dy, float* ddt,
                                float dt_min, float dt_max, int64_t n, int64_t H) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    ddt[i] = softplus_dt_grad(dt[i], bias[i % H], dy[i], dt_min, dt_max);
}

// ddt over a [rows, H] view plus its column sums, in one pass. 256 threads = 32 column threads
// (VEC adjacent heads each) x 8 row groups; blockIdx.y is a chunk of rows_per_chunk rows that
// row group g walks as rows g, g + 8, ...; the chunk's column sums (double, row groups added in
// order) go to partial[chunk, H]. The order depends on rows and H only.

template <int VEC>
__global__ void __launch_bounds__(kColThreads * kRowGroups)
softplus_dt_bwd_colsum(const float* dt, const float* __restrict__ bias, const float* dy, float* ddt, float dt_min,
                       float dt_max, int64_t rows, int64_t H, int64_t rows_per_chunk, double* __restrict__ partial) {
  __shared__ double red[kRowGroups][kColThreads * VEC];
  const int tx = threadIdx.x % kColThreads, ty = threadIdx.x / kColThreads;
  const int64_t c = (int64_t(blockIdx.x) * kColThreads + tx) * VEC;  // VEC = 4 needs H % 4 == 0
  const bool active = c < H;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = min(rows, r0 + rows_per_chunk);
  double acc[VEC];
  float b[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    acc[k] = 0.0;
    b[k] = active ? bias[c + k] : 0.0f;
  }
  if (active) {
    for (int64_t r = r0 + ty; r < r1; r += kRowGroups) {
      const int64_t i = r * H + c;
      float o[VEC];
      if constexpr (VEC == 4) {
        const float4 d = *reinterpret_cast<const float4*>(dt + i), g = *reinterpret_cast<const float4*>(dy + i);
        o[0] = softplus_dt_grad(d.x, b[0], g.x, dt_min, dt_max);
        o[1] = softplus_dt_grad(d.y, b[1], g.y, dt_min, dt_max);
        o[2] = softplus_dt_grad(d.z, b[2], g.z, dt_min, dt_max);
        o[3] = softplus_dt_grad(d.w, b[3], g.w, dt_min, dt_max);
        *reinterpret_cast<float4*>(ddt + i) = make_float4(o[0], o[1], o[2], o[3]);
      } else {
        o[0] = softplus_dt_grad(dt[i], b[0], dy[i], dt_min, dt_max);
        ddt[i] = o[0];
      }
#pragma unroll
      for (int k = 0; k < VEC; ++k) acc[k] += double(o[k]);
    }
  }
#pragma unroll
  for (int k = 0; k < VEC; ++k) red[ty][tx * VEC + k] = acc[k];
  __syncthreads();
  if (ty == 0 && active) {
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      double s = 0.0;
#pragma unroll
      for (int g = 0; g < kRowGroups; ++g) s += red[g][tx * VEC + k];
      partial[int64_t(blockIdx.y) * H + c + k] = s;
    }
  }
}


}  // namespace

void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  launch_streams<2, 1>("silu_backward", {&x, &dy}, {&dx}, SiluBwd{});
}

void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  launch_streams<2, 1>("relu_squared_backward", {&x, &dy}, {&dx}, Relu2Bwd{});
}

void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  if (x.dtype() == DType::BF16) launch_streams<2, 1>("gelu_backward", {&x, &dy}, {&dx}, GeluFastBwd{});
  else launch_streams<2, 1>("gelu_backward", {&x, &dy}, {&dx}, GeluBwd{});
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate, Tensor& dup) {
  launch_streams<3, 2>("swiglu_backward", {&gate, &up, &dy}, {&dgate, &dup}, SwigluBwd{});
}

void neg_exp_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  launch_streams<3, 1>("neg_exp_backward", {&y, &dy, &dx}, {&dx}, NegExpBwd{});
}

void softplus_dt_backward(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max, const Tensor& dy,
                          Tensor& ddt, Tensor* ddt_bias) {
  const char* op = "softplus_dt_backward";
  const int64_t H = dt.dim(-1), n = dt.numel();
  if (n == 0) return;
  if (!ddt_bias) {
    softplus_dt_bwd<<<blocks_for(n), kThreads>>>(dt.f32(), dt_bias.f32(), dy.f32(), ddt.f32(), dt_min, dt_max, n, H);
    check_launch(op);
    return;
  }
  const int64_t rows = n / H, rpc = rows_per_chunk(rows, H), chunks = (rows + rpc - 1) / rpc;
  static GrowOnlyBuffer partial_buf;
  double* partial = partial_buf.get<double>(size_t(chunks * H), op);
  const bool vec = H % 4 == 0 && aligned16(dt.f32()) && aligned16(dy.f32()) && aligned16(ddt.f32());
  const int per_block = kColThreads * (vec ? 4 : 1);
  const dim3 grid(unsigned((H + per_block - 1) / per_block), unsigned(chunks));
  if (vec)
    softplus_dt_bwd_colsum<4><<<grid, kColThreads * kRowGroups>>>(dt.f32(), dt_bias.f32(), dy.f32(), ddt.f32(), dt_min,
                                                                  dt_max, rows, H, rpc, partial);
  else
    softplus_dt_bwd_colsum<1><<<grid, kColThreads * kRowGroups>>>(dt.f32(), dt_bias.f32(), dy.f32(), ddt.f32(), dt_min,
                                                                  dt_max, rows, H, rpc, partial);
  check_launch(op);
  add_chunk_sums<<<blocks_for(H), kThreads>>>(partial, chunks, H, ddt_bias->f32());
  check_launch(op);
}

}  // namespace mambalm::ops::cuda
