// Op-level backward passes (hand-written, llm.c style) and the few forward variants that
// training needs beyond ops.h: packed documents (`seq_idx`) for conv / SSD / scan / attention,
// and cross-entropy. Every backward recomputes what it needs from the forward's *inputs*
// (no hidden saved state); callers keep the forward inputs alive until backward.
//
// Conventions (all tensors F32 on the CPU, shapes checked like ops.h):
// - `dy` is the gradient of the loss w.r.t. the forward output.
// - Activation gradients (dx, dq, du, ...) are ASSIGNED (overwritten).
// - Parameter gradients (dw, db, dA, dD, dt_bias, dtable, ...) are ACCUMULATED (+=): zero them
//   once per optimizer step, then gradient accumulation over micro-batches is free.
// - A pointer output may be null when that gradient is not wanted (frozen or absent parameter).
// - Unless said otherwise an output may not alias an input; the elementwise backwards allow
//   dx to alias dy.
//
// Packed documents: `seq_idx` is I32 [B, T] (attention: [B, S]), one document id per token.
// Token t starts a new document when t > 0 and seq_idx[b, t] != seq_idx[b, t-1]; there the conv
// history and the SSM state are reset to zero, and attention never looks across a document
// start. The history/state passed in (`state`) belongs to the document of token 0.
// A null seq_idx means one document per row, identical to the ops.h forward.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mambalm::ops {

// ---- dense -------------------------------------------------------------------------------
// Forward: y[M, N] = x[M, K] w[N, K]^T + b.
// dx = dy w (assign), dw += dy^T x, db += sum over rows of dy. Leading dims flattened into M.
void linear_backward(const Tensor& dy /*[..., N]*/, const Tensor& x /*[..., K]*/,
                     const Tensor& w /*[N, K]*/, Tensor* dx /*[..., K]*/, Tensor* dw /*[N, K]*/,
                     Tensor* db /*[N]*/);

// dtable[ids[b, t], :] += dy[b, t, :]. Deterministic: threads own column ranges and walk the
// tokens in order, so repeated ids are summed in token order (bit-identical run to run).
void embedding_backward(const Tensor& ids /*I32 [B, T]*/, const Tensor& dy /*[B, T, D]*/,
                        Tensor& dtable /*[V, D]*/);

// ---- elementwise (x is the forward input; dx may alias dy) ----------------------------------
void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx);
void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx);
void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx);  // exact erf GeLU
// y = silu(gate) * up. dgate/dup may alias dy (not each other).
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate,
                     Tensor& dup);

// ---- norms (statistics are recomputed from x in double; cheap, memory-bound) -----------------
void rms_norm_backward(const Tensor& x /*[..., D]*/, const Tensor& w /*[D]*/, float eps,
                       const Tensor& dy, Tensor& dx, Tensor* dw /*[D] +=*/);
// zero_centered: gain = w + 1 (LayerNorm1p); dw is still d loss / d w.
void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered,
                         const Tensor& dy, Tensor& dx, Tensor* dw /*+=*/, Tensor* db /*+=*/);
// Forward: g = x silu(z); y = g / rms_group(g) * w.
void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w,
                             int64_t group_size, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dz, Tensor* dw /*+=*/);

// ---- causal depthwise conv ------------------------------------------------------------------
// Forward of ops.h causal_conv1d, with document resets: output t reads only inputs of its own
// document (history rows count as token 0's document). seq_idx may be null.
void causal_conv1d_packed(const Tensor& x /*[B, T, C]*/, const Tensor& w /*[C, K]*/,
                          const Tensor* bias /*[C]*/, const Tensor* seq_idx /*I32 [B, T]*/,
                          Tensor* state /*[B, C, K-1] in/out*/, bool apply_silu,
                          Tensor& y /*[B, T, C]*/);
// Backward of causal_conv1d / causal_conv1d_packed (the SiLU, if applied, is recomputed).
// initial_state: the history the forward started from (null = zeros); dinitial_state (assign)
// receives its gradient. The gradient of the *final* state output is not an input: training
// runs whole sequences and discards the final conv state.
void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias,
                            const Tensor* seq_idx, const Tensor* initial_state, bool apply_silu,
                            const Tensor& dy, Tensor& dx, Tensor* dw /*+=*/,
                            Tensor* dbias /*+=*/, Tensor* dinitial_state /*[B, C, K-1]*/);

