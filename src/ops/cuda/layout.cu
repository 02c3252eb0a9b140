// Data movement on CUDA: column splits and joins, row copies, fill, F32 <-> BF16 conversion.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "ops/cuda/bf16_convert.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/ptx.cuh"
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

namespace {
// dst[r, c] = bf16(src[r, c]) for c < w (dst rows of ldd): one thread per element.
__global__ void write_bf16_columns_kernel(const float* __restrict__ src, int64_t w, __nv_bfloat16* __restrict__ dst,
                                          int64_t ldd, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / w;
    dst[r * ldd + (i - r * w)] = __float2bfloat16_rn(src[i]);
  }
}
}  // namespace

void write_columns(const Tensor& src, Tensor& dst, int64_t col0) {
  const int64_t W = dst.dim(-1), w = src.dim(-1);
  const int64_t rows = dst.numel() / (W ? W : 1);
  if (dst.dtype() == DType::BF16) {  // rounded: the dispatch allows it for an F32 src
    if (rows * w == 0) return;
    const unsigned blocks = unsigned(std::min<int64_t>((rows * w + 255) / 256, 132 * 16));
    write_bf16_columns_kernel<<<blocks, 256>>>(src.f32(), w, dst.data<__nv_bfloat16>() + col0, W, rows * w);
    check_launch("write_columns");
    return;
  }
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
// Up to three arrays per launch; blockIdx.y picks one. The pointers are chosen by comparisons,
// not by indexing the parameter arrays with blockIdx.y (which spills the parameters to local
// memory, as the copy kernels above once did).
template <class Src, class Dst>
struct ConvertArrays {
  const Src* src[3];
  Dst* dst[3];
  int64_t n[3];
  bool vec[3];  // fp32 side 16-byte, bf16 side 8-byte aligned: 4-element quads, then a scalar tail
};
template <class T>
__device__ __forceinline__ T pick(const T (&a)[3], unsigned j) {
  return j == 0 ? a[0] : j == 1 ? a[1] : a[2];
}

// One quad: a 16-byte fp32 access and an 8-byte bf16 one, both coalesced across the warp.
__device__ __forceinline__ float4 load_quad(const float* s, int64_t i) { return reinterpret_cast<const float4*>(s)[i]; }
__device__ __forceinline__ uint2 load_quad(const uint16_t* s, int64_t i) { return reinterpret_cast<const uint2*>(s)[i]; }
__device__ __forceinline__ void store_quad(uint16_t* d, int64_t i, float4 a) {
  reinterpret_cast<uint2*>(d)[i] = pack_bf16x4(a.x, a.y, a.z, a.w);
}
__device__ __forceinline__ void store_quad(float* d, int64_t i, uint2 u) {
  reinterpret_cast<float4*>(d)[i] = make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                                                __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ uint16_t convert1(float x) {
  const __nv_bfloat16 b = __float2bfloat16_rn(x);
  return *reinterpret_cast<const uint16_t*>(&b);
}
__device__ __forceinline__ float convert1(uint16_t x) { return __uint_as_float(uint32_t(x) << 16); }

constexpr int kQuadsInFlight = 4;  // per thread: all loads issued before the first store

template <class Src, class Dst>
__global__ void convert_kernel(ConvertArrays<Src, Dst> a) {
  const unsigned j = blockIdx.y;
  const Src* s = pick(a.src, j);
  Dst* d = pick(a.dst, j);
  const int64_t n = pick(a.n, j);
  const int64_t quads = pick(a.vec, j) ? n / 4 : 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kQuadsInFlight - 1) * stride < quads; i += kQuadsInFlight * stride) {
    decltype(load_quad(s, 0)) v[kQuadsInFlight];
#pragma unroll
    for (int k = 0; k < kQuadsInFlight; ++k) v[k] = load_quad(s, i + k * stride);
#pragma unroll
    for (int k = 0; k < kQuadsInFlight; ++k) store_quad(d, i + k * stride, v[k]);
  }
  for (; i < quads; i += stride) store_quad(d, i, load_quad(s, i));
  for (int64_t e = quads * 4 + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride)
    d[e] = convert1(s[e]);
}

inline bool aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7u) == 0; }
inline bool quad_aligned(const float* p) { return aligned16(p); }
inline bool quad_aligned(const uint16_t* p) { return aligned8(p); }

template <class Src, class Dst>
void launch_convert(std::initializer_list<std::tuple<const Src*, Dst*, int64_t>> arrays, const char* op) {
  ConvertArrays<Src, Dst> a{};
  unsigned k = 0;
  int64_t most = 0;  // the most work items (quads, then tail elements) of one array
  for (const auto& [s, d, n] : arrays) {
    a.src[k] = s;
    a.dst[k] = d;
    a.n[k] = n;
    a.vec[k] = quad_aligned(s) && quad_aligned(d);
    most = std::max(most, a.vec[k] ? n / 4 + n % 4 : n);
    ++k;
  }
  if (most == 0) return;
  convert_kernel<<<dim3(blocks_for((most + kQuadsInFlight - 1) / kQuadsInFlight), k), kThreads>>>(a);
  check_launch(op);
}
}  // namespace

void f32_to_bf16(std::initializer_list<std::tuple<const float*, uint16_t*, int64_t>> arrays) {
  launch_convert(arrays, "f32_to_bf16");
}
void bf16_to_f32(std::initializer_list<std::tuple<const uint16_t*, float*, int64_t>> arrays) {
  launch_convert(arrays, "bf16_to_f32");
}

void convert(const Tensor& x, Tensor& y) {
  const int64_t n = x.numel();
  if (n == 0) return;
  if (x.dtype() == y.dtype()) {
    if (x.raw() != y.raw())
      check_cuda(cudaMemcpyAsync(y.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, 0), "convert", "cudaMemcpyAsync");
    return;
  }
  if (x.dtype() == DType::F32) f32_to_bf16({{x.f32(), y.data<uint16_t>(), n}});
  else bf16_to_f32({{x.data<uint16_t>(), y.f32(), n}});
}

}  // namespace mambalm::ops::cuda
