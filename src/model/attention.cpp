#include "model/attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/layout.h"
#include "ops/ops.h"

namespace mambalm {

void Attention::forward(const Tensor& x, LayerState* state, int64_t pos0, Tensor& y) {
  int64_t B = x.dim(0), T = x.dim(1);
  int64_t Hq = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.head_dim;
  Tensor q_flat = Tensor::empty({B, T, Hq * Dh});   // queries of the new tokens
  Tensor k_flat = Tensor::empty({B, T, Hkv * Dh});  // keys of the new tokens
  Tensor v_flat = Tensor::empty({B, T, Hkv * Dh});  // values of the new tokens
  ops::linear(x, q_w_, cfg_.bias ? &q_b_ : nullptr, q_flat);
  ops::linear(x, k_w_, cfg_.bias ? &k_b_ : nullptr, k_flat);
  ops::linear(x, v_w_, cfg_.bias ? &v_b_ : nullptr, v_flat);
  Tensor q = q_flat.reshape({B, T, Hq, Dh});   // per-head views
  Tensor k = k_flat.reshape({B, T, Hkv, Dh});
  Tensor v = v_flat.reshape({B, T, Hkv, Dh});
  if (cfg_.rotary_dim > 0) {
    ops::rope(q, pos0, cfg_.rotary_dim, cfg_.rope_theta);
    ops::rope(k, pos0, cfg_.rotary_dim, cfg_.rope_theta);
  }
  Tensor k_all = k, v_all = v;  // [B, S, Hkv, Dh]: cached prefix + new tokens
  if (state) {
    // The cache and the position must agree, or RoPE angles and the mask would be wrong.
    check(state->kv_len == pos0, "attention", "KV cache holds " + std::to_string(state->kv_len) +
                                                  " tokens but the input starts at position " + std::to_string(pos0));
  }
  Tensor o = Tensor::empty({B, T, Hq, Dh});  // per-head outputs
  if (state) {
    // Append the new keys/values to the cache, growing it geometrically (amortised O(1)).
    LayerState& s = *state;
    int64_t need = s.kv_len + T;
    int64_t capacity = s.k.defined() ? s.k.dim(1) : 0;
    check(B == 1, "attention", "KV caching is per sequence (batch 1) on the CPU backend");
    if (need > capacity) {
      int64_t grown = std::max<int64_t>(need, std::max<int64_t>(64, capacity * 2));
      Tensor nk = Tensor::empty({1, grown, Hkv, Dh}), nv = Tensor::empty({1, grown, Hkv, Dh});
      if (s.kv_len > 0) {
        Tensor nk_rows = nk.reshape({grown, Hkv, Dh}), nv_rows = nv.reshape({grown, Hkv, Dh});
        ops::copy_rows(s.k.reshape({capacity, Hkv, Dh}), s.kv_len, nk_rows);
        ops::copy_rows(s.v.reshape({capacity, Hkv, Dh}), s.kv_len, nv_rows);
      }
      s.k = nk;
      s.v = nv;
    }
    Tensor k_rows = s.k.reshape({s.k.dim(1), Hkv, Dh}).slice0(s.kv_len, need);
    Tensor v_rows = s.v.reshape({s.v.dim(1), Hkv, Dh}).slice0(s.kv_len, need);
    ops::copy_rows(k.reshape({T, Hkv, Dh}), T, k_rows);
    ops::copy_rows(v.reshape({T, Hkv, Dh}), T, v_rows);
    s.kv_len = need;
    k_all = s.k.reshape({s.k.dim(1), Hkv, Dh}).slice0(0, need).reshape({1, need, Hkv, Dh});
    v_all = s.v.reshape({s.v.dim(1), Hkv, Dh}).slice0(0, need).reshape({1, need, Hkv, Dh});
  }
  ops::attention(q, k_all, v_all, static_cast<float>(1.0 / std::sqrt(static_cast<double>(Dh))), o);
  ops::linear(o.reshape({B, T, Hq * Dh}), o_w_, cfg_.bias ? &o_b_ : nullptr, y);
}

ParamList Attention::params(const std::string& prefix) {
  int64_t q_out = cfg_.n_heads * cfg_.head_dim, kv_out = cfg_.n_kv_heads * cfg_.head_dim;
  ParamList p;
  p.push_back(param(prefix + "q_proj.weight", &q_w_, {q_out, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "q_proj.bias", &q_b_, {q_out}, Init::Zeros, false));
  p.push_back(param(prefix + "k_proj.weight", &k_w_, {kv_out, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "k_proj.bias", &k_b_, {kv_out}, Init::Zeros, false));
  p.push_back(param(prefix + "v_proj.weight", &v_w_, {kv_out, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "v_proj.bias", &v_b_, {kv_out}, Init::Zeros, false));
  p.push_back(param(prefix + "o_proj.weight", &o_w_, {d_, q_out}, Init::NormalOutput, true));
  if (cfg_.bias) p.push_back(param(prefix + "o_proj.bias", &o_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
