// Dense algebra on the CPU: linear (one OpenBLAS sgemm) and embedding lookup (row copies).
#include <cblas.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

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

// y[b, t, :] = table[ids[b, t], :]. Ids are validated first, all of them, so that a bad id
// throws before anything is written and never from inside a parallel region.
void embedding(const Tensor& ids, const Tensor& table, Tensor& y) {
  const int64_t n = ids.numel();
  const int64_t V = table.dim(0);
  const int64_t D = table.dim(1);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (id[i] < 0 || id[i] >= V)
      fail("op embedding", "token id " + std::to_string(id[i]) + " at flat position " +
                               std::to_string(i) + " is out of range for a table of " +
                               std::to_string(V) + " rows",
           "the tokenizer and the model's vocab_size disagree");
  }
  const float* tp = table.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (n * D > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(yp + i * D, tp + static_cast<int64_t>(id[i]) * D, static_cast<size_t>(D) * sizeof(float));
}

}  // namespace mambalm::ops::cpu
