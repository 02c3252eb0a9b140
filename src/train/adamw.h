// AdamW with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW computes it:
//   p <- p * (1 - lr * wd)            (only parameters marked for decay)
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// on whatever device the parameters live, through ops::adamw_update (one fused pass per tensor).
// In mixed precision the update applies to the F32 master and rewrites the BF16 copy the ops read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/param.h"
#include "ops/ops.h"
#include "train/optimizer.h"

namespace mambalm {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_all = false;  // also decay what Megatron exempts: norms, biases, A_log, D, dt_bias
};

class AdamW final : public Optimizer {
 public:
  AdamW(const ParamList& params, AdamWConfig cfg);
  // One update from the gradients in each ParamRef::grad (Optimizer::step).
  void step(double lr, double grad_scale = 1.0) override;
  int64_t steps_taken() const override { return t_; }

  // Optimizer state for checkpoints: (name + ".exp_avg" / ".exp_avg_sq") -> tensor, and the step.
  NamedTensors state_tensors() const override;
  void load_state(const NamedTensors& tensors, int64_t steps_taken) override;

 private:
  ParamList params_;
  AdamWConfig cfg_;
  std::vector<Tensor> m_, v_;  // per parameter, same shape, F32, on the parameter's device
  int64_t t_ = 0;
};

// Throws when a setting is out of range (betas in [0, 1), eps > 0, weight decay >= 0).
void check_adamw_config(const AdamWConfig& cfg);
// The scalars of update number t (1-based) with learning rate lr (ops::AdamWStep, computed once
// per step on the host), and the decay factor of a parameter. Shared by AdamW and ShardedAdamW.
ops::AdamWStep adamw_step_scalars(const AdamWConfig& cfg, int64_t t, double lr, double grad_scale);
float adamw_shrink(const AdamWConfig& cfg, const ParamRef& p, double lr);

// sqrt(sum of squared gradient entries over all parameters), accumulated in double, the same
// value every run. One read back from the device for the whole list.
double global_grad_norm(const ParamList& params);
// The factor that clips the global norm to max_norm (1 when it is within, or max_norm <= 0).
double clip_factor(double norm, double max_norm);
// Throws naming the first parameter whose gradient holds a NaN or infinity.
void check_finite_grads(const ParamList& params);

}  // namespace mambalm
