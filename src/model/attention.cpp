#include "model/attention.h"

#include <algorithm>
#include <cmath>

#include "ops/layout.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

float Attention::scale() const { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg_.head_dim))); }

void Attention::append_to_cache(LayerState& s, const Tensor& k, const Tensor& v, Tensor& k_all, Tensor& v_all) const {
  const int64_t T = k.dim(1), Hkv = cfg_.n_kv_heads, Dh = cfg_.head_dim;
  MAMBALM_CHECK(k.dim(0) == 1, "attention", "KV caching is per sequence (batch 1) on the CPU backend");
  const int64_t need = s.kv_len + T;
  const int64_t capacity = s.k.defined() ? s.k.dim(1) : 0;
  if (need > capacity) {  // grow geometrically: amortised O(1) per appended token
    const int64_t grown = std::max<int64_t>(need, std::max<int64_t>(64, capacity * 2));
    Tensor nk = Tensor::empty({1, grown, Hkv, Dh}), nv = Tensor::empty({1, grown, Hkv, Dh});
    if (s.kv_len > 0) {
      Tensor nk_rows = nk.reshape({grown, Hkv, Dh}), nv_rows = nv.reshape({grown, Hkv, Dh});
      ops::copy_rows(s.k.reshape({capacity, Hkv, Dh}), s.kv_len, nk_rows);
      ops::copy_rows(s.v.reshape({capacity, Hkv, Dh}), s.kv_len, nv_rows);
    }
    s.k = nk;
    s.v = nv;
  }
  const int64_t cap = s.k.dim(1);
  Tensor k_rows = s.k.reshape({cap, Hkv, Dh}).slice0(s.kv_len, need);
  Tensor v_rows = s.v.reshape({cap, Hkv, Dh}).slice0(s.kv_len, need);
  ops::copy_rows(k.reshape({T, Hkv, Dh}), T, k_rows);
  ops::copy_rows(v.reshape({T, Hkv, Dh}), T, v_rows);
  s.kv_len = need;
  k_all = s.k.reshape({cap, Hkv, Dh}).slice0(0, need).reshape({1, need, Hkv, Dh});
  v_all = s.v.reshape({cap, Hkv, Dh}).slice0(0, need).reshape({1, need, Hkv, Dh});
}

void Attention::forward(const Tensor& x, const ForwardContext& ctx, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t Hq = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.head_dim;
  Tensor q = Tensor::empty({B, T, Hq, Dh});   // queries of the new tokens (RoPE applied)
  Tensor k = Tensor::empty({B, T, Hkv, Dh});  // keys of the new tokens (RoPE applied)
  Tensor v = Tensor::empty({B, T, Hkv, Dh});  // values of the new tokens
  Tensor q_flat = q.reshape({B, T, Hq * Dh}), k_flat = k.reshape({B, T, Hkv * Dh}), v_flat = v.reshape({B, T, Hkv * Dh});
  ops::linear(x, q_w_.value, bias(q_b_), q_flat);
  ops::linear(x, k_w_.value, bias(k_b_), k_flat);
  ops::linear(x, v_w_.value, bias(v_b_), v_flat);
  if (cfg_.rotary_dim > 0) {
    ops::rope(q, ctx.pos0, cfg_.rotary_dim, cfg_.rope_theta);
    ops::rope(k, ctx.pos0, cfg_.rotary_dim, cfg_.rope_theta);
  }
  Tensor k_all = k, v_all = v;  // [B, S, Hkv, Dh]: cached prefix + new tokens
  if (ctx.state) {
    // The cache and the position must agree, or RoPE angles and the mask would be wrong.
    MAMBALM_CHECK(ctx.state->kv_len == ctx.pos0, "attention", "KV cache holds " + std::to_string(ctx.state->kv_len) +
                                                          " tokens but the input starts at position " + std::to_string(ctx.pos0));
    append_to_cache(*ctx.state, k, v, k_all, v_all);
  }
  Tensor o = Tensor::empty({B, T, Hq, Dh});  // per-head outputs
  if (ctx.seq_idx) ops::attention_packed(q, k_all, v_all, ctx.seq_idx, scale(), o);
  else ops::attention(q, k_all, v_all, scale(), o);
  ops::linear(o.reshape({B, T, Hq * Dh}), o_w_.value, bias(o_b_), y);
  if (ctx.cache) {
    ctx.cache->saved["x"] = x;
    ctx.cache->saved["q"] = q;
    ctx.cache->saved["k"] = k;
    ctx.cache->saved["v"] = v;
    ctx.cache->saved["o"] = o;
  }
}

void Attention::backward(const Tensor& dy, const Tensor* seq_idx, LayerCache& cache, Tensor& dx) {
  if (!cache.has("o")) {
    Tensor y = Tensor::empty(dy.shape());
    forward(cache.at("x"), ForwardContext{nullptr, 0, seq_idx, &cache}, y);
  }
  const Tensor& x = cache.at("x");
  const Tensor& q = cache.at("q");
  const Tensor& k = cache.at("k");
  const Tensor& v = cache.at("v");
  const int64_t B = x.dim(0), T = x.dim(1), Hq = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.head_dim;
  Tensor d_o = Tensor::empty({B, T, Hq, Dh});  // d loss / d o
  Tensor d_o_flat = d_o.reshape({B, T, Hq * Dh});
  ops::linear_backward(dy, cache.at("o").reshape({B, T, Hq * Dh}), o_w_.value, &d_o_flat, &o_w_.grad, bias_grad(o_b_));
  Tensor dq = Tensor::empty(q.shape()), dk = Tensor::empty(k.shape()), dv = Tensor::empty(v.shape());
  ops::attention_backward(q, k, v, seq_idx, scale(), d_o, dq, dk, dv);
  if (cfg_.rotary_dim > 0) {
    ops::rope_backward(dq, 0, cfg_.rotary_dim, cfg_.rope_theta);
    ops::rope_backward(dk, 0, cfg_.rotary_dim, cfg_.rope_theta);
  }
  Tensor dx_part = Tensor::empty(dx.shape());  // each projection's share of dx
  ops::linear_backward(dq.reshape({B, T, Hq * Dh}), x, q_w_.value, &dx, &q_w_.grad, bias_grad(q_b_));
  ops::linear_backward(dk.reshape({B, T, Hkv * Dh}), x, k_w_.value, &dx_part, &k_w_.grad, bias_grad(k_b_));
  ops::add(dx, dx_part, dx);
  ops::linear_backward(dv.reshape({B, T, Hkv * Dh}), x, v_w_.value, &dx_part, &v_w_.grad, bias_grad(v_b_));
  ops::add(dx, dx_part, dx);
}

ParamList Attention::params(const std::string& prefix) {
  const int64_t q_out = cfg_.n_heads * cfg_.head_dim, kv_out = cfg_.n_kv_heads * cfg_.head_dim;
  ParamList p;
  p.push_back(param(prefix + "q_proj.weight", q_w_, {q_out, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "q_proj.bias", q_b_, {q_out}, Init::Zeros, false));
  p.push_back(param(prefix + "k_proj.weight", k_w_, {kv_out, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "k_proj.bias", k_b_, {kv_out}, Init::Zeros, false));
  p.push_back(param(prefix + "v_proj.weight", v_w_, {kv_out, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "v_proj.bias", v_b_, {kv_out}, Init::Zeros, false));
  p.push_back(param(prefix + "o_proj.weight", o_w_, {d_, q_out}, Init::NormalOutput, true));
  if (cfg_.bias) p.push_back(param(prefix + "o_proj.bias", o_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
