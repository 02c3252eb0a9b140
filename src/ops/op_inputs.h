// The checks of an op's inputs, written once and shared by its forward entry point
// (ops/dispatch.cpp) and its backward one (ops/dispatch_backward.cpp): dtypes, ranks and the
// shapes the inputs imply for each other. Each entry point adds the checks of its own outputs.
// Messages name the op and the tensor and say what was expected.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mambalm::ops::checks {

// x [..., K] (see need_matrix_activation_dtype); w [N, K] (F32, BF16, or Q8 on the CPU); bias
// F32 [N] (optional).
void linear_inputs(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias);
// An activation that a matrix product with weights w reads or writes (linear's x and y, its
// backward's dy and dx): F32, or BF16 on CUDA when w is BF16 (mixed-precision training keeps the
// MLP's [B, T, F] intermediates in bf16 between its bf16 GEMMs).
void need_matrix_activation_dtype(const char* op, const char* name, const Tensor& t, const Tensor& w);
// The tensors of an activation or its backward: one shape and one dtype, F32, or BF16 on CUDA.
void activation_tensors(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors);
// Column blocks of one [lead..., total] result (linear_parts, causal_conv1d_parts and their
// backwards): 1 to 8 F32 tensors (or BF16 on CUDA where bf16_on_cuda) of leading dims `lead`
// whose last dims sum to `total`.
void column_parts(const char* op, const char* name, const std::vector<const Tensor*>& parts, const Shape& lead,
                  int64_t total, bool bf16_on_cuda = false);
// ids I32 [B, T]; table [V, D] (F32, or BF16 on CUDA).
void embedding_inputs(const char* op, const Tensor& ids, const Tensor& table);
// a and b F32 with equal shapes (elementwise ops do not broadcast).
void same_shape(const char* op, const char* an, const Tensor& a, const char* bn, const Tensor& b);
// x F32 [..., D] (or BF16 on CUDA where x_bf16_on_cuda); w F32 [D]; eps finite >= 0.
void norm_inputs(const char* op, const Tensor& x, const Tensor& w, float eps, bool x_bf16_on_cuda = false);
// x [B, T, C] (F32, or BF16 on CUDA where x_bf16_on_cuda), w [C, K], bias [C], seq_idx I32
// [B, T], state [B, C, K-1] (optional ones may be null).
void conv_inputs(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                 const Tensor* state, bool x_bf16_on_cuda = false);
// x [B, T, H, P], dt [B, T, H], A [H], Bm and Cm [B, T, G, N] with H % G == 0, D [H],
// seq_idx I32 [B, T]. x, Bm, Cm: F32, or all three BF16 on CUDA where bf16_on_cuda.
void ssd_inputs(const char* op, const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                const Tensor* D, const Tensor* seq_idx, bool bf16_on_cuda = false);
Shape ssd_state_shape(const Tensor& x, const Tensor& Bm);  // [B, H, P, N]
void chunk_size_positive(const char* op, int64_t chunk_size);
// u, delta, z [B, T, Di], A [Di, N], Bm and Cm [B, T, N], D [Di], seq_idx I32 [B, T].
void scan_inputs(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx);
Shape scan_chunk_states_shape(const Tensor& u, const Tensor& A);  // [B, ceil(T / kScanStateChunk), Di, N]
// q [B, T, Hq, Dh] (F32, or BF16 on CUDA with BF16 k and v: mixed precision, where out and the
// gradients take q's dtype), k and v [B, S, Hkv, Dh] with S >= T and Hq % Hkv == 0, seq_idx I32
// [B, S].
// k and v may be F32 or BF16 on CUDA; on the CPU BF16 only where `cpu_reads_bf16` (the forward,
// which reads a BF16 KV cache) and without documents.
void attention_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                      bool cpu_reads_bf16);
// x [B, T, H, Dh] (F32, or BF16 on CUDA); rotary_dim even and <= Dh; pos0 >= 0; theta > 0.
void rope_inputs(const char* op, const Tensor& x, int64_t pos0, int64_t rotary_dim, double theta);

}  // namespace mambalm::ops::checks
