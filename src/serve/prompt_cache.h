// Prompt-state cache: snapshots of a sequence's inference state at prefix boundaries, so a new
// prompt that starts with a cached prefix restores the snapshot and prefills only the rest.
// An SSM cannot rewind its state to an earlier position, so a snapshot is taken at each
// boundary as the prompt passes it (every `interval` tokens, and at the end of every prompt:
// the end of a system prompt or of a chat turn is where the next request of a conversation
// branches). A snapshot holds, per layer, the conv window and SSM state (M layers) and the KV
// rows of the prefix (* layers), plus the logits after its last token, so a prompt that is
// entirely cached needs no forward call at all.
//
// Exactness: the scheduler prefills in chunks aligned to multiples of the chunk size, and
// `interval` is a multiple of it, so a restore at an interval boundary continues with exactly
// the forward calls a full prefill makes (bit-identical logits). A restore at an end-of-prompt
// boundary splits one chunk in two: the same math, rounded differently (docs/serving.md).
//
// Bounded by a byte budget, least recently used first out. Only the scheduler thread uses it.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "model/state.h"
#include "serve/metrics.h"

namespace mambalm::serve {

struct PromptSnapshot {
  std::vector<int32_t> tokens;  // the prefix
  std::vector<LayerState> layers;  // conv [1, C, K-1], ssm [1, ...], k/v [1, len, Hkv, Dh]
  std::vector<float> logits;       // [V] after the prefix's last token
  int64_t bytes = 0;
};

class PromptCache {
 public:
  PromptCache(int64_t budget_bytes, int64_t n_layers, Metrics& metrics);

  bool enabled() const { return budget_ > 0; }
  // The longest cached prefix of `prompt` (at most the whole prompt), marked as used; null when none.
  const PromptSnapshot* lookup(const std::vector<int32_t>& prompt);
  // Snapshots the batch-1 `state` after `prefix` (state.position(0) == prefix.size()); a no-op
  // when that prefix is cached already or the snapshot alone exceeds the budget.
  void store(const std::vector<int32_t>& prefix, SequenceState& state, const std::vector<float>& logits);
  // Writes the snapshot into a fresh batch-1 state (at position 0) and advances it to the end
  // of the prefix.
  void restore(const PromptSnapshot& snap, SequenceState& state) const;

  int64_t bytes() const { return bytes_; }
  int64_t entries() const { return static_cast<int64_t>(lru_.size()); }

 private:
  void publish();

  int64_t budget_;
  int64_t n_layers_;
  Metrics& metrics_;
  int64_t bytes_ = 0;
  std::list<std::unique_ptr<PromptSnapshot>> lru_;  // most recently used first
};

}  // namespace mambalm::serve
