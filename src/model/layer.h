// The interface every mixer (the part of a residual block between pre-norm and residual add)
// implements. One forward serves inference (with per-sequence state) and training (with a
// cache of what backward needs); backward is written by hand next to it, per layer.
#pragma once
#include <map>
#include <string>

#include "core/error.h"
#include "core/tensor.h"
#include "core/workspace.h"
#include "infer/state.h"
#include "model/param.h"

namespace mambalm {

// Named activations a layer keeps between its training forward and its backward.
struct LayerCache {
  std::map<std::string, Tensor> saved;
  bool has(const std::string& name) const { return saved.count(name) > 0; }
  const Tensor& at(const std::string& name) const {
    auto it = saved.find(name);
    if (it == saved.end()) fail("backward", "activation '" + name + "' was not saved by the forward");
    return it->second;
  }
};

// What a forward call is for; the layer reads only what applies to it.
struct ForwardContext {
  LayerState* state = nullptr;      // inference: continue from and update this sequence state
  int64_t pos0 = 0;                 // position of x's first token when the batch is in lockstep
  const Tensor* seq_idx = nullptr;  // training: I32 [B, T] document ids of packed sequences
  LayerCache* cache = nullptr;      // training: keep what backward needs here
  // Inference with a state: I32 [B] on the state's device, each sequence's position before
  // this call and that plus T (see SequenceState::positions/lengths).
  const Tensor* positions = nullptr;
  const Tensor* lengths = nullptr;
  Workspace* workspace = nullptr;  // activations come from here when set (planned memory)

  // An activation tensor: from the workspace, else a new CPU tensor.
  Tensor empty(const Shape& shape, DType dtype = DType::F32) const {
    return workspace ? workspace->empty(shape, dtype) : Tensor::empty(shape, dtype);
  }
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  // x [B, T, D] -> y [B, T, D].
  virtual void forward(const Tensor& x, const ForwardContext& ctx, Tensor& y) = 0;
  // dy [B, T, D] -> dx [B, T, D] (assigned); parameter gradients accumulate into the grads
  // named by params(). `cache` holds at least "x"; anything else missing is recomputed.
  virtual void backward(const Tensor& dy, const Tensor* seq_idx, LayerCache& cache, Tensor& dx) = 0;
  // The mixer's parameters and their gradient buffers, named `prefix` + local HF name.
  virtual ParamList params(const std::string& prefix) = 0;
};

}  // namespace mambalm
