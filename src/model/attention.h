// Causal self-attention with grouped KV heads and optional (partial) rotary embedding:
//   q = W_q x, k = W_k x, v = W_v x;  q, k <- RoPE(q, k) on the first rotary_dim channels;
//   o_h = softmax(q_h k_g^T / sqrt(Dh) + causal mask) v_g  (g = h / (Hq/Hkv));  y = W_o [o_1..o_Hq]
#pragma once
#include "config/model_config.h"
#include "model/layer.h"

namespace mambalm {

class Attention : public Mixer {
 public:
  Attention(const AttentionConfig& cfg, int64_t d_model) : cfg_(cfg), d_(d_model) {}
  void forward(const Tensor& x, const LayerContext& ctx, Tensor& y) override;
  void backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) override;
  ParamList params(const std::string& prefix) override;
  // KV caches [B, capacity, Hkv, Dh] of opts.kv_capacity rows (none yet when it is 0: they
  // grow on demand), zero-filled, in opts.kv_dtype on opts.device.
  static LayerState new_state(const AttentionConfig& cfg, int64_t batch, const StateOptions& opts);

 private:
  // What the training forward keeps for backward.
  struct Activations : MixerActivations {
    Tensor q;     // [B, T, Hq, Dh] (RoPE applied)
    Tensor k, v;  // [B, T, Hkv, Dh] (RoPE applied to k), in LayerContext::compute_dtype
    Tensor o;     // [B, T, Hq, Dh] per-head outputs
    Tensor lse2;  // [B, Hq, T] log2 of each row's softmax normaliser (ops::attention)
  };

  const Tensor* bias(const Weight& b) const { return cfg_.bias ? &b.value : nullptr; }
  Tensor* bias_grad(Weight& b) const { return cfg_.bias ? &b.grad : nullptr; }
  float scale() const;

  AttentionConfig cfg_;
  int64_t d_;
  Weight q_w_, q_b_;  // [Hq*Dh, D], [Hq*Dh]
  Weight k_w_, k_b_;  // [Hkv*Dh, D], [Hkv*Dh]
  Weight v_w_, v_b_;  // [Hkv*Dh, D], [Hkv*Dh]
  Weight o_w_, o_b_;  // [D, Hq*Dh], [D]
};

}  // namespace mambalm
