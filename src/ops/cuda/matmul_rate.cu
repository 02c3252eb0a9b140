// The device's dense matrix rate, measured: a bf16 x bf16 -> bf16 GEMM of 8192^3 (fp32
// accumulation) on random data through cuBLASLt, the median of 10 timed runs after 3 warm-ups.
// Training reports MFU against it, as the peers (PyTorch's training anchor) do against the rate
// they measured the same way.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/device.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {
void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("matmul rate (cuda)", std::string(what) + " failed with cuBLAS status " + std::to_string(static_cast<int>(s)));
}
}  // namespace

double measure_matmul_tflops() {
  constexpr int64_t n = 8192;
  Tensor a = empty_cuda({n, n}, DType::BF16), b = empty_cuda({n, n}, DType::BF16), c = empty_cuda({n, n}, DType::BF16);
  fill_uniform_cuda(a, 1, -1.0f, 1.0f);  // random data: zeros run faster than real operands
  fill_uniform_cuda(b, 2, -1.0f, 1.0f);
  cublasLtHandle_t lt = nullptr;
  lt_check(cublasLtCreate(&lt), "cublasLtCreate");
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  const size_t ws_bytes = size_t(32) << 20;
  Tensor ws = empty_cuda({int64_t(ws_bytes / 4)});
  lt_check(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
  lt_check(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, n, n, n), "layout a");
  lt_check(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, n, n, n), "layout b");
  lt_check(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, n, n, n), "layout c");
  lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes),
           "preference workspace");
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  lt_check(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &heur, &found), "heuristic");
  check(found > 0, "matmul rate (cuda)", "cuBLASLt offers no bf16 GEMM algorithm");
  const float alpha = 1.0f, beta = 0.0f;
  auto run = [&] {
    lt_check(cublasLtMatmul(lt, op, &alpha, a.raw(), la, b.raw(), lb, &beta, c.raw(), lc, c.raw(), lc, &heur.algo, ws.raw(),
                            ws_bytes, cudaStreamPerThread),
             "matmul");
  };
  for (int i = 0; i < 3; ++i) run();
  StreamTimer timer("matmul rate");
  std::vector<float> ms;
  for (int i = 0; i < 10; ++i) ms.push_back(timer.ms(run));
  std::sort(ms.begin(), ms.end());
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  cublasLtDestroy(lt);
  const double flops = 2.0 * double(n) * double(n) * double(n);
  return flops / (double(ms[ms.size() / 2]) * 1e-3) / 1e12;
}

}  // namespace mambalm::ops::cuda