// ---- dt preprocessing -------------------------------------------------------------------
// Forward: dt_out = clamp(softplus(dt + dt_bias), dt_min, dt_max). Where the clamp is active
// (softplus value < dt_min or > dt_max) the gradient is zero, as in torch.clamp.
// ddt = dy * sigmoid(dt + dt_bias) (assign; may alias dy); ddt_bias += sum over rows.
void softplus_dt_backward(const Tensor& dt /*[..., H]*/, const Tensor& dt_bias /*[H]*/,
                          float dt_min, float dt_max, const Tensor& dy, Tensor& ddt,
                          Tensor* ddt_bias /*[H] +=*/);

// ---- Mamba-2 SSD -----------------------------------------------------------------------
// Forward = ssd_chunked (ops.h) with document resets; seq_idx may be null. Same shapes.
void ssd_chunked_packed(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                        const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                        int64_t chunk_size, Tensor* state, Tensor& y);
// Chunked backward: one pass over chunks recomputes the states at chunk boundaries
// (O(T/chunk * P * N) per head), then chunks are walked in reverse carrying dState; inside a
// chunk the same quadratic (gemm) form as the forward. Memory independent of T except that
// boundary store. Any chunk_size >= 1 (results equal to fp32 rounding for every chunk size).
//   initial_state [B, H, P, N]: the forward's initial state (null = zeros).
//   dfinal_state  [B, H, P, N]: gradient w.r.t. the final state output (null = zero).
//   Outputs: dx [B,T,H,P], ddt [B,T,H], dBm, dCm [B,T,G,N] assign; dA [H], dD [H] +=;
//   dinitial_state (assign, optional). ddt is w.r.t. the softplus'ed dt the forward consumed;
//   chain softplus_dt_backward after it.
void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                          int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt,
                          Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                          Tensor* dinitial_state);

// ---- Mamba-1 selective scan ----------------------------------------------------------------
// Forward = selective_scan (ops.h) with document resets; seq_idx may be null.
void selective_scan_packed(const Tensor& u, const Tensor& delta, const Tensor& A,
                           const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                           const Tensor* seq_idx, Tensor* state, Tensor& y);
// Chunked backward: states are stored at chunk boundaries (O(T/chunk * Di * N)) and recomputed
// inside each chunk (O(chunk * Di * N) live), walking chunks in reverse. chunk_size 64 is a good
// default. Outputs: du, ddelta [B,T,Di], dBm, dCm [B,T,N] assign; dz (assign, required when z
// is given); dA [Di, N], dD [Di] +=; dinitial_state [B, Di, N] assign (optional).
void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A,
                             const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                             const Tensor* seq_idx, const Tensor* initial_state,
                             const Tensor* dfinal_state, int64_t chunk_size, const Tensor& dy,
                             Tensor& du, Tensor& ddelta, Tensor* dA, Tensor& dBm, Tensor& dCm,
                             Tensor* dD, Tensor* dz, Tensor* dinitial_state);

// ---- attention ---------------------------------------------------------------------------
// Backward of rope: the inverse rotation (angle -> -angle), in place on the gradient dx.
void rope_backward(Tensor& dx /*[B, T, H, Dh]*/, int64_t pos0, int64_t rotary_dim, double theta);

// Forward = attention (ops.h) with document masking: query at position p sees key j iff
// j <= p and seq_idx[b, j] == seq_idx[b, p]. seq_idx is I32 [B, S] (null = plain causal).
void attention_packed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                      float scale, Tensor& out);
// Backward of attention / attention_packed. Recomputes the scores (no saved statistics):
// pass 1, per (query head, query block): softmax rows, dq, and the row terms lse and
// D_i = sum_j P_ij dP_ij; pass 2, per (KV head, key block): dk, dv summed over the group's query
// heads in a fixed order. Race-free and deterministic; costs 2x the forward's score gemms.
// dq [B,T,Hq,Dh], dk, dv [B,S,Hkv,Dh] assign.
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv);

// ---- loss --------------------------------------------------------------------------------
struct CrossEntropyResult {
  double mean_loss = 0.0;  // sum_loss / n_valid (0 when n_valid == 0)
  double sum_loss = 0.0;   // sum over non-ignored rows of -log softmax(logits)[target]
  int64_t n_valid = 0;     // rows whose target != -1
};
// logits [N, V], targets I32 [N] (-1 = ignore; others must be in [0, V)). Log-softmax with max
// subtraction in fp32, per-row sums in double. If dlogits is given:
//   dlogits = grad_scale * (softmax(logits) - onehot(target)) / n_valid   (assign; ignored rows 0)
// i.e. the gradient of grad_scale * mean_loss. dlogits may alias logits (saves a [N, V] buffer).
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits,
                                 float grad_scale = 1.0f);

}  // namespace mambalm::ops
