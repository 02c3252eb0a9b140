// Elementwise ops on CUDA: embedding lookup, activations, softplus_dt, rotary embedding and the
// layout ops of ops/layout.h (linear lives in linear.cu).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <mutex>
#include <string>

#include "core/cuda_memory.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

// ---- embedding -----------------------------------------------------------------------------

namespace {

__global__ void find_bad_id(const int32_t* __restrict__ ids, int64_t n, int32_t V, int* first_bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    if (ids[i] < 0 || ids[i] >= V) atomicMin(first_bad, static_cast<int>(i));
}

template <class T>
__device__ __forceinline__ float as_float(T v);
template <>
__device__ __forceinline__ float as_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float as_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
__global__ void gather_rows(const int32_t* __restrict__ ids, const T* __restrict__ table, float* __restrict__ y,
                            int64_t D) {
  const int64_t row = blockIdx.x;
  const T* src = table + int64_t(ids[row]) * D;
  float* dst = y + row * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dst[i] = as_float(src[i]);
}

int* bad_id_flag() {  // one device int for the process: the id check allocates nothing per call
  static int* flag = [] {
    int* p = nullptr;
    check_cuda(cudaMalloc(&p, sizeof(int)), "embedding", "cudaMalloc");
    return p;
  }();
  return flag;
}

}  // namespace

// Ids are validated on the device first; a bad one is reported (position and value) before
// anything is written, as on the CPU. That costs one small device-to-host read per call, which
// a captured step cannot do: there the check is skipped (a captured decode step feeds back ids
// its own argmax produced, which lie in the table by construction).
void embedding(const Tensor& ids, const Tensor& table, Tensor& y) {
  const int64_t n = ids.numel();
  const int64_t V = table.dim(0), D = table.dim(1);
  if (n == 0) return;
  MAMBALM_CHECK(n < INT_MAX && V <= INT_MAX, "op embedding (cuda)", "too many ids or rows");
  if (!cuda_capturing()) {
    int* flag = bad_id_flag();
    const int init = INT_MAX;
    check_cuda(cudaMemcpy(flag, &init, sizeof(int), cudaMemcpyHostToDevice), "embedding", "id check");
    find_bad_id<<<blocks_for(n), kThreads>>>(ids.data<int32_t>(), n, int32_t(V), flag);
    int first_bad = INT_MAX;
    check_cuda(cudaMemcpy(&first_bad, flag, sizeof(int), cudaMemcpyDeviceToHost), "embedding", "id check");
    if (first_bad != INT_MAX) {
      int32_t id = 0;
      cudaMemcpy(&id, ids.data<int32_t>() + first_bad, sizeof(int32_t), cudaMemcpyDeviceToHost);
      fail("op embedding", "token id " + std::to_string(id) + " at flat position " + std::to_string(first_bad) +
                               " is out of range for a table of " + std::to_string(V) + " rows",
           "the tokenizer and the model's vocab_size disagree");
    }
  }
  if (D == 0) return;
  if (table.dtype() == DType::BF16)
    gather_rows<<<unsigned(n), D >= 256 ? 256 : 64>>>(ids.data<int32_t>(), table.data<__nv_bfloat16>(), y.f32(), D);
  else
    gather_rows<<<unsigned(n), D >= 256 ? 256 : 64>>>(ids.data<int32_t>(), table.f32(), y.f32(), D);
  check_launch("embedding");
}

// ---- elementwise -----------------------------------------------------------------------------

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

// ---- softplus_dt -----------------------------------------------------------------------------

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

// ---- rope ----------------------------------------------------------------------------------

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

// ---- layout ----------------------------------------------------------------------------------

namespace {
// dst[r, dcol0 + c] = src[r, scol0 + c] for c < w, over `rows` rows.
__global__ void copy_block_columns(const float* __restrict__ src, int64_t src_ld, int64_t scol0,
                                   float* __restrict__ dst, int64_t dst_ld, int64_t dcol0,
                                   int64_t rows, int64_t w) {
  const int64_t n = rows * w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / w, c = i % w;
    dst[r * dst_ld + dcol0 + c] = src[r * src_ld + scol0 + c];
  }
}
}  // namespace

void copy_columns(const Tensor& src, int64_t col0, Tensor& dst) {
  const int64_t W = src.dim(-1), w = dst.dim(-1);
  const int64_t rows = src.numel() / (W ? W : 1);
  if (rows * w == 0) return;
  copy_block_columns<<<blocks_for(rows * w), kThreads>>>(src.f32(), W, col0, dst.f32(), w, 0, rows, w);
  check_launch("copy_columns");
}

namespace {
struct SplitParts {
  float* dst[4];
  int64_t width[4];
  int64_t begin[5];  // first source column of each part (begin[n] = total width)
  int n;
};
// One thread per (row, column < total width): finds its part and copies one element.
__global__ void split_columns_kernel(const float* __restrict__ src, int64_t src_ld, int64_t rows, SplitParts p) {
  const int64_t total = p.begin[p.n];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / total, c = i % total;
    int k = 0;
    while (k + 1 < p.n && c >= p.begin[k + 1]) ++k;
    p.dst[k][r * p.width[k] + (c - p.begin[k])] = src[r * src_ld + c];
  }
}
}  // namespace

void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts) {
  SplitParts p{};
  p.n = 0;
  int64_t col = 0;
  for (Tensor* t : parts) {
    p.dst[p.n] = t->f32();
    p.width[p.n] = t->dim(-1);
    p.begin[p.n] = col;
    col += t->dim(-1);
    ++p.n;
  }
  p.begin[p.n] = col;
  const int64_t W = src.dim(-1);
  const int64_t rows = src.numel() / (W ? W : 1);
  if (rows * col == 0) return;
  split_columns_kernel<<<blocks_for(rows * col), kThreads>>>(src.f32(), W, rows, p);
  check_launch("split_columns");
}

void write_columns(const Tensor& src, Tensor& dst, int64_t col0) {
  const int64_t W = dst.dim(-1), w = src.dim(-1);
  const int64_t rows = dst.numel() / (W ? W : 1);
  if (rows * w == 0) return;
  copy_block_columns<<<blocks_for(rows * w), kThreads>>>(src.f32(), w, 0, dst.f32(), W, col0, rows, w);
  check_launch("write_columns");
}

void copy_rows(const Tensor& src, int64_t n, Tensor& dst) {
  const int64_t row = src.numel() / (src.dim(0) ? src.dim(0) : 1);
  const size_t bytes = static_cast<size_t>(n * row) * dtype_size(src.dtype());
  if (bytes == 0) return;
  check_cuda(cudaMemcpyAsync(dst.raw(), src.raw(), bytes, cudaMemcpyDeviceToDevice, 0), "copy_rows",
             "cudaMemcpyAsync");
}

}  // namespace mambalm::ops::cuda
