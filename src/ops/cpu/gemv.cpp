// Decode GEMV (gemv.h): the scalar reference kernels, the choice of kernel per (format, Isa), and
// the split of weight rows over threads.
#include "ops/cpu/gemv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/tensor.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/q8_format.h"

namespace mambalm::ops::cpu {

int64_t weight_row_bytes(WeightFormat format, int64_t K) {
  switch (format) {
    case WeightFormat::F32: return K * 4;
    case WeightFormat::BF16: return K * 2;
    case WeightFormat::Q8: return q8_row_bytes(K);
  }
  return 0;
}

namespace {
struct XBf16Tag {};
struct XScalesTag {};
struct XValuesTag {};
}  // namespace

const uint16_t* x_as_bf16(const float* x, int64_t n) {
  uint16_t* out = thread_buffer<uint16_t, XBf16Tag>(n);
  // The prefill rounds all of x [M, K] here for oneDNN's bf16 GEMM (linear_lowp.cpp).
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
  return out;
}

XAsQ8 x_as_q8(const float* x, int64_t M, int64_t K) {
  const int64_t blocks = q8_blocks(K);
  float* scales = thread_buffer<float, XScalesTag>(M * blocks);
  int16_t* q = thread_buffer<int16_t, XValuesTag>(M * blocks * kQ8Block);
  for (int64_t m = 0; m < M; ++m) quantize_x_for_q8(x + m * K, K, scales + m * blocks, q + m * blocks * kQ8Block);
  return {scales, q, blocks};
}

// ---- scalar reference: one fp32 accumulator per output, k in order ---------------------------

namespace {

void rows_f32_scalar(const void* w, int64_t, int64_t K, const float* x, int64_t M, const float* bias, float* y,
                     int64_t n0, int64_t n1, int64_t N) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* wr = static_cast<const float*>(w) + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * K;
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += wr[k] * xm[k];
      y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
}

void rows_bf16_scalar(const void* w, int64_t, int64_t K, const float* x, int64_t M, const float* bias, float* y,
                      int64_t n0, int64_t n1, int64_t N) {
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* wr = static_cast<const uint16_t*>(w) + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * K;
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += bf16_to_f32(wr[k]) * xm[k];
      y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
}

// x rounded per block (x_as_q8); per block the exact integer sum s = sum_i qw_i qx_i, then
// acc += (dw dx) s in fp32 (the SIMD kernels do the same with a few partial sums per block).
void rows_q8_scalar(const void* w, int64_t, int64_t K, const float* x, int64_t M, const float* bias, float* y,
                    int64_t n0, int64_t n1, int64_t N) {
  const int64_t rb = q8_row_bytes(K);
  const XAsQ8 xq = x_as_q8(x, M, K);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + n * rb;
    for (int64_t m = 0; m < M; ++m) {
      const float* dx = xq.scales + m * xq.blocks;
      const int16_t* qx = xq.q + m * xq.blocks * kQ8Block;
      float acc = 0.0f;
      for (int64_t b = 0; b < xq.blocks; ++b) {
        const uint8_t* blk = wr + b * kQ8BlockBytes;
        uint16_t d16;
        std::memcpy(&d16, blk, 2);
        const int8_t* qw = reinterpret_cast<const int8_t*>(blk + 2);
        int32_t s = 0;  // |s| <= 32 * 127 * 32767 < 2^31: exact (as an fp32, to 2^-24 relative)
        for (int64_t i = 0; i < kQ8Block; ++i) s += int32_t{qw[i]} * int32_t{qx[b * kQ8Block + i]};
        acc += (f16_to_f32(d16) * dx[b]) * static_cast<float>(s);
      }
      y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
}

// The kernel signature carries N implicitly through the callers below; adapt the 10-argument
// scalar bodies to GemvRowsFn (y's row stride is N).
template <void (*F)(const void*, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t,
                    int64_t)>
void as_rows_fn(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias, float* y,
                int64_t n0, int64_t n1) {
  F(w, N, K, x, M, bias, y, n0, n1, N);
}

}  // namespace

GemvKernels gemv_kernels_scalar() {
  return {as_rows_fn<rows_f32_scalar>, as_rows_fn<rows_bf16_scalar>, as_rows_fn<rows_q8_scalar>};
}

GemvRowsFn gemv_rows_kernel(WeightFormat format, Isa isa) {
  auto pick = [format](const GemvKernels& k) {
    return format == WeightFormat::F32 ? k.f32 : format == WeightFormat::BF16 ? k.bf16 : k.q8;
  };
  switch (isa) {
    case Isa::Scalar: return pick(gemv_kernels_scalar());
    case Isa::Avx2: return pick(gemv_kernels_avx2());
    case Isa::Avx512: return pick(gemv_kernels_avx512());
    case Isa::Avx512Bf16:
      if (GemvRowsFn f = pick(gemv_kernels_avx512bf16())) return f;
      return pick(gemv_kernels_avx512());
    case Isa::Neon: return pick(gemv_kernels_neon());
  }
  return nullptr;
}

void gemv(WeightFormat format, Isa isa, const void* w, int64_t N, int64_t K, const float* x, int64_t M,
          const float* bias, float* y) {
  GemvRowsFn fn = gemv_rows_kernel(format, isa);
  if (!fn) fn = gemv_rows_kernel(format, Isa::Scalar);
  // One thread per ~64 KiB of weights at least: below that the fork costs more than it saves.
  const int64_t bytes = N * weight_row_bytes(format, K);
  const int threads = static_cast<int>(std::clamp<int64_t>(bytes >> 16, 1, omp_get_max_threads()));
  if (threads <= 1 || omp_in_parallel()) {
    fn(w, N, K, x, M, bias, y, 0, N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    // Contiguous row ranges, rounded to 16 rows so that threads never share a cache line of y.
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t per = ((N + nt - 1) / nt + 15) / 16 * 16;
    const int64_t n0 = std::min<int64_t>(N, t * per), n1 = std::min<int64_t>(N, n0 + per);
    if (n0 < n1) fn(w, N, K, x, M, bias, y, n0, n1);
  }
}

}  // namespace mambalm::ops::cpu
