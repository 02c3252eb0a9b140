// Scalar-type-generic wrappers used by the templated training kernels (scan_kernels.h):
// row-major gemm dispatching to OpenBLAS sgemm/dgemm, and exp (exp_fast for float, std::exp for
// double so the double instances are exact references for finite-difference tests).
#pragma once
#include <cblas.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

// C[M, N] = alpha op(A) op(B) + beta C, row-major; op = transpose when ta / tb.
template <class R>
inline void gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, R alpha, const R* A,
                    int64_t lda, const R* B, int64_t ldb, R beta, R* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty reduction: C = beta C (BLAS rejects lda < 1)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == R(0) ? R(0) : beta * C[i * ldc + j];
    return;
  }
  const auto TA = ta ? CblasTrans : CblasNoTrans;
  const auto TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<R, float>) {
    cblas_sgemm(CblasRowMajor, TA, TB, static_cast<blasint>(M), static_cast<blasint>(N),
                static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda), B,
                static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, TA, TB, static_cast<blasint>(M), static_cast<blasint>(N),
                static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda), B,
                static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
  }
}

template <class R>
inline R exp_r(R v) {
  if constexpr (std::is_same_v<R, float>) {
    return exp_fast(v);
  } else {
    return std::exp(v);
  }
}

}  // namespace mambalm::ops::cpu
