#include "model/attention.h"

#include <algorithm>
#include <cmath>

#include "core/device.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

float Attention::scale() const { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg_.head_dim))); }

LayerState Attention::new_state(const AttentionConfig& cfg, int64_t batch, const StateOptions& opts) {
  LayerState s;
  if (opts.kv_capacity > 0) {
    s.k = zeros_on(opts.device, {batch, opts.kv_capacity, cfg.n_kv_heads, cfg.head_dim}, opts.kv_dtype);
    s.v = zeros_on(opts.device, {batch, opts.kv_capacity, cfg.n_kv_heads, cfg.head_dim}, opts.kv_dtype);
  }
  return s;
}

void Attention::forward(const Tensor& x, const LayerContext& ctx, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t Hq = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.head_dim;
  const DType at = ctx.activation_dtype();   // BF16 in mixed precision: what cuDNN reads and writes
  Tensor q = ctx.empty({B, T, Hq, Dh}, at);   // queries of the new tokens (RoPE applied)
  Tensor k = ctx.empty({B, T, Hkv, Dh}, at);  // keys of the new tokens (RoPE applied)
  Tensor v = ctx.empty({B, T, Hkv, Dh}, at);  // values of the new tokens
  Tensor q_flat = q.reshape({B, T, Hq * Dh}), k_flat = k.reshape({B, T, Hkv * Dh}), v_flat = v.reshape({B, T, Hkv * Dh});
  ops::linear(x, q_w_.value, bias(q_b_), q_flat);
  ops::linear(x, k_w_.value, bias(k_b_), k_flat);
  ops::linear(x, v_w_.value, bias(v_b_), v_flat);
  Tensor o = ctx.empty({B, T, Hq, Dh}, at);  // per-head outputs
  Tensor lse2;                           // training: each row's softmax statistic, for backward
  if (ctx.state) {
    // Each sequence continues at its own position: rotate, append to its cache, attend over it.
    LayerState& s = *ctx.state;
    if (cfg_.rotary_dim > 0) {
      ops::rope_at(q, *ctx.positions, cfg_.rotary_dim, cfg_.rope_theta);
      ops::rope_at(k, *ctx.positions, cfg_.rotary_dim, cfg_.rope_theta);
    }
    ops::kv_append(k, *ctx.positions, s.k);
    ops::kv_append(v, *ctx.positions, s.v);
    if (T == 1) {
      Tensor o_rows = o.reshape({B, Hq, Dh});
      ops::attention_decode(q.reshape({B, Hq, Dh}), s.k, s.v, *ctx.lengths, scale(), o_rows);
    } else {
      // A multi-token step runs the batch in lockstep (Model::forward checks): every sequence
      // sees cache rows [0, pos0 + T).
      const int64_t S = ctx.pos0 + T, cap = s.k.dim(1);
      for (int64_t b = 0; b < B; ++b) {
        Tensor kb = s.k.slice0(b, b + 1).reshape({cap, Hkv, Dh}).slice0(0, S).reshape({1, S, Hkv, Dh});
        Tensor vb = s.v.slice0(b, b + 1).reshape({cap, Hkv, Dh}).slice0(0, S).reshape({1, S, Hkv, Dh});
        Tensor ob = o.slice0(b, b + 1);
        ops::attention(q.slice0(b, b + 1), kb, vb, nullptr, scale(), ob);
      }
    }
  } else {
    if (cfg_.rotary_dim > 0) {
      ops::rope(q, ctx.pos0, cfg_.rotary_dim, cfg_.rope_theta);
      ops::rope(k, ctx.pos0, cfg_.rotary_dim, cfg_.rope_theta);
    }
    if (ctx.cache) lse2 = ctx.empty({B, Hq, T});
    ops::attention(q, k, v, ctx.seq_idx, scale(), o, ctx.cache ? &lse2 : nullptr);
  }
  output_projection(o.reshape({B, T, Hq * Dh}), o_w_.value, bias(o_b_), ctx, y);
  if (ctx.cache) {
    ctx.cache->x = x;
    auto a = std::make_unique<Activations>();
    a->q = q, a->k = k, a->v = v, a->o = o, a->lse2 = lse2;
    ctx.cache->activations = std::move(a);
  }
}

void Attention::backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) {
  const Tensor& x = cache.x;
  const Activations& a = activations<Activations>(dy, ctx, cache);
  const Tensor &q = a.q, &k = a.k, &v = a.v;
  const int64_t B = x.dim(0), T = x.dim(1), Hq = cfg_.n_heads, Hkv = cfg_.n_kv_heads, Dh = cfg_.head_dim;
  const DType at = q.dtype();               // the forward's activation_dtype
  Tensor d_o = ctx.empty({B, T, Hq, Dh}, at);  // d loss / d o
  Tensor d_o_flat = d_o.reshape({B, T, Hq * Dh});
  ops::linear_backward(dy, a.o.reshape({B, T, Hq * Dh}), o_w_.value, &d_o_flat, &o_w_.grad, bias_grad(o_b_));
  Tensor dq = ctx.empty(q.shape(), at), dk = ctx.empty(k.shape(), at), dv = ctx.empty(v.shape(), at);
  ops::attention_backward(q, k, v, ctx.seq_idx, scale(), d_o, dq, dk, dv, &a.o, a.lse2.defined() ? &a.lse2 : nullptr);
  if (cfg_.rotary_dim > 0) {
    ops::rope_backward(dq, 0, cfg_.rotary_dim, cfg_.rope_theta);
    ops::rope_backward(dk, 0, cfg_.rotary_dim, cfg_.rope_theta);
  }
  // dx = dq W_q + dk W_k + dv W_v: the second and third products accumulate onto the first
  ops::linear_backward(dq.reshape({B, T, Hq * Dh}), x, q_w_.value, &dx, &q_w_.grad, bias_grad(q_b_));
  ops::linear_backward(dk.reshape({B, T, Hkv * Dh}), x, k_w_.value, &dx, &k_w_.grad, bias_grad(k_b_), /*accumulate_dx=*/true);
  ops::linear_backward(dv.reshape({B, T, Hkv * Dh}), x, v_w_.value, &dx, &v_w_.grad, bias_grad(v_b_), /*accumulate_dx=*/true);
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
