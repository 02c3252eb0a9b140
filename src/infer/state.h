// Per-sequence inference state: what a model must remember between calls.
// An M layer keeps a constant-size conv window and SSM state; a * layer keeps a KV cache that
// grows by one row per token. This difference is the study's generation-speed result.
#pragma once
#include <cstdint>
#include <vector>

#include "config/model_config.h"
#include "core/tensor.h"

namespace mambalm {

struct LayerState {
  Tensor conv;  // M layers: [B, C, K-1], the last K-1 conv inputs
  Tensor ssm;   // Mamba-2: [B, H, P, N]; Mamba-1: [B, Di, N]
  Tensor k, v;  // * layers: [B, capacity, Hkv, Dh]; rows [0, kv_len) are filled
  int64_t kv_len = 0;
};

class SequenceState {
 public:
  // Fresh (all-zero) state for `batch` sequences advancing in lockstep.
  SequenceState(const ModelConfig& cfg, int64_t batch);

  int64_t batch() const { return batch_; }
  int64_t position() const { return position_; }  // tokens consumed so far
  void advance(int64_t tokens) { position_ += tokens; }
  LayerState& layer(int64_t i) { return layers_[static_cast<size_t>(i)]; }

  // Bytes held now: SSM/conv state and KV cache separately.
  int64_t ssm_state_bytes() const;
  int64_t kv_cache_bytes() const;

 private:
  int64_t batch_;
  int64_t position_ = 0;
  std::vector<LayerState> layers_;
};

}  // namespace mambalm
