// Matrix-vector products for decode on the CPU: y[m, n] = sum_k w[n, k] x[m, k] (+ bias[n]) for a
// few rows m of x (M = the batch of sequences in a decode step). Each weight row is read from
// memory once per call and dotted with all M rows of x while it sits in L1, so a step streams
// the weights exactly once: decode at batch 1 is bound by memory bandwidth, and these kernels
// aim for that floor. Weights come in three formats (F32, BF16, Q8: ops/cpu/q8_format.h); x, y
// and the accumulation are fp32, except that against Q8 weights x is rounded to 16-bit integers
// per block (quantize_x_for_q8) and each block's products are summed exactly in integers. One
// kernel per (format, Isa); the rows are split over the OpenMP threads.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/q8_format.h"

namespace mambalm::ops::cpu {

enum class WeightFormat { F32, BF16, Q8 };

// Rows [n0, n1) of one (format, isa) pair: w is the whole matrix [N, K] in `format` (row r at
// byte offset r * row_bytes(format, K)), x [M, K], y [M, N] row-major; bias [N] or null.
// Isa::Avx512Bf16 with BF16 weights rounds x to bf16 (nearest even) and multiplies with
// vdpbf16ps; Q8 weights meet x rounded by quantize_x_for_q8 (int8 x int16 products, exact
// integer sums per block, then fp32 with the two scales); F32 and BF16 weights are widened
// exactly and multiply fp32 x in fp32.
using GemvRowsFn = void (*)(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias,
                            float* y, int64_t n0, int64_t n1);

int64_t weight_row_bytes(WeightFormat format, int64_t K);
// The kernel of (format, isa), or null when this binary has none for that isa (for example a
// Neon kernel in an x86 build). For an isa without a dedicated kernel of this format the next
// narrower variant is returned (Avx512Bf16 uses the Avx512 kernel for F32 and Q8).
GemvRowsFn gemv_rows_kernel(WeightFormat format, Isa isa);

// The whole product on the calling thread's OpenMP team (rows split in contiguous ranges, no
// allocation), with the kernel of `isa` (which must be supported).
void gemv(WeightFormat format, Isa isa, const void* w, int64_t N, int64_t K, const float* x, int64_t M,
          const float* bias, float* y);

// ---- per-Isa kernel tables (defined in gemv_scalar.cpp, gemv_x86.cpp, gemv_neon.cpp) ----------
struct GemvKernels {
  GemvRowsFn f32 = nullptr, bf16 = nullptr, q8 = nullptr;
};
GemvKernels gemv_kernels_scalar();
GemvKernels gemv_kernels_avx2();        // empty outside x86-64
GemvKernels gemv_kernels_avx512();      // empty outside x86-64
GemvKernels gemv_kernels_avx512bf16();  // bf16 only; empty outside x86-64
GemvKernels gemv_kernels_neon();        // empty outside AArch64

// Converts x [n] to bf16 (nearest even) into a per-thread buffer that grows only when needed
// (no allocation per token once warm). For the vdpbf16ps kernels.
const uint16_t* x_as_bf16(const float* x, int64_t n);

// x [M, K] rounded for Q8 weights (quantize_x_for_q8, row by row) into a per-thread buffer,
// likewise: row m's block scales at scales + m * blocks, its int16 values (zero past K) at
// q + m * blocks * 32.
struct XAsQ8 {
  const float* scales;
  const int16_t* q;
  int64_t blocks;  // q8_blocks(K)
};
XAsQ8 x_as_q8(const float* x, int64_t M, int64_t K);

// Rows [n0, n1) of a Q8 matrix w [N, K] against x [M, K] rounded by x_as_q8 on this thread:
// y[m, n] = dot(row n, row m's int16 values, its scales, blocks) + bias[n]. The SIMD kernels of
// each ISA pass their dot.
template <class Dot>
inline void q8_rows(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias, float* y,
                    int64_t n0, int64_t n1, Dot dot) {
  const XAsQ8 xq = x_as_q8(x, M, K);  // per thread, cheap next to the rows it streams
  const int64_t rb = q8_row_bytes(K);
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* wr = static_cast<const uint8_t*>(w) + n * rb;
    for (int64_t m = 0; m < M; ++m)
      y[m * N + n] =
          dot(wr, xq.q + m * xq.blocks * kQ8Block, xq.scales + m * xq.blocks, xq.blocks) + (bias ? bias[n] : 0.0f);
  }
}

}  // namespace mambalm::ops::cpu

namespace mambalm::ops::cpu {

// Rows of x up to which linear() runs the GEMV kernels (weights streamed once, M dots per
// row); above it, fp32 weights go to OpenBLAS sgemm, bf16 weights to oneDNN's bf16 GEMM when
// prefill_rounds_x_to_bf16, and other bf16 / q8 weights are widened to fp32 a block of rows at a
// time for sgemm (prefill).
constexpr int64_t kGemvMaxRows = 8;

// linear() for weights of any CPU format: y[M, N] = x[M, K] w[N, K]^T (+ bias). Defined in
// linear_lowp.cpp.
void linear_any_format(const float* x, int64_t M, const Tensor& w, const float* bias, float* y);

// True when linear() with these weights rounds x to bf16 above kGemvMaxRows rows: bf16 weights,
// AVX512-BF16 active (cpu_features.h) and oneDNN present.
bool prefill_rounds_x_to_bf16(const Tensor& w);

}  // namespace mambalm::ops::cpu
