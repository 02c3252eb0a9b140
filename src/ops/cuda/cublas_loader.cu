// cuBLAS and cuBLASLt opened on first use (dlopen) instead of linked: the binary then starts
// without CUDA's math libraries (a CPU-only machine runs it; `mambalm --help` does not pay
// cuBLASLt's start-up), and a `--device cuda` run finds them as before (libcublasLt.so.13 and
// libcublas.so.13 on the library path). Each function below has the prototype its header
// declares, so the rest of the CUDA backend calls cuBLAS as if it were linked; the first call
// resolves the real symbol (once; thread-safe static initialisation) and forwards to it.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace {

void* open_library(const char* name) {
  void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    mambalm::fail("cuda", std::string("cannot load ") + name + ": " + dlerror(),
                  "the CUDA backend needs cuBLAS from CUDA 13 on the library path (LD_LIBRARY_PATH)");
  return h;
}
void* lt_library() {
  static void* h = open_library("libcublasLt.so.13");
  return h;
}
void* blas_library() {
  static void* h = open_library("libcublas.so.13");
  return h;
}
template <class F>
F resolve(void* library, const char* name) {
  void* p = dlsym(library, name);
  if (!p) mambalm::fail("cuda", std::string("cuBLAS has no symbol ") + name, "is it the CUDA 13 cuBLAS?");
  return reinterpret_cast<F>(p);
}

}  // namespace

// Forwards `name(args)` to the library's own `name`, resolved once.
#define MAMBALM_FORWARD(library, name, ...)                                          \
  static const auto real = resolve<decltype(&name)>(library(), #name);              \
  return real(__VA_ARGS__)

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) { MAMBALM_FORWARD(lt_library, cublasLtCreate, h); }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { MAMBALM_FORWARD(lt_library, cublasLtDestroy, h); }
cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                              const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmul, h, desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo,
                  workspace, workspace_bytes, stream);
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  MAMBALM_FORWARD(lt_library, cublasLtMatrixLayoutCreate, layout, type, rows, cols, ld);
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  MAMBALM_FORWARD(lt_library, cublasLtMatrixLayoutDestroy, layout);
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulDescCreate, desc, compute, scale);
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulDescDestroy, desc);
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulDescSetAttribute, desc, attr, buf, bytes);
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulPreferenceCreate, pref);
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulPreferenceDestroy, pref);
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t bytes) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulPreferenceSetAttribute, pref, attr, buf, bytes);
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulAlgoGetHeuristic, h, desc, Adesc, Bdesc, Cdesc, Ddesc, pref, requested,
                  results, returned);
}
cublasStatus_t cublasLtMatmulAlgoCheck(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t Adesc,
                                       cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc,
                                       cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo,
                                       cublasLtMatmulHeuristicResult_t* result) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulAlgoCheck, h, desc, Adesc, Bdesc, Cdesc, Ddesc, algo, result);
}
size_t cublasLtGetVersion(void) { MAMBALM_FORWARD(lt_library, cublasLtGetVersion); }
cublasStatus_t cublasLtMatmulAlgoCapGetAttribute(const cublasLtMatmulAlgo_t* algo, cublasLtMatmulAlgoCapAttributes_t attr,
                                                void* buf, size_t bytes, size_t* written) {
  MAMBALM_FORWARD(lt_library, cublasLtMatmulAlgoCapGetAttribute, algo, attr, buf, bytes, written);
}

cublasStatus_t cublasCreate_v2(cublasHandle_t* h) { MAMBALM_FORWARD(blas_library, cublasCreate_v2, h); }
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
  MAMBALM_FORWARD(blas_library, cublasSetStream_v2, h, s);
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  MAMBALM_FORWARD(blas_library, cublasSetMathMode, h, mode);
}
cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  MAMBALM_FORWARD(blas_library, cublasSgemm_v2, h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // extern "C"
