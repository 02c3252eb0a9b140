#include "serve/prompt_cache.h"

#include <algorithm>

#include "core/device.h"
#include "ops/ops.h"

namespace mambalm::serve {

namespace {

bool is_prefix(const std::vector<int32_t>& prefix, const std::vector<int32_t>& of) {
  return prefix.size() <= of.size() && std::equal(prefix.begin(), prefix.end(), of.begin());
}

// The first `rows` rows of a [1, capacity, Hkv, Dh] cache, as a new [1, rows, Hkv, Dh] tensor.
Tensor kv_prefix(const Tensor& kv, int64_t rows) {
  const int64_t cap = kv.dim(1), h = kv.dim(2), dh = kv.dim(3);
  Tensor out = zeros_on(kv.device(), {rows, h, dh}, kv.dtype());  // [rows, Hkv, Dh]
  ops::copy_rows(kv.reshape({cap, h, dh}), rows, out);
  return out.reshape({1, rows, h, dh});
}

}  // namespace

PromptCache::PromptCache(int64_t budget_bytes, int64_t n_layers, Metrics& metrics)
    : budget_(budget_bytes), n_layers_(n_layers), metrics_(metrics) {
  publish();
}

void PromptCache::publish() {
  metrics_.prompt_cache_bytes = bytes_;
  metrics_.prompt_cache_entries = entries();
}

const PromptSnapshot* PromptCache::lookup(const std::vector<int32_t>& prompt) {
  auto best = lru_.end();
  for (auto it = lru_.begin(); it != lru_.end(); ++it)
    if (is_prefix((*it)->tokens, prompt) && (best == lru_.end() || (*it)->tokens.size() > (*best)->tokens.size())) best = it;
  if (best == lru_.end()) {
    ++metrics_.prompt_cache_misses;
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, best);  // most recently used
  ++metrics_.prompt_cache_hits;
  metrics_.prompt_cache_tokens_reused += static_cast<int64_t>(lru_.front()->tokens.size());
  return lru_.front().get();
}

void PromptCache::store(const std::vector<int32_t>& prefix, SequenceState& state, const std::vector<float>& logits) {
  if (!enabled() || prefix.empty()) return;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    if ((*it)->tokens == prefix) {
      lru_.splice(lru_.begin(), lru_, it);
      return;
    }
  }
  auto snap = std::make_unique<PromptSnapshot>();
  snap->tokens = prefix;
  snap->logits = logits;
  const int64_t rows = static_cast<int64_t>(prefix.size());
  snap->bytes = static_cast<int64_t>((prefix.size() + logits.size()) * 4);
  for (int64_t i = 0; i < n_layers_; ++i) {
    const LayerState& from = state.layer(i);
    LayerState to;
    if (from.conv.defined()) to.conv = to_device(from.conv, from.conv.device());  // a copy, never a view
    if (from.ssm.defined()) to.ssm = to_device(from.ssm, from.ssm.device());
    if (from.k.defined()) {
      to.k = kv_prefix(from.k, rows);
      to.v = kv_prefix(from.v, rows);
    }
    for (const Tensor* t : {&to.conv, &to.ssm, &to.k, &to.v})
      if (t->defined()) snap->bytes += static_cast<int64_t>(t->nbytes());
    snap->layers.push_back(std::move(to));
  }
  if (snap->bytes > budget_) return;
  bytes_ += snap->bytes;
  lru_.push_front(std::move(snap));
  while (bytes_ > budget_) {
    bytes_ -= lru_.back()->bytes;
    lru_.pop_back();
    ++metrics_.prompt_cache_evictions;
  }
  publish();
}

void PromptCache::restore(const PromptSnapshot& snap, SequenceState& state) const {
  const int64_t rows = static_cast<int64_t>(snap.tokens.size());
  state.reserve_kv(rows);
  for (int64_t i = 0; i < n_layers_; ++i) {
    const LayerState& from = snap.layers[static_cast<size_t>(i)];
    LayerState& to = state.layer(i);
    if (from.conv.defined()) copy_tensor(from.conv, to.conv);
    if (from.ssm.defined()) copy_tensor(from.ssm, to.ssm);
    if (from.k.defined()) {
      const int64_t cap = to.k.dim(1), h = to.k.dim(2), dh = to.k.dim(3);
      Tensor k = to.k.reshape({cap, h, dh}), v = to.v.reshape({cap, h, dh});  // [capacity, Hkv, Dh] views
      ops::copy_rows(from.k.reshape({rows, h, dh}), rows, k);
      ops::copy_rows(from.v.reshape({rows, h, dh}), rows, v);
    }
  }
  state.advance(rows - state.position(0), 0);
}

}  // namespace mambalm::serve
