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
  void forward(const Tensor& x, LayerState* state, int64_t pos0, Tensor& y) override;
  ParamList params(const std::string& prefix) override;

 private:
  AttentionConfig cfg_;
  int64_t d_;
  Tensor q_w_, q_b_;  // [Hq*Dh, D], [Hq*Dh]
  Tensor k_w_, k_b_;  // [Hkv*Dh, D], [Hkv*Dh]
  Tensor v_w_, v_b_;  // [Hkv*Dh, D], [Hkv*Dh]
  Tensor o_w_, o_b_;  // [D, Hq*Dh], [D]
};

}  // namespace mambalm
