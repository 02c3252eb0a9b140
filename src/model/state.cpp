#include "model/state.h"

#include <algorithm>
#include <cstring>

#include "config/pattern.h"
#include "core/device.h"
#include "core/error.h"
#include "model/attention.h"
#include "model/mamba1.h"
#include "model/mamba2.h"
#include "ops/ops.h"

namespace mambalm {

SequenceState::SequenceState(const ModelConfig& cfg, int64_t batch, StateOptions opts) : batch_(batch), opts_(opts) {
  check(batch > 0, "state", "batch must be positive");
  check(opts.kv_capacity >= 0, "state", "KV capacity must not be negative");
  check(opts.kv_dtype == DType::F32 || opts.kv_dtype == DType::BF16, "state",
        "the KV cache is F32 or BF16 (" + dtype_name(opts.kv_dtype) + " requested)");
  positions_host_.assign(static_cast<size_t>(batch), 0);
  allocate_positions();
  layers_.resize(static_cast<size_t>(cfg.n_layers()));
  for (int64_t i = 0; i < cfg.n_layers(); ++i) {
    // Each mixer kind allocates its own state (none for MLP blocks).
    LayerState& s = layers_[static_cast<size_t>(i)];
    const char kind = cfg.pattern[static_cast<size_t>(i)];
    is_attention_.push_back(kind == kAttentionSymbol);
    if (kind == kAttentionSymbol) {
      kv_heads_ = cfg.attention.n_kv_heads;
      head_dim_ = cfg.attention.head_dim;
      kv_rows_ = opts.kv_capacity;
      s = Attention::new_state(cfg.attention, batch, opts);
    } else if (kind == kMambaSymbol) {
      s = cfg.mamba_version == 2 ? Mamba2Mixer::new_state(cfg.mamba2, batch, opts) : Mamba1Mixer::new_state(cfg.mamba1, batch, opts);
    }
  }
  sync_positions(0);
}

int64_t SequenceState::position() const {
  for (int64_t p : positions_host_)
    MAMBALM_CHECK(p == positions_host_[0], "state",
                  "the sequences of this batch are at different positions; a multi-token step needs them in lockstep",
                  "prefill each sequence through its slot(b), then decode the batch one token at a time");
  return positions_host_[0];
}

int64_t SequenceState::max_position() const { return *std::max_element(positions_host_.begin(), positions_host_.end()); }

void SequenceState::advance(int64_t tokens, int64_t b) {
  if (b >= 0) positions_host_[static_cast<size_t>(b)] += tokens;
  else
    for (int64_t& p : positions_host_) p += tokens;
}

void SequenceState::allocate_positions() {
  const int64_t B = batch_;
  positions_pinned_ = opts_.device == Device::CUDA ? empty_pinned({2, B}, DType::I32) : Tensor::empty({2, B}, DType::I32);
  positions_both_ = opts_.device == Device::CPU ? positions_pinned_ : zeros_on(opts_.device, {2, B}, DType::I32);
  positions_dev_ = positions_both_.slice0(0, 1).reshape({B});
  lengths_dev_ = positions_both_.slice0(1, 2).reshape({B});
}

void SequenceState::sync_positions(int64_t T) {
  stage_positions(T);
  if (opts_.device != Device::CUDA) return;
  // Captured: the graph's copy reads the pinned buffer at each replay (the decoder stages it
  // between replays). Otherwise a synchronous copy, so that the next call can overwrite the
  // pinned buffer without racing a copy still queued.
  if (cuda_capturing()) copy_async(positions_pinned_, positions_both_);
  else copy_tensor(positions_pinned_, positions_both_);
}

void SequenceState::stage_positions(int64_t T) {
  auto* p = positions_pinned_.data<int32_t>();
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t pos = positions_host_[static_cast<size_t>(b)];
    MAMBALM_CHECK(pos + T < (int64_t(1) << 31), "state", "position beyond 2^31 tokens");
    p[b] = static_cast<int32_t>(pos);
    p[batch_ + b] = static_cast<int32_t>(pos + T);
  }
}

