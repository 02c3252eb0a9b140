// oneDNN's bf16 GEMM for the CPU prefill with bf16 weights (ops/cpu/linear_lowp.cpp). The
// library (libdnnl.so.2, Debian's libdnnl2) is opened on first use rather than linked, as NCCL
// and cuBLAS are: without it the prefill widens the weights for sgemm as before.
#pragma once
#include <cstdint>

namespace mambalm::ops::cpu {

// True when libdnnl.so.2 opened and exports dnnl_gemm_bf16bf16f32 (looked up once).
bool onednn_bf16_gemm_available();

// y [M, N] = x [M, K] w [N, K]^T + beta y, x and w bf16 (raw bits), y fp32, row-major, fp32
// accumulation of exact bf16 products. Fails with a one-line error when oneDNN reports one.
void onednn_bf16_gemm(const uint16_t* x, const uint16_t* w, int64_t M, int64_t N, int64_t K, float beta, float* y);

// The general form, as the library's: C [M, N] = op(A) op(B) + beta C, row-major, op(X) = X for
// 'N' and X^T for 'T', bf16 A and B with leading dimensions lda, ldb, fp32 C with ldc. Returns
// oneDNN's status (0 on success, -1 without the library) instead of throwing: it is called inside
// OpenMP regions (ops/cpu/ssd.cpp), which an exception must not leave.
int onednn_bf16_gemm_status(char transa, char transb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                            const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace mambalm::ops::cpu
