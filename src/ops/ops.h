// Backend-neutral op declarations. Every op checks dtypes, shapes, devices and aliasing
// (ops/checks.h), then runs on the device of its tensors: ops/cpu/ (the reference) or ops/cuda/,
// which implements the same list. Activations are F32; stored operands (weights, embedding
// tables, KV caches) may be BF16 on CUDA where an op says so. Ops know nothing of layers: they
// see shapes and numbers.
//
// Layout conventions: activations are [B, T, ...] row-major (batch, time, features).
// Outputs are assigned (never accumulated) and must be preallocated by the caller with the
// documented shape; an op may not alias its output with an input unless it says so.
#pragma once
#include "core/tensor.h"

namespace mambalm::ops {

// ---- dense algebra -----------------------------------------------------------------------
// y[M, N] = x[M, K] @ w[N, K]^T (+ bias[N]). Leading dims of x and y are flattened into M.
// (PyTorch nn.Linear convention: w is stored [out_features, in_features].)
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y);

// y[B, T, D] = table[ids[b, t], :]; ids are I32 [B, T]; every id must be < table rows.
void embedding(const Tensor& ids, const Tensor& table /*[V, D]*/, Tensor& y);

// ---- elementwise (x and y may alias) -------------------------------------------------------
void add(const Tensor& a, const Tensor& b, Tensor& y);  // y = a + b, same shapes
void silu(const Tensor& x, Tensor& y);                   // x * sigmoid(x)
void relu_squared(const Tensor& x, Tensor& y);           // max(x, 0)^2
void gelu(const Tensor& x, Tensor& y);                   // exact erf GeLU (PyTorch default)
// y[..., F] = silu(gate[..., F]) * up[..., F]
void swiglu(const Tensor& gate, const Tensor& up, Tensor& y);

// ---- norms over the last dimension D --------------------------------------------------------
// y = x / sqrt(mean(x^2) + eps) * w
void rms_norm(const Tensor& x /*[..., D]*/, const Tensor& w /*[D]*/, float eps, Tensor& y);
// y = (x - mean) / sqrt(var + eps) * (w + (zero_centered ? 1 : 0)) + b   (b optional)
void layer_norm(const Tensor& x, const Tensor& w, const Tensor* b, float eps, bool zero_centered,
                Tensor& y);
// Mamba-2's gated norm: g = x * silu(z); y = g / sqrt(mean_group(g^2) + eps) * w, where the mean
// runs over contiguous groups of `group_size` channels of the last dim (D % group_size == 0).
void gated_rms_norm(const Tensor& x /*[..., D]*/, const Tensor& z /*[..., D]*/,
                    const Tensor& w /*[D]*/, int64_t group_size, float eps, Tensor& y);

// ---- causal depthwise convolution ----------------------------------------------------------
// y[b, t, c] = bias[c] + sum_k w[c, k] * xpad[b, t + k, c], k = 0..K-1, where xpad is x with the
// K-1 previous inputs prepended: they come from `state` [B, C, K-1] (state[b, c, j] is the input
// at time j-(K-1) relative to t=0, oldest first). If `state` is null the history is zeros.
// On return `state` (if given) holds the last K-1 inputs, so a later call continues the stream.
// If `apply_silu`, y = silu(y). Works for any T >= 1 (T = 1 is the decode step).
void causal_conv1d(const Tensor& x /*[B, T, C]*/, const Tensor& w /*[C, K]*/, const Tensor* bias,
                   Tensor* state /*[B, C, K-1]*/, bool apply_silu, Tensor& y /*[B, T, C]*/);

// ---- Mamba-2 (SSD) --------------------------------------------------------------------------
// dt_out = clamp(softplus(dt + dt_bias), dt_min, dt_max)   (dt [B, T, H], dt_bias [H])
void softplus_dt(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                 Tensor& dt_out);

// State-space recurrence per head h (group g = h / (H / G)):
//   S_t = exp(dt_t * A_h) * S_{t-1} + dt_t * x_t (outer) B_t      S: [P, N]
//   y_t = S_t C_t + D_h * x_t
// x [B, T, H, P], dt [B, T, H] (already softplus'ed), A [H] (negative), Bm, Cm [B, T, G, N],
// D [H] (optional). state [B, H, P, N]: initial state in (null = zeros), final state out.
// ssd_chunked computes the same thing with the chunked SSD algorithm (intra-chunk quadratic
// form + inter-chunk state passing) for any chunk size; T need not be a multiple of it.
void ssd_sequential(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, Tensor* state, Tensor& y);
void ssd_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, int64_t chunk_size, Tensor* state, Tensor& y);

