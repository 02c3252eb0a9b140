// Data movement on CUDA: column splits and joins, row copies, fill, F32 <-> BF16 conversion.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

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

namespace {
__global__ void fill_kernel(float* p, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) p[i] = value;
}
}  // namespace

void fill(Tensor& t, float value) {
  const int64_t n = t.numel();
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreads>>>(t.f32(), n, value);
  check_launch("fill");
}

namespace {
__global__ void to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}
__global__ void from_bf16_kernel(const __nv_bfloat16* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}
}  // namespace

void convert(const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  if (x.dtype() == y.dtype()) {
    if (x.raw() != y.raw())
      check_cuda(cudaMemcpyAsync(y.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, 0), "convert", "cudaMemcpyAsync");
    return;
  }
  if (x.dtype() == DType::F32) to_bf16_kernel<<<blocks_for(n), kThreads>>>(x.f32(), y.data<__nv_bfloat16>(), n);
  else from_bf16_kernel<<<blocks_for(n), kThreads>>>(x.data<__nv_bfloat16>(), y.f32(), n);
  check_launch("convert");
}

}  // namespace mambalm::ops::cuda
