// CPU (fp32) implementations of ops_backward.h, same signatures and semantics. dispatch_backward
// has checked dtypes, shapes and devices when these run (data-dependent checks such as token
// ids are made here).
#pragma once
#include "core/tensor.h"
#include "ops/ops_backward.h"

namespace mambalm::ops::cpu {

void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                     Tensor* db);
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable);

void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx);
void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx);
void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx);
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate,
                     Tensor& dup);
void softplus_dt_backward(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                          const Tensor& dy, Tensor& ddt, Tensor* ddt_bias);

void rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx,
                       Tensor* dw);
void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered,
                         const Tensor& dy, Tensor& dx, Tensor* dw, Tensor* db);
void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w,
                             int64_t group_size, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dz, Tensor* dw);

void causal_conv1d_packed(const Tensor& x, const Tensor& w, const Tensor* bias,
                          const Tensor* seq_idx, Tensor* state, bool apply_silu, Tensor& y);
void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias,
                            const Tensor* seq_idx, const Tensor* initial_state, bool apply_silu,
                            const Tensor& dy, Tensor& dx, Tensor* dw, Tensor* dbias,
                            Tensor* dinitial_state);

void ssd_chunked_packed(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                        const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                        int64_t chunk_size, Tensor* state, Tensor& y);
void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                          int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt,
                          Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                          Tensor* dinitial_state);

void selective_scan_packed(const Tensor& u, const Tensor& delta, const Tensor& A,
                           const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                           const Tensor* seq_idx, Tensor* state, Tensor& y);
void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A,
                             const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                             const Tensor* seq_idx, const Tensor* initial_state,
                             const Tensor* dfinal_state, int64_t chunk_size, const Tensor& dy,
                             Tensor& du, Tensor& ddelta, Tensor* dA, Tensor& dBm, Tensor& dCm,
                             Tensor* dD, Tensor* dz, Tensor* dinitial_state);

void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta);
void attention_packed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                      float scale, Tensor& out);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv);

CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits,
                                 float grad_scale);

}  // namespace mambalm::ops::cpu
