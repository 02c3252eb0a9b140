// The interface every mixer (the part of a residual block between pre-norm and residual add)
// implements: a forward over [B, T, D] that optionally reads and updates per-sequence state.
#pragma once
#include <string>

#include "core/tensor.h"
#include "infer/state.h"
#include "model/param.h"

namespace mambalm {

class Mixer {
 public:
  virtual ~Mixer() = default;
  // x [B, T, D] -> y [B, T, D]. With `state`, continue from it and update it (prefill/decode);
  // without, the sequence starts fresh at position 0. `pos0` is the position of x's first token.
  virtual void forward(const Tensor& x, LayerState* state, int64_t pos0, Tensor& y) = 0;
  // The mixer's parameters, named `prefix` + local HF name.
  virtual ParamList params(const std::string& prefix) = 0;
};

}  // namespace mambalm
