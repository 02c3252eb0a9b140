// CPU (fp32) implementations of the ops declared in ops/ops.h, same signatures and semantics.
// dispatch.cpp has already checked dtypes, shapes and devices when these run, so they trust
// their arguments (except data-dependent checks such as embedding ids, which they make).
//
// Also holds the few numeric helpers the CPU kernels share (exp_fast), kept inline so the
// compiler can vectorise the loops that call them.
#pragma once
#include <bit>
#include <cstdint>

#include "core/tensor.h"

namespace mambalm::ops::cpu {

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
void ssd_sequential(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, Tensor* state, Tensor& y);
void ssd_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, int64_t chunk_size, Tensor* state, Tensor& y);

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, Tensor* state, Tensor& y);

void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta);
void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out);
void argmax(const Tensor& x, int64_t limit, Tensor& out);
void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y);
void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w, const Tensor* conv_b, const Tensor& dt_bias,
                        const Tensor& A_log, const Tensor* D, float dt_min, float dt_max, int64_t n_groups,
                        Tensor& conv_state, Tensor& ssm_state, Tensor& ys, Tensor& z);
void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta);
void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache);
void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                      float scale, Tensor& out);

// ---- shared numeric helpers ---------------------------------------------------------------

// exp(x) in fp32 that the compiler can vectorise (std::exp cannot be, because it may set errno
// and we do not build with -ffast-math). Range reduction x = n ln2 + r with |r| <= ln2/2, a
// degree-7 Taylor polynomial for e^r (truncation < 1e-8 relative), then 2^n through the exponent
// bits. Max relative error ~2-3 ulp against double exp over the whole range. Arguments below
// -87 (where e^x leaves the normal float range) return 0; above 88 saturate at e^88.
// NaN in gives NaN out. Used where an exp sits in a hot inner loop (scans, softmax, SSD decays).
inline float exp_fast(float x) {
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round xc*log2(e) to the nearest integer with the 1.5*2^23 trick (exact, branch-free).
  const float shifter = 12582912.0f;
  float t = xc * 1.44269504088896341f + shifter;
  float n = t - shifter;
  int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(shifter);
  // r = xc - n*ln2 in two steps (Cody-Waite) so r keeps full precision.
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  float scale = std::bit_cast<float>((ni + 127) << 23);
  float result = p * scale;
  result = x < lo ? 0.0f : result;
  return x != x ? x : result;
}

}  // namespace mambalm::ops::cpu
