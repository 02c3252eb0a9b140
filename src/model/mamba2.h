// Mamba-2 mixer (SSD). With d_inner = H*P, the input projection yields, in this order,
//   z [Di] | x [Di] | B [G*N] | C [G*N] | dt [H]
// then x, B, C <- SiLU(causal depthwise conv(x, B, C));  dt <- clamp(softplus(dt + dt_bias));
//   A = -exp(A_log);  S_t = exp(dt_t A) S_{t-1} + dt_t x_t B_t^T;  y_t = S_t C_t + D x_t
//   y <- RMSNorm_grouped(y * SiLU(z)) * w   (groups of Di/norm_groups channels);  out = W_out y.
#pragma once
#include "config/model_config.h"
#include "model/layer.h"

namespace mambalm {

class Mamba2Mixer : public Mixer {
 public:
  Mamba2Mixer(const Mamba2Config& cfg, int64_t d_model, double norm_eps)
      : cfg_(cfg), d_(d_model), eps_(norm_eps) {}
  void forward(const Tensor& x, const LayerContext& ctx, Tensor& y) override;
  void backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) override;
  ParamList params(const std::string& prefix) override;
  // A zero conv window [B, C, K-1] and SSM state [B, H, P, N] on opts.device.
  static LayerState new_state(const Mamba2Config& cfg, int64_t batch, const StateOptions& opts);

 private:
  // What the training forward keeps for backward (shapes with Di = H*P, C = Di + 2*G*N): the
  // projection's outputs and the SSM output, 16.4K floats per token at the 8B widths. The rest
  // (conv output split into x | B | C, dt, A, the gated norm's output: 14K floats per token) is
  // recomputed in backward by cheap memory-bound ops (conv_and_dt, the gated norm), which keeps a 48-layer
  // model's activations at 4096 x 4 tokens within one GPU; with kKeepConv / kKeepGate the forward
  // keeps those too and backward skips their passes.
  struct Recomputed {
    Tensor xs;      // [B, T, H, P] SSM input (after conv + SiLU)
    Tensor Bm, Cm;  // [B, T, G, N]
    Tensor dt;      // [B, T, H] step sizes
    Tensor A;       // [H] = -exp(A_log)
    Tensor gated;   // [B, T, Di] out_proj input
  };
  struct Activations : MixerActivations {
    Tensor z;       // [B, T, Di] gate
    Tensor xbc;     // [B, T, C] conv input x | B | C
    Tensor dt_raw;  // [B, T, H] dt before softplus
    Tensor ys;      // [B, T, H, P] SSM output
    Recomputed kept;  // the parts kept (kKeepConv, kKeepGate); else empty tensors
  };
  // The conv, softplus and decay of the forward: xs, Bm, Cm, dt, A from xbc and dt_raw.
  void conv_and_dt(const Tensor& xbc, const Tensor& dt_raw, const LayerContext& ctx, LayerState* state,
                   Recomputed& r) const;

  Mamba2Config cfg_;
  int64_t d_;
  double eps_;
  Weight in_proj_w_, in_proj_b_;    // [2*Di + 2*G*N + H, D], [same]
  Weight conv_w_, conv_b_;          // [Di + 2*G*N, K], [Di + 2*G*N]
  Weight dt_bias_;                  // [H]
  Weight A_log_;                    // [H]
  Weight D_;                        // [H]
  Weight norm_w_;                   // [Di]
  Weight out_proj_w_, out_proj_b_;  // [D, Di], [D]
};

}  // namespace mambalm
