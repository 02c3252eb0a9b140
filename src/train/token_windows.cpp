#include "train/token_windows.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "io/indexed_dataset.h"

namespace mambalm {

TokenWindows::TokenWindows(const std::string& prefix, int64_t seq_len, uint64_t seed, bool shuffle)
    : seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  check(seq_len > 0, "--seq-len", "must be positive");
  io::IndexedDataset ds(prefix);
  tokens_.reserve(static_cast<size_t>(ds.total_tokens()));
  for (int64_t d = 0; d < ds.document_count(); ++d) {
    std::vector<int32_t> doc = ds.document_tokens(d);
    if (doc.empty()) continue;
    doc_starts_.push_back(static_cast<int64_t>(tokens_.size()));
    tokens_.insert(tokens_.end(), doc.begin(), doc.end());
  }
  for (int32_t t : tokens_) max_token_ = std::max<int64_t>(max_token_, t);
  // Non-overlapping windows with stride seq_len; consecutive windows share one token (the
  // last target of one is the first input of the next), as in Megatron's GPT dataset.
  n_windows_ = tokens_.size() > 1 ? (static_cast<int64_t>(tokens_.size()) - 1) / seq_len : 0;
  check(n_windows_ > 0, prefix, "holds " + std::to_string(tokens_.size()) + " tokens, fewer than one window of " +
                                    std::to_string(seq_len + 1), "use a shorter --seq-len or more data");
}

int64_t TokenWindows::window_of(int64_t k) const {
  const int64_t epoch = k / n_windows_, i = k % n_windows_;
  if (!shuffle_) return i;
  if (epoch != cached_epoch_) {
    order_.resize(static_cast<size_t>(n_windows_));
    std::iota(order_.begin(), order_.end(), 0);
    Rng rng(seed_ * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) + 1);
    for (int64_t j = n_windows_ - 1; j > 0; --j) {  // Fisher-Yates
      int64_t r = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(j + 1));
      std::swap(order_[static_cast<size_t>(j)], order_[static_cast<size_t>(r)]);
    }
    cached_epoch_ = epoch;
  }
  return order_[static_cast<size_t>(i)];
}

void TokenWindows::sample(int64_t k, int32_t* inputs, int32_t* targets, int32_t* doc_ids) const {
  const int64_t start = window_of(k) * seq_len_;
  const int32_t* w = tokens_.data() + start;
  std::copy(w, w + seq_len_, inputs);
  std::copy(w + 1, w + seq_len_ + 1, targets);
  // Document of each input token: the last document start at or before it.
  auto it = std::upper_bound(doc_starts_.begin(), doc_starts_.end(), start);
  int32_t doc = static_cast<int32_t>(it - doc_starts_.begin()) - 1;
  for (int64_t t = 0; t < seq_len_; ++t) {
    while (it != doc_starts_.end() && *it <= start + t) {
      ++it;
      ++doc;
    }
    doc_ids[t] = doc;
  }
}

}  // namespace mambalm
