// Batched decode: B sequences advance one token per step, each at its own position (prompts of
// different lengths are prefilled through SequenceState::slot first). A step is the whole model
// on [B, 1] ids, then the greedy choice written back into the ids on the device, so steps can
// chain without the host. On CUDA the step is captured once into a CUDA graph and replayed:
// at batch 1 a step is ~10 kernels per layer, and launching them one by one would cost more
// than the kernels themselves.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/state.h"
#include "model/model.h"

namespace mambalm {

class CudaGraph;

struct DecoderOptions {
  bool use_graph = true;   // CUDA only
  int64_t vocab_limit = 0;  // greedy choice among ids < this (0 = the whole vocabulary)
};

class BatchDecoder {
 public:
  BatchDecoder(Model& model, SequenceState& state, DecoderOptions opts = {});
  ~BatchDecoder();

  // The next input token of every sequence (B ids).
  void set_tokens(const std::vector<int32_t>& ids);
  // One step: feeds the current tokens. Afterwards logits() holds their next-token logits and
  // the current tokens are the greedy choices. Queued asynchronously on CUDA: tokens() or
  // logits_host() wait for it.
  void step();
  // [B, 1, V] on the model's device; valid until the next step or forward call.
  const Tensor& logits() const { return logits_; }
  std::vector<float> logits_host(int64_t b) const;  // sequence b's row, copied to the host
  std::vector<int32_t> tokens() const;
  bool graph_captured() const { return captured_; }

 private:
  void run_step();

  Model& model_;
  SequenceState& state_;
  DecoderOptions opts_;
  Tensor ids_;       // I32 [B, 1] on the model's device: this step's input, then its argmax
  Tensor ids_host_;  // I32 [B, 1] (pinned on CUDA) for set_tokens
  Tensor logits_;    // [B, 1, V]
  int64_t warm_steps_ = 0;
  bool captured_ = false;
  uint64_t captured_generation_ = 0;
  std::unique_ptr<CudaGraph> graph_;
};

}  // namespace mambalm
