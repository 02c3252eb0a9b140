// Data movement on CUDA: column splits and joins, row copies, fill, F32 <-> BF16 conversion.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {
// dst[r, c] = src[r, c] for c < w over `rows` rows (src and dst point at each row's first column
// to copy, row strides src_ld and dst_ld). blockIdx.y walks the rows, the threads of blockIdx.x
// a row's columns, 4 floats at a time when kVec4 (every stride, width and base a multiple of 16
// bytes): coalesced, no index division (the former one-thread-per-element kernel with an int64
// division and a dynamically indexed parameter array ran at 0.2 TB/s).
template <bool kVec4>
__global__ void copy_columns_kernel(const float* __restrict__ src, int64_t src_ld, float* __restrict__ dst,
                                    int64_t dst_ld, int64_t rows, int w) {
  const int n = kVec4 ? w / 4 : w;
  const int c0 = int(blockIdx.x * blockDim.x + threadIdx.x), dc = int(gridDim.x * blockDim.x);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float* s = src + r * src_ld;
    float* d = dst + r * dst_ld;
    for (int c = c0; c < n; c += dc) {
      if constexpr (kVec4) reinterpret_cast<float4*>(d)[c] = __ldg(reinterpret_cast<const float4*>(s) + c);
      else d[c] = __ldg(s + c);
    }
  }
}

// The same for rows of at most kNarrow vectors (x_proj's dt | B | C split: 32 + 16 + 16 columns):
// one thread per (row, vector) over consecutive rows, where the kernel above would give each
// row a block of 32 threads, three quarters of them idle (0.13 ms for 17 MB at mamba-26m's shape).
constexpr int kNarrow = 32;
template <bool kVec4>
__global__ void copy_narrow_columns_kernel(const float* __restrict__ src, int64_t src_ld, float* __restrict__ dst,
                                           int64_t dst_ld, uint32_t rows, uint32_t n) {
  const uint32_t total = rows * n;
  for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const uint32_t r = e / n, c = e - r * n;
    const float* s = src + int64_t(r) * src_ld;
    float* d = dst + int64_t(r) * dst_ld;
    if constexpr (kVec4) reinterpret_cast<float4*>(d)[c] = __ldg(reinterpret_cast<const float4*>(s) + c);
    else d[c] = __ldg(s + c);
  }
}

void launch_copy_columns(const float* src, int64_t src_ld, float* dst, int64_t dst_ld, int64_t rows, int64_t w,
                         const char* op) {
  if (rows == 0 || w == 0) return;
  MAMBALM_CHECK(w <= INT32_MAX, std::string("op ") + op + " (cuda)", "rows wider than 2^31 columns");
  const bool vec = w % 4 == 0 && src_ld % 4 == 0 && dst_ld % 4 == 0 && aligned16(src) && aligned16(dst);
  const int64_t n = vec ? w / 4 : w;
  if (n <= kNarrow && rows * n < (int64_t(1) << 31)) {
    const int64_t total = rows * n;
    const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, 132 * 16));
    if (vec) copy_narrow_columns_kernel<true><<<blocks, 256>>>(src, src_ld, dst, dst_ld, uint32_t(rows), uint32_t(n));
    else copy_narrow_columns_kernel<false><<<blocks, 256>>>(src, src_ld, dst, dst_ld, uint32_t(rows), uint32_t(n));
    check_launch(op);
    return;
  }
  const int threads = int(std::min<int64_t>(256, (n + 31) / 32 * 32));
  const dim3 grid(unsigned(std::min<int64_t>((n + threads - 1) / threads, 64)), unsigned(std::min<int64_t>(rows, 65535)));
  if (vec) copy_columns_kernel<true><<<grid, threads>>>(src, src_ld, dst, dst_ld, rows, int(w));
  else copy_columns_kernel<false><<<grid, threads>>>(src, src_ld, dst, dst_ld, rows, int(w));
  check_launch(op);
}
}  // namespace

void copy_columns(const Tensor& src, int64_t col0, Tensor& dst) {
  const int64_t W = src.dim(-1), w = dst.dim(-1);
  const int64_t rows = src.numel() / (W ? W : 1);
  launch_copy_columns(src.f32() + col0, W, dst.f32(), w, rows, w, "copy_columns");
}

// One copy per part, each a contiguous run of columns of src.
void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts) {
  const int64_t W = src.dim(-1);
  const int64_t rows = src.numel() / (W ? W : 1);
  int64_t col = 0;
  for (Tensor* t : parts) {
    const int64_t w = t->dim(-1);
    launch_copy_columns(src.f32() + col, W, t->f32(), w, rows, w, "split_columns");
    col += w;
  }
}

void write_columns(const Tensor& src, Tensor& dst, int64_t col0) {
  const int64_t W = dst.dim(-1), w = src.dim(-1);
  const int64_t rows = dst.numel() / (W ? W : 1);
  launch_copy_columns(src.f32(), w, dst.f32() + col0, W, rows, w, "write_columns");
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
