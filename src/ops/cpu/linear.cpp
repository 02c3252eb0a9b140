// Linear layers on the CPU: the forward (one OpenBLAS sgemm; up to kGemvMaxRows rows of x, or
// bf16 / q8 weights, go to linear_lowp.cpp) and the backward (two sgemms and a column sum).
// Column reductions (db, and dt_bias in ssd_backward.cpp) are arranged so that each
// output element is summed by one thread in a fixed order: no atomics, bit-identical results run
// to run.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/gemv.h"

namespace mambalm::ops::cpu {

void add_column_sums(const float* m, int64_t rows, int64_t cols, float* out) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (cols + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kCols, c1 = std::min(cols, c0 + kCols);
    double acc[kCols] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float* mr = m + r * cols;
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += mr[c];
    }
    for (int64_t c = c0; c < c1; ++c) out[c] += static_cast<float>(acc[c - c0]);
  }
}

// y[M, N] = x[M, K] @ w[N, K]^T (+ bias). w is stored [out, in] (nn.Linear), so this is a
// row-major NoTrans x Trans product. The bias is broadcast into y first and the gemm accumulates
// onto it (beta = 1), which costs one pass over y instead of two. OpenBLAS (OpenMP flavour)
// threads the gemm itself; called from inside one of our parallel regions it runs on one thread.
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  const int64_t K = x.dim(-1);
  const int64_t N = w.dim(0);
  const int64_t M = K > 0 ? x.numel() / K : y.numel() / (N > 0 ? N : 1);
  if (M == 0 || N == 0) return;
  float* yp = y.f32();
  if (K == 0) {  // empty reduction: y = bias or 0
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) yp[m * N + n] = bias ? bias->f32()[n] : 0.0f;
    return;
  }
  if (w.dtype() != DType::F32 || M <= kGemvMaxRows) {  // decode rows, or bf16 / q8 weights
    linear_any_format(x.f32(), M, w, bias ? bias->f32() : nullptr, yp);
    return;
  }
  float beta = 0.0f;
  if (bias) {
    const float* bp = bias->f32();
#pragma omp parallel for schedule(static) if (M * N > (1 << 16))
    for (int64_t m = 0; m < M; ++m) std::memcpy(yp + m * N, bp, static_cast<size_t>(N) * sizeof(float));
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), 1.0f, x.f32(),
              static_cast<blasint>(K), w.f32(), static_cast<blasint>(K), beta, yp,
              static_cast<blasint>(N));
}

// The product, then the residual added in one rounding: the same bits as linear then add (an
// sgemm with beta = 1 onto the residual would add it into partial sums instead).
void linear_onto(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& residual, Tensor& y) {
  linear(x, w, bias, y);
  add(residual, y, y);
}

// Forward y[M, N] = x[M, K] w[N, K]^T + b.
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                     Tensor* db, bool accumulate_dx, bool assign_dw) {
  const int64_t N = w.dim(0), K = w.dim(1);
  const int64_t M = N > 0 ? dy.numel() / N : (K > 0 ? x.numel() / K : 0);
  if (dx && dx->numel() > 0) {
    if (N == 0) {
      if (!accumulate_dx) dx->fill(0.0f);
    } else {  // dx[M, K] (+)= dy[M, N] w[N, K]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(M),
                  static_cast<blasint>(K), static_cast<blasint>(N), 1.0f, dy.f32(),
                  static_cast<blasint>(N), w.f32(), static_cast<blasint>(K), accumulate_dx ? 1.0f : 0.0f, dx->f32(),
                  static_cast<blasint>(K));
    }
  }
  if (dw && M > 0 && N > 0 && K > 0) {  // dw[N, K] (+)= dy^T[N, M] x[M, K]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(N),
                static_cast<blasint>(K), static_cast<blasint>(M), 1.0f, dy.f32(),
                static_cast<blasint>(N), x.f32(), static_cast<blasint>(K), assign_dw ? 0.0f : 1.0f, dw->f32(),
                static_cast<blasint>(K));
  }
  if (db && M > 0) add_column_sums(dy.f32(), M, N, db->f32());
}

}  // namespace mambalm::ops::cpu
