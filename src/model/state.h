// Per-sequence inference state: what a model must remember between calls.
// An M layer keeps a constant-size conv window and SSM state; a * layer keeps a KV cache that
// grows by one row per token. This difference is the study's generation-speed result.
//
// A state holds `batch` sequences, each at its own position (batched decode of prompts of
// different lengths). All tensors live on one device. With a KV capacity given up front the
// caches are allocated once (planned memory, required on CUDA for graph replay); without one
// they grow geometrically on demand. Each mixer kind allocates its own part (the static
// new_state of Mamba2Mixer, Mamba1Mixer and Attention; MLP blocks keep none), as mamba_ssm's
// allocate_inference_cache does.
#pragma once
#include <cstdint>
#include <vector>

#include "config/model_config.h"
#include "core/tensor.h"

namespace mambalm {

struct LayerState {
  Tensor conv;  // M layers: [B, C, K-1], the last K-1 conv inputs
  Tensor ssm;   // Mamba-2: [B, H, P, N]; Mamba-1: [B, Di, N] (always F32)
  Tensor k, v;  // * layers: [B, capacity, Hkv, Dh] (F32 or BF16); row p = position p
};

struct StateOptions {
  Device device = Device::CPU;
  int64_t kv_capacity = 0;     // tokens per sequence; 0 = grow on demand
  DType kv_dtype = DType::F32;  // BF16 halves the cache (keys and values rounded to nearest even)
  // With on-demand growth: the most tokens a sequence will hold, when the caller knows it
  // (prompt + tokens to generate); 0 = unknown. Doubling stops there; past it, it resumes.
  int64_t kv_limit = 0;
};

class SequenceState {
 public:
  // Fresh (all-zero) state for `batch` sequences, all at position 0.
  SequenceState(const ModelConfig& cfg, int64_t batch, StateOptions opts = {});

  int64_t batch() const { return batch_; }
  Device device() const { return opts_.device; }
  const StateOptions& options() const { return opts_; }
  // Tokens consumed so far by sequence b.
  int64_t position(int64_t b) const { return positions_host_[static_cast<size_t>(b)]; }
  // The common position when every sequence is at the same one (throws otherwise).
  int64_t position() const;
  int64_t max_position() const;
  // Sequence b advances by `tokens` (all sequences when b < 0).
  void advance(int64_t tokens, int64_t b = -1);
  LayerState& layer(int64_t i) { return layers_[static_cast<size_t>(i)]; }

  // I32 [B] on the state's device: each sequence's position before the current step, and that
  // plus `T` (the key count its newest token sees). Refreshed by sync_positions(T); inside a
  // CUDA-graph capture it records a copy from pinned host memory, so a replayed step reads the
  // positions staged (stage_positions) just before the replay.
  const Tensor& positions() const { return positions_dev_; }
  const Tensor& lengths() const { return lengths_dev_; }
  void sync_positions(int64_t T);
  // Only the host half of sync_positions: writes the pinned buffer that a captured copy reads.
  void stage_positions(int64_t T);

  // A view of sequences [b, b+1): same memory, so prefilling the slot fills sequence b here.
  SequenceState slot(int64_t b);

  // The KV caches hold at least `tokens` rows per sequence afterwards (grows only without a
  // planned capacity; beyond a planned capacity it throws).
  void reserve_kv(int64_t tokens);

  // Bytes held now: SSM/conv state and the filled part of the KV cache, and the KV memory
  // allocated (the capacity).
  int64_t ssm_state_bytes() const;
  int64_t kv_cache_bytes() const;
  int64_t kv_allocated_bytes() const;

 private:
  SequenceState() = default;
  void allocate_positions();  // the pinned and device position buffers for batch_ sequences

  int64_t batch_ = 0;
  StateOptions opts_;
  int64_t kv_rows_ = 0;  // allocated rows per sequence
  int64_t kv_heads_ = 0, head_dim_ = 0;
  std::vector<bool> is_attention_;  // per layer
  bool is_slot_ = false;
  std::vector<int64_t> positions_host_;
  Tensor positions_pinned_;  // I32 [2, B]: positions, lengths (host; pinned on CUDA)
  Tensor positions_dev_;     // I32 [B]
  Tensor lengths_dev_;       // I32 [B]
  Tensor positions_both_;    // I32 [2, B] on the device (positions_dev_ and lengths_dev_ view it)
  std::vector<LayerState> layers_;
};

}  // namespace mambalm
