// oneDNN opened at run time (onednn_gemm.h). dnnl_gemm_bf16bf16f32 is oneDNN's C API (dnnl.h,
// stable since 1.x): row-major C = alpha op(A) op(B) + beta C with bf16 A, B and fp32 C; it runs
// AVX512-BF16 dot products where the CPU has them. Its prototype is written out here, so that
// building needs no oneDNN headers.
#include "ops/cpu/onednn_gemm.h"

#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace mambalm::ops::cpu {
namespace {

using dnnl_dim_t = int64_t;
using GemmBf16 = int (*)(char transa, char transb, dnnl_dim_t M, dnnl_dim_t N, dnnl_dim_t K, float alpha,
                         const uint16_t* A, dnnl_dim_t lda, const uint16_t* B, dnnl_dim_t ldb, float beta, float* C,
                         dnnl_dim_t ldc);

GemmBf16 gemm_bf16() {
  static const GemmBf16 f = []() -> GemmBf16 {
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer builds keep the widened-weights path: LeakSanitizer's exit-time tracer
    // crashed (signal 11) in a `mambalm forward --dtype bf16` that had run oneDNN's JIT code
    // (CI's sanitizer pass, 2026-12-01); the plain builds test this path.
    return nullptr;
#endif
    // RTLD_LAZY: one function is called; resolving all of the library's symbols up front only
    // makes more of its pages resident.
    void* h = dlopen("libdnnl.so.2", RTLD_LAZY | RTLD_LOCAL);
    return h ? reinterpret_cast<GemmBf16>(dlsym(h, "dnnl_gemm_bf16bf16f32")) : nullptr;
  }();
  return f;
}

}  // namespace

bool onednn_bf16_gemm_available() { return gemm_bf16() != nullptr; }

int onednn_bf16_gemm_status(char transa, char transb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                            const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const GemmBf16 gemm = gemm_bf16();
  return gemm ? gemm(transa, transb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc) : -1;
}

void onednn_bf16_gemm(const uint16_t* x, const uint16_t* w, int64_t M, int64_t N, int64_t K, float beta, float* y) {
  if (!gemm_bf16()) fail("oneDNN bf16 GEMM", "oneDNN (libdnnl.so.2) is not available", "install Debian's libdnnl2");
  const int status = onednn_bf16_gemm_status('N', 'T', M, N, K, x, K, w, K, beta, y, N);
  if (status != 0)  // dnnl_success
    fail("oneDNN bf16 GEMM", "dnnl_gemm_bf16bf16f32 returned status " + std::to_string(status) + " for M " +
                                 std::to_string(M) + ", N " + std::to_string(N) + ", K " + std::to_string(K));
}

}  // namespace mambalm::ops::cpu
