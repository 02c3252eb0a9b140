// A language model assembled from its config: token embedding, one residual block per pattern
// symbol (pre-norm -> mixer -> residual add), final norm and LM head:
//   h_0 = E[ids];  h_{l+1} = h_l + Mixer_l(Norm_l(h_l));  logits = W_head Norm_f(h_L)
// The Transformer is the pattern "*-*-...": each HF decoder layer is an attention block and an
// MLP block, which is how Megatron-LM's hybrid models count layers too.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "infer/state.h"
#include "model/layer.h"
#include "model/norm.h"
#include "ops/ops_backward.h"

namespace mambalm {

class Model {
 public:
  explicit Model(ModelConfig cfg);  // builds the layers; parameters are not allocated yet
  Model(Model&&) = default;

  const ModelConfig& config() const { return cfg_; }
  // Every parameter with its HF name, in HF order (embedding, layers, final norm, head).
  // A tied head is not listed (it is the embedding).
  ParamList& params() { return params_; }
  int64_t parameter_count() const;

  // Allocates every parameter and draws it as DESIGN.md describes.
  void init_random(uint64_t seed);

  // Loads <dir>/config.json and its safetensors weights (F32, BF16, F16 widened to F32).
  static Model load(const std::string& model_dir);
  // Writes config.json and model.safetensors (dtype F32 or BF16) in HF layout.
  void save(const std::string& model_dir, DType dtype = DType::F32) const;

  // ids: I32 [B, T] -> logits [B, T, V] (or [B, 1, V] with last_only). With `state`, the
  // tokens continue the sequences held in it (prefill or decode) and the state advances.
  Tensor forward(const Tensor& ids, SequenceState* state = nullptr, bool last_only = false);

  // ---- training ----
  // Gradient buffers for every parameter, zero-filled (once; zero_grads() per optimizer step).
  void allocate_grads();
  void zero_grads();
  // Forward, mean cross-entropy over targets != -1, and backward for one micro-batch:
  // ids, targets I32 [B, T]; seq_idx I32 [B, T] document ids of packed sequences (or null).
  // Gradients of grad_scale * mean loss accumulate into the parameters' grads. With
  // `recompute`, layers keep only their inputs and recompute the rest during backward.
  ops::CrossEntropyResult train_step(const Tensor& ids, const Tensor& targets, const Tensor* seq_idx, float grad_scale = 1.0f,
                                     bool recompute = false);

 private:
  struct Block {
    char kind;  // 'M', '*' or '-'
    Norm norm;
    std::unique_ptr<Mixer> mixer;
  };

  ModelConfig cfg_;
  // Heap-held so that params_ (pointers to these) stays valid when the Model is moved.
  std::unique_ptr<Weight> embedding_ = std::make_unique<Weight>();  // [V, D]
  std::vector<Block> blocks_;
  std::unique_ptr<Norm> final_norm_;
  std::unique_ptr<Weight> head_ = std::make_unique<Weight>();  // [V, D] (untied)
  ParamList params_;
};

}  // namespace mambalm