// ---- Mamba-1 selective scan -----------------------------------------------------------------
// Per channel d and state index n:
//   h_t[d, n] = exp(delta_t[d] * A[d, n]) * h_{t-1}[d, n] + delta_t[d] * u_t[d] * B_t[n]
//   y_t[d] = sum_n h_t[d, n] C_t[n] + D[d] * u_t[d];   if z: y_t[d] *= silu(z_t[d])
// u, delta, z: [B, T, Di]; A [Di, N]; Bm, Cm [B, T, N]; D [Di] optional; state [B, Di, N] in/out
// (null = zeros in, discarded out). delta is already softplus'ed.
void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, Tensor* state, Tensor& y);

// ---- attention --------------------------------------------------------------------------
// Rotary embedding, in place, on the first `rotary_dim` channels of each head (rotate-half /
// GPT-NeoX convention, as in transformers): for i < rotary_dim/2, with
// inv_freq_i = theta^(-2i/rotary_dim) and angle = (pos0 + t) * inv_freq_i,
//   x[i]   <- x[i] cos - x[i + r/2] sin;   x[i + r/2] <- x[i + r/2] cos + x[i] sin.
// Channels >= rotary_dim pass through. x [B, T, H, Dh].
void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta);

// Causal scaled-dot-product attention with grouped KV heads (Hq % Hkv == 0; query head h reads
// KV head h / (Hq / Hkv)). q [B, T, Hq, Dh]; k, v [B, S, Hkv, Dh] with S >= T: the T queries are
// positions S-T .. S-1 of the S keys (a KV cache prefix followed by the new tokens), and query
// at position p sees keys 0..p. out [B, T, Hq, Dh]. Softmax in fp32 with max subtraction.
// k and v are F32, or on CUDA also BF16 (a bf16 KV cache; there the kernel rounds q and the
// softmax weights to bf16 for the tensor cores and accumulates in fp32).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out);

// ---- fused steps for decode (fewer, larger kernels per token) -------------------------------
// sum = x + r (sum may alias x); y = sum / sqrt(mean(sum^2) + eps) * w. The residual add of one
// block and the pre-norm of the next in one pass. x, r, sum, y [..., D]; w [D].
void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y);

// One token (T = 1) of a Mamba-2 mixer after its input projection. zxbcdt [B, W] is the
// projection row z | x | B | C | dt (widths Di, Di, G*N, G*N, H; Di = H*P). Equivalent to:
// split it; xbc = SiLU(causal_conv1d(x|B|C, conv_w, conv_b, conv_state)); dt = softplus_dt(dt,
// dt_bias, dt_min, dt_max); A = -exp(A_log); ssd_sequential over the one step with ssm_state;
// ys [B, H, P] = its output (D included), z [B, Di] = the gate. conv_state [B, C, K-1] and
// ssm_state [B, H, P, N] advance by one token.
void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w /*[C, K]*/, const Tensor* conv_b,
                        const Tensor& dt_bias /*[H]*/, const Tensor& A_log /*[H]*/, const Tensor* D /*[H]*/,
                        float dt_min, float dt_max, int64_t n_groups, Tensor& conv_state, Tensor& ssm_state,
                        Tensor& ys, Tensor& z);

// ---- greedy choice -----------------------------------------------------------------------
// out[m] = argmax_{j < limit} x[m, j] (the first index on ties). x F32 [M, V], 1 <= limit <= V;
// out I32 [M]. Decode keeps the chosen ids on the device this way.
void argmax(const Tensor& x, int64_t limit, Tensor& out);

// ---- inference: many sequences, each at its own position ------------------------------------
// Rotary embedding as in rope(), but token t of sequence b sits at position positions[b] + t.
// x [B, T, H, Dh]; positions I32 [B].
void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta);

// Writes new keys (or values) into a per-sequence cache: cache[b, positions[b] + t] = x[b, t].
// x F32 [B, T, Hkv, Dh]; cache [B, capacity, Hkv, Dh], F32 (or BF16 on CUDA: rounded to nearest
// even); positions I32 [B] with positions[b] + T <= capacity.
void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache);

// One new query per sequence against that sequence's cached keys: sequence b's query sees cache
// rows 0 .. lengths[b]-1 (its own token included, so lengths[b] >= 1). GQA as in attention().
// q F32 [B, Hq, Dh]; k_cache, v_cache [B, capacity, Hkv, Dh] F32 (or BF16 on CUDA);
// lengths I32 [B]; out F32 [B, Hq, Dh]. Softmax in fp32.
void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                      const Tensor& lengths, float scale, Tensor& out);

}  // namespace mambalm::ops
