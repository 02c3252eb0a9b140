// Inference ops on the CPU: argmax, and for batches of sequences at their own positions rope_at,
// kv_append and attention_decode. Each is a per-sequence loop over the single-position ops, so the CPU
// reference stays the already-tested rope() and attention().
#include <cstring>

#include "ops/cpu/cpu_ops.h"
#include "ops/layout.h"
#include "ops/ops.h"

namespace mambalm::ops::cpu {

namespace {
// Rows [0, n) of sequence b of a cache [B, capacity, Hkv, Dh], as [1, n, Hkv, Dh].
Tensor cache_prefix(const Tensor& cache, int64_t b, int64_t n) {
  const int64_t cap = cache.dim(1), Hkv = cache.dim(2), Dh = cache.dim(3);
  return cache.slice0(b, b + 1).reshape({cap, Hkv, Dh}).slice0(0, n).reshape({1, n, Hkv, Dh});
}
}  // namespace

void argmax(const Tensor& x, int64_t limit, Tensor& out) {
  const int64_t M = x.dim(0), V = x.dim(1);
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x.f32() + m * V;
    int64_t best = 0;
    for (int64_t j = 1; j < limit; ++j)
      if (row[j] > row[best]) best = j;
    out.data<int32_t>()[m] = static_cast<int32_t>(best);
  }
}

void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y) {
  add(x, r, sum);
  rms_norm(sum, w, eps, y);
}

// The composition of the unfused ops, so the CPU reference is what the layer computes for T > 1.
void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w, const Tensor* conv_b, const Tensor& dt_bias,
                        const Tensor& A_log, const Tensor* D, float dt_min, float dt_max, int64_t n_groups,
                        Tensor& conv_state, Tensor& ssm_state, Tensor& ys, Tensor& z) {
  const int64_t B = zxbcdt.dim(0), H = dt_bias.dim(0), P = ssm_state.dim(2), N = ssm_state.dim(3);
  const int64_t Di = H * P, C = conv_w.dim(0), G = n_groups;
  Tensor xbc = Tensor::empty({B, 1, C}), dt_raw = Tensor::empty({B, 1, H});  // split of the row
  Tensor z3 = z.reshape({B, 1, Di}), row = zxbcdt.reshape({B, 1, zxbcdt.dim(1)});
  ops::split_columns(row, {&z3, &xbc, &dt_raw});
  Tensor xbc_conv = Tensor::empty({B, 1, C});
  causal_conv1d(xbc, conv_w, conv_b, &conv_state, /*apply_silu=*/true, xbc_conv);
  Tensor xs = Tensor::empty({B, 1, H, P}), Bm = Tensor::empty({B, 1, G, N}), Cm = Tensor::empty({B, 1, G, N});
  Tensor xs_flat = xs.reshape({B, 1, Di}), Bm_flat = Bm.reshape({B, 1, G * N}), Cm_flat = Cm.reshape({B, 1, G * N});
  ops::split_columns(xbc_conv, {&xs_flat, &Bm_flat, &Cm_flat});
  Tensor dt = Tensor::empty({B, 1, H}), A = Tensor::empty({H});
  softplus_dt(dt_raw, dt_bias, dt_min, dt_max, dt);
  ops::neg_exp(A_log, A);
  Tensor y4 = ys.reshape({B, 1, H, P});
  ssd_sequential(xs, dt, A, Bm, Cm, D, &ssm_state, y4);
}

void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta) {
  const int64_t B = x.dim(0);
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    Tensor xb = x.slice0(b, b + 1);  // [1, T, H, Dh]
    rope(xb, pos[b], rotary_dim, theta);
  }
}

void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache) {
  const int64_t B = x.dim(0), T = x.dim(1), row = x.dim(2) * x.dim(3), cap = cache.dim(1);
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(cache.f32() + (b * cap + pos[b]) * row, x.f32() + b * T * row, static_cast<size_t>(T * row) * 4);
}

void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                      float scale, Tensor& out) {
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2);
  const int32_t* len = lengths.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    Tensor ob = out.slice0(b, b + 1).reshape({1, 1, Hq, Dh});
    attention(q.slice0(b, b + 1).reshape({1, 1, Hq, Dh}), cache_prefix(k_cache, b, len[b]),
              cache_prefix(v_cache, b, len[b]), scale, ob);
  }
}

}  // namespace mambalm::ops::cpu
