// What the trainer and the checkpoints need of an optimizer, whether it keeps all of its state
// (AdamW, train/adamw.h) or one rank's shard of it (ShardedAdamW, train/sharded_adamw.h).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace mambalm {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate `lr` from the gradients, scaled by grad_scale (global-norm
  // clipping folds in here instead of a pass over the gradients).
  virtual void step(double lr, double grad_scale = 1.0) = 0;
  virtual int64_t steps_taken() const = 0;
  // The state of every parameter, whole and on the host: (name + ".exp_avg" / ".exp_avg_sq").
  // The same tensors whatever the number of ranks, so a checkpoint resumes on any number.
  // Collective for a sharded optimizer: every rank calls it.
  virtual NamedTensors state_tensors() const = 0;
  virtual void load_state(const NamedTensors& tensors, int64_t steps_taken) = 0;
};

}  // namespace mambalm
