// linear() by weight format on the CPU: the GEMV kernels (gemv.h) for a few rows of x (decode),
// OpenBLAS sgemm for many (prefill). Q8 weights go to the integer GEMM (gemm_q8.h) where the CPU
// has one (AVX2, AVX512-VNNI); else they are widened to fp32 one block of rows at a time, so that
// the fp32 copy never exceeds a few MiB, and x is rounded to 16-bit integers per block as the
// decode kernels round it (q8_format.h quantize_x_for_q8), so that all paths make the same
// products.
// bf16 weights on a CPU with AVX512-BF16 go to oneDNN's bf16 GEMM with x rounded to bf16
// (onednn_gemm.h), else they are widened as q8's are.
#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "ops/blas_core.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/gemm_q8.h"
#include "ops/cpu/gemv.h"
#include "ops/cpu/onednn_gemm.h"
#include "ops/cpu/q8_format.h"

namespace mambalm::ops::cpu {
namespace {

WeightFormat format_of(const Tensor& w) {
  switch (w.dtype()) {
    case DType::F32: return WeightFormat::F32;
    case DType::BF16: return WeightFormat::BF16;
    case DType::Q8: return WeightFormat::Q8;
    default: fail("op linear", "weights of dtype " + dtype_name(w.dtype()) + " on the CPU", "use F32, BF16 or Q8");
  }
}

// Rows [n0, n0 + R) of w as fp32 into out [R, K].
void widen_rows(const Tensor& w, WeightFormat f, int64_t n0, int64_t R, int64_t K, float* out) {
  const auto* base = static_cast<const uint8_t*>(w.raw()) + n0 * weight_row_bytes(f, K);
#pragma omp parallel for schedule(static) if (R * K > kParallelMin)
  for (int64_t r = 0; r < R; ++r) {
    const uint8_t* row = base + r * weight_row_bytes(f, K);
    float* o = out + r * K;
    if (f == WeightFormat::Q8) {
      dequantize_row_q8(row, K, o);
    } else {
      // bf16 is the top half of an fp32: a shift, written inline so that it vectorises (the
      // out-of-line bf16_to_f32 per element cost 28% of prefill's sgemm time, bench/NOTES.md).
      const auto* h = reinterpret_cast<const uint16_t*>(row);
      for (int64_t k = 0; k < K; ++k) o[k] = std::bit_cast<float>(static_cast<uint32_t>(h[k]) << 16);
    }
  }
}

}  // namespace

bool prefill_rounds_x_to_bf16(const Tensor& w) { return w.dtype() == DType::BF16 && onednn_bf16_prefill(); }

void linear_any_format(const float* x, int64_t M, const Tensor& w, const float* bias, float* y) {
  const int64_t N = w.dim(0), K = w.dim(1);
  const WeightFormat f = format_of(w);
  if (M <= kGemvMaxRows) {
    // The vdpbf16ps kernel rounds x to bf16 (an error as large as the weights' own rounding) and
    // measured no faster at batch-1 decode, which is bound by memory. It runs where the prefill
    // rounds x as well (bf16 weights through oneDNN), so that decode steps and a forward over the
    // same tokens make the same products; otherwise only when MAMBALM_CPU_ISA=avx512bf16 asks.
    Isa isa = active_isa();
    if (isa == Isa::Avx512Bf16 && !active_isa_forced() && !prefill_rounds_x_to_bf16(w)) isa = Isa::Avx512;
    gemv(f, isa, w.raw(), N, K, x, M, bias, y);
    return;
  }
  if (GemmQ8Fn gemm = f == WeightFormat::Q8 ? gemm_q8_kernel(active_isa()) : nullptr) {
    gemm(x, M, w.raw(), N, K, bias, y);
    return;
  }
  if (bias) {
#pragma omp parallel for schedule(static) if (M * N > (1 << 16))
    for (int64_t m = 0; m < M; ++m) std::copy(bias, bias + N, y + m * N);
  }
  const float beta = bias ? 1.0f : 0.0f;
  if (prefill_rounds_x_to_bf16(w)) {
    // bf16 x bf16 products (exact in fp32) on the AVX512-BF16 units: about twice sgemm's fp32
    // rate on a core, where widening the weights for sgemm also rewrote them every call. The cost
    // is x's rounding to bf16, as the GPU's cuBLASLt path and llama.cpp's BF16 rows make it
    // (docs/numerics.md). MAMBALM_CPU_ISA=avx512 turns it off.
    onednn_bf16_gemm(x_as_bf16(x, M * K), static_cast<const uint16_t*>(w.raw()), M, N, K, beta, y);
    return;
  }
  if (f == WeightFormat::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(N),
                static_cast<blasint>(K), 1.0f, x, static_cast<blasint>(K), w.data<float>(), static_cast<blasint>(K), beta,
                y, static_cast<blasint>(N));
    return;
  }
  std::vector<float> x_rounded;
  if (f == WeightFormat::Q8) {
    x_rounded.resize(static_cast<size_t>(M * K));
#pragma omp parallel for schedule(static) if (M * K > kParallelMin)
    for (int64_t m = 0; m < M; ++m) round_x_for_q8(x + m * K, K, x_rounded.data() + m * K);
    x = x_rounded.data();
  }
  // About 4 MiB of fp32 rows per block (at least 64 rows): large enough for sgemm's tiles.
  const int64_t R = std::min(N, std::max<int64_t>(64, (int64_t{1} << 20) / std::max<int64_t>(K, 1)));
  std::vector<float> wide(static_cast<size_t>(R * K));
  for (int64_t n0 = 0; n0 < N; n0 += R) {
    const int64_t r = std::min(R, N - n0);
    widen_rows(w, f, n0, r, K, wide.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(r),
                static_cast<blasint>(K), 1.0f, x, static_cast<blasint>(K), wide.data(), static_cast<blasint>(K), beta,
                y + n0, static_cast<blasint>(N));
  }
}

}  // namespace mambalm::ops::cpu