SequenceState SequenceState::slot(int64_t b) {
  check(b >= 0 && b < batch_, "state", "slot " + std::to_string(b) + " of a batch of " + std::to_string(batch_));
  SequenceState s;
  s.batch_ = 1;
  s.opts_ = opts_;
  s.kv_rows_ = kv_rows_;
  s.kv_heads_ = kv_heads_;
  s.head_dim_ = head_dim_;
  s.is_attention_ = is_attention_;
  s.is_slot_ = true;
  s.positions_host_ = {positions_host_[static_cast<size_t>(b)]};
  s.allocate_positions();  // the slot's positions are its own (the parent learns them through advance(T, b))
  s.layers_.resize(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerState& from = layers_[i];
    LayerState& to = s.layers_[i];
    if (from.conv.defined()) to.conv = from.conv.slice0(b, b + 1);
    if (from.ssm.defined()) to.ssm = from.ssm.slice0(b, b + 1);
    if (from.k.defined()) to.k = from.k.slice0(b, b + 1);
    if (from.v.defined()) to.v = from.v.slice0(b, b + 1);
  }
  s.sync_positions(0);
  return s;
}

void SequenceState::reserve_kv(int64_t tokens) {
  if (tokens <= kv_rows_ || kv_heads_ == 0) return;
  check(opts_.kv_capacity == 0, "state",
        "a sequence needs " + std::to_string(tokens) + " KV rows but the planned capacity is " + std::to_string(kv_rows_),
        "plan the state for a longer context");
  check(!is_slot_, "state", "a slot view cannot grow its KV cache", "plan a KV capacity for batched prefill");
  int64_t grown = std::max<int64_t>(tokens, std::max<int64_t>(64, kv_rows_ * 2));  // amortised O(1) per token
  // A known limit caps the doubling, and once half of it is needed the cache goes straight to
  // it: the next doubling would pass it anyway, and each growth holds old and new caches at once
  // (a 512-token prompt of a 640-token run: 640 rows at once, not 512, then 1,024 beside 512).
  const int64_t limit = opts_.kv_limit;
  if (limit > 0 && tokens <= limit) grown = 2 * tokens >= limit ? limit : std::min(grown, limit);
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!is_attention_[i]) continue;
    LayerState& s = layers_[i];
    Tensor nk = zeros_on(opts_.device, {batch_, grown, kv_heads_, head_dim_}, opts_.kv_dtype);  // [B, grown, Hkv, Dh]
    Tensor nv = zeros_on(opts_.device, {batch_, grown, kv_heads_, head_dim_}, opts_.kv_dtype);
    for (int64_t b = 0; b < batch_ && kv_rows_ > 0; ++b) {
      Tensor nk_rows = nk.slice0(b, b + 1).reshape({grown, kv_heads_, head_dim_});
      Tensor nv_rows = nv.slice0(b, b + 1).reshape({grown, kv_heads_, head_dim_});
      ops::copy_rows(s.k.slice0(b, b + 1).reshape({kv_rows_, kv_heads_, head_dim_}), kv_rows_, nk_rows);
      ops::copy_rows(s.v.slice0(b, b + 1).reshape({kv_rows_, kv_heads_, head_dim_}), kv_rows_, nv_rows);
    }
    s.k = nk;
    s.v = nv;
  }
  kv_rows_ = grown;
}

int64_t SequenceState::ssm_state_bytes() const {
  int64_t b = 0;
  for (const LayerState& s : layers_) {
    if (s.conv.defined()) b += static_cast<int64_t>(s.conv.nbytes());
    if (s.ssm.defined()) b += static_cast<int64_t>(s.ssm.nbytes());
  }
  return b;
}

int64_t SequenceState::kv_cache_bytes() const {
  int64_t tokens = 0;
  for (int64_t p : positions_host_) tokens += p;
  int64_t layers = 0;
  for (bool a : is_attention_) layers += a;
  return 2 * layers * tokens * kv_heads_ * head_dim_ * static_cast<int64_t>(dtype_size(opts_.kv_dtype));
}

int64_t SequenceState::kv_allocated_bytes() const {
  int64_t b = 0;
  for (const LayerState& s : layers_)
    if (s.k.defined()) b += static_cast<int64_t>(s.k.nbytes() + s.v.nbytes());
  return b;
}

}  // namespace mambalm
