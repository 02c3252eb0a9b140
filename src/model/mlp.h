// MLP mixer: y = W_down act(W_up x) with act = squared ReLU or GeLU (non-gated, the study's),
// or y = W_down (silu(W_gate x) * W_up x) (SwiGLU, Llama).
#pragma once
#include "config/model_config.h"
#include "model/layer.h"

namespace mambalm {

class Mlp : public Mixer {
 public:
  Mlp(const MlpConfig& cfg, int64_t d_model) : cfg_(cfg), d_(d_model) {}
  void forward(const Tensor& x, const LayerContext& ctx, Tensor& y) override;
  void backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) override;
  ParamList params(const std::string& prefix) override;

 private:
  // What the training forward keeps: the projections. act(up), the input of W_down, is
  // recomputed in backward (one elementwise pass; keeping it would cost F values per token).
  // F32, or BF16 in mixed precision (LayerContext::activation_dtype).
  struct Activations : MixerActivations {
    Tensor up;    // [B, T, F] W_up x
    Tensor gate;  // [B, T, F] W_gate x (SwiGLU only)
    Tensor h;     // [B, T, F] act(up), kept with kKeepMlp (else recomputed)
  };
  // h = act(up) (SwiGLU: silu(gate) * up).
  void activate(const Tensor& up, const Tensor& gate, Tensor& h) const;

  const Tensor* bias(const Weight& b) const { return cfg_.bias ? &b.value : nullptr; }
  Tensor* bias_grad(Weight& b) const { return cfg_.bias ? &b.grad : nullptr; }

  MlpConfig cfg_;
  int64_t d_;
  Weight up_w_, up_b_;      // [F, D], [F]
  Weight gate_w_, gate_b_;  // [F, D], [F] (SwiGLU only)
  Weight down_w_, down_b_;  // [D, F], [D]
};

}  // namespace mambalm
