// The CUDA backend: the forward and backward op lists of ops/ops.h and ops/ops_backward.h, same
// signatures and semantics (fp32 arithmetic; bf16 weights, tables and KV caches where ops.h
// allows them; tensor cores for the bf16 GEMMs, flash attention and the chunked SSD), checked
// against the CPU backend op by op (tools/cuda_conformance). ops/dispatch*.cpp have checked
// dtypes, shapes, devices and aliasing before these run. Every kernel is queued on the calling
// thread's default stream (per-thread, capturable into CUDA graphs); a launch failure throws at
// once, an execution failure at the next synchronising call (cuda_synchronize, a copy to the
// host). Files mirror ops/cpu/ by op family.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/tensor.h"
#include "ops/ops.h"

namespace mambalm::ops::cuda {

#include "ops/forward_ops.inc"
#include "ops/backward_ops.inc"

// Beyond the op lists, for benchmarks and tests:
// TFLOP/s of a bf16 8192^3 GEMM on random data (matmul_rate.cu); ops::measure_matmul_tflops.
double measure_matmul_tflops();
// Whether linear() times cuBLASLt's candidate algorithms per new shape (ops::set_gemm_autotune).
void set_gemm_autotune(bool on);
// The GEMM algorithm choices made so far, and pinning saved ones (ops::gemm_choices).
GemmChoices gemm_choices();
std::string pin_gemm_choices(const GemmChoices& choices);
// Which implementation attention / attention_backward use where cuDNN's fused attention covers
// the call (BF16 K/V, head dim 64 / 128, q_len == k_len, no documents; attention/attention.cu):
// Auto (the default) takes cuDNN for training (a forward asked for lse2, and every backward)
// when libcudnn.so.9 loads and builds a plan for the shape, else our kernels; Own never uses
// cuDNN; Cudnn uses it for every covered call and throws where it cannot. The process starts
// with MAMBALM_ATTN (own | cudnn | unset), docs/environment.md; this overrides it.
enum class AttentionBackend { Auto, Own, Cudnn };
void set_attention_backend(AttentionBackend backend);
AttentionBackend attention_backend();
// cudnnGetVersion() of the loaded libcudnn.so.9 (e.g. 91000), 0 when it cannot be loaded.
size_t cudnn_version();
// The tensor-core chunked path of ssd_chunked for any T >= 1 (same arguments and result), at the
// chunk given (rounded to a multiple of 64 up to 256) where ssd_chunked picks its own (ssd_bw::
// op_chunk); the benchmarks compare chunks through it. Returns false, doing nothing, when the shape is not tiled (P or N not a multiple of 64,
// unaligned data). stage_ms (optional, 4 floats) receives the time of each of its four kernels
// (chunk states, C B^T, state passing, chunk scan); it synchronises, for benchmarks only.
// products: Tf32 (the fast products: bf16 or TF32 operands, see ssd.cu) by default here, the
// benchmarks' subject; Exact runs the split products.
bool ssd_chunked_tensor_cores(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                              const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, Tensor* state,
                              Tensor& y, float* stage_ms = nullptr,
                              Fp32Products products = Fp32Products::Tf32);

}  // namespace mambalm::ops::cuda
