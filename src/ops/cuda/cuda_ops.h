// CUDA implementations of the ops of ops/ops.h and ops/layout.h, same signatures and semantics
// (fp32 arithmetic; bf16 weights, tables and KV caches where ops.h allows them; tensor cores for
// the bf16 GEMMs, flash attention and the chunked SSD). dispatch.cpp has checked dtypes, shapes,
// devices and aliasing before these run. Every kernel is queued on the calling thread's default
// stream (per-thread, capturable into CUDA graphs); a launch failure throws at once, an
// execution failure at the next synchronising call (cuda_synchronize, a copy to the host).
#pragma once
#include <cstdint>
#include <initializer_list>

#include "core/tensor.h"

namespace mambalm::ops::cuda {

void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);
void embedding(const Tensor& ids, const Tensor& table, Tensor& y);

void add(const Tensor& a, const Tensor& b, Tensor& y);
void silu(const Tensor& x, Tensor& y);
void relu_squared(const Tensor& x, Tensor& y);
void gelu(const Tensor& x, Tensor& y);
void swiglu(const Tensor& gate, const Tensor& up, Tensor& y);

void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y);
void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, bool zero_centered,
                Tensor& y);
void gated_rms_norm(const Tensor& x, const Tensor& z, const Tensor& w, int64_t group_size,
                    float eps, Tensor& y);

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* state,
                   bool apply_silu, Tensor& y);

void softplus_dt(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                 Tensor& dt_out);
// ssd_sequential runs the per-token recurrence with the state in registers (one block per
// (sequence, head, 64 rows of P)): the decode path. ssd_chunked runs the chunked algorithm on the
// tensor cores (TF32 operands, fp32 sums and state passing; see ssd.cu) for T >= 16 and the
// shapes it tiles (P and N multiples of 64), the recurrence otherwise.
void ssd_sequential(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, Tensor* state, Tensor& y);
void ssd_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, int64_t chunk_size, Tensor* state, Tensor& y);

// The tensor-core chunked path of ssd_chunked for any T >= 1 (same arguments and result).
// Returns false, doing nothing, when the shape is not tiled (P or N not a multiple of 64,
// unaligned data). stage_ms (optional, 4 floats) receives the time of each of its four kernels
// (chunk states, C B^T, state passing, chunk scan); it synchronises, for benchmarks only.
// heads_per_block (1, 2 or 4; 0 = the default) is a tuning knob for benchmarks: same result.
bool ssd_chunked_tensor_cores(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                              const Tensor& Cm, const Tensor* D, int64_t chunk_size, Tensor* state,
                              Tensor& y, float* stage_ms = nullptr, int heads_per_block = 0);

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, Tensor* state, Tensor& y);

void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta);
// k, v F32 or BF16 (see ops.h).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out);
void argmax(const Tensor& x, int64_t limit, Tensor& out);
void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y);
void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w, const Tensor* conv_b, const Tensor& dt_bias,
                        const Tensor& A_log, const Tensor* D, float dt_min, float dt_max, int64_t n_groups,
                        Tensor& conv_state, Tensor& ssm_state, Tensor& ys, Tensor& z);
void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta);
void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache);
void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      const Tensor& lengths, float scale, Tensor& out);

// layout.h (shapes already checked by the caller)
void copy_columns(const Tensor& src, int64_t col0, Tensor& dst);
void write_columns(const Tensor& src, Tensor& dst, int64_t col0);
void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts);
void copy_rows(const Tensor& src, int64_t n, Tensor& dst);
void neg_exp(const Tensor& x, Tensor& y);

}  // namespace mambalm::ops::cuda
