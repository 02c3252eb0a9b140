// Mamba (v1) mixer, the selective SSM. With d_inner Di, rank R = dt_rank, state N:
//   x | z = W_in u;  x <- SiLU(causal depthwise conv(x));  dt_low | B | C = W_x x;
//   dt = softplus(W_dt dt_low + b_dt);  A = -exp(A_log) [Di, N];
//   h_t = exp(dt_t A) h_{t-1} + (dt_t x_t) B_t^T;  y_t = h_t C_t + D x_t;  y *= SiLU(z);  out = W_out y.
#pragma once
#include <mutex>

#include "config/model_config.h"
#include "model/layer.h"

namespace mambalm {

class Mamba1Mixer : public Mixer {
 public:
  Mamba1Mixer(const Mamba1Config& cfg, int64_t d_model) : cfg_(cfg), d_(d_model) {}
  void forward(const Tensor& x, const LayerContext& ctx, Tensor& y) override;
  void backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) override;
  ParamList params(const std::string& prefix) override;
  // A zero conv window [B, Di, K-1] and SSM state [B, Di, N] on opts.device.
  static LayerState new_state(const Mamba1Config& cfg, int64_t batch, const StateOptions& opts);

 private:
  // What the training forward keeps for backward.
  struct Activations : MixerActivations {
    Tensor xin;     // [B, T, Di] conv input
    Tensor z;       // [B, T, Di] gate
    Tensor xc;      // [B, T, Di] SiLU(conv(xin)), the scan input
    Tensor dt_low;  // [B, T, R]
    Tensor Bm, Cm;  // [B, T, N]
    Tensor dt;      // [B, T, Di] softplus(W_dt dt_low + b_dt)
    Tensor A;       // [Di, N] = -exp(A_log)
    Tensor chunk_states;  // [B, ceil(T / 8), Di, N] the scan's state every 8 steps (its backward's checkpoints)
    Tensor ys;      // [B, T, Di] gated scan output
  };

  // A = -exp(A_log) [Di, N] for a forward that keeps nothing for a backward (inference): Di * N
  // exps per call were ~7% of a CPU decode step of mamba-130m. Reused while A_log is the same
  // bytes at the same write generation (Tensor::version): a new tensor (load, init, to_device)
  // or an in-place write that marks it (AdamW and ShardedAdamW steps, init, fill, copy_tensor,
  // mark_written after a direct write) makes it anew. Comparing the values in full on every call
  // instead cost 1-2% of a decode step (perf). CPU only.
  Tensor inference_A();
  // The selective path of x [B, T, Di] (before the conv) with gate z [B, T, Di] into ys: conv and
  // SiLU, x_proj, dt, the scan; the conv and the scan continue from `state` and update it when
  // given. `keep` (training) receives the intermediates its backward reads.
  void selective_path(const Tensor& x, const Tensor& z, const Tensor& A, const LayerContext& ctx, LayerState* state,
                      Tensor& ys, Activations* keep);
  // Tokens per slice of a CPU prefill's selective path (see forward).
  static constexpr int64_t kInferenceSlice = 128;

  Mamba1Config cfg_;
  int64_t d_;
  std::mutex a_cache_mutex_;
  Tensor a_cache_;                       // [Di, N] = -exp(A_log) as A_log was when it was made
  const void* a_cache_data_ = nullptr;   // A_log's raw() then
  uint64_t a_cache_version_ = 0;         // and its version() (never 0 for a defined tensor)
  Weight in_proj_w_, in_proj_b_;    // [2*Di, D], [2*Di]
  Weight conv_w_, conv_b_;          // [Di, K], [Di]
  Weight x_proj_w_;                 // [R + 2N, Di]
  Weight dt_proj_w_, dt_proj_b_;    // [Di, R], [Di]
  Weight A_log_;                    // [Di, N]
  Weight D_;                        // [Di]
  Weight out_proj_w_, out_proj_b_;  // [D, Di], [D]
};

}  // namespace mambalm
