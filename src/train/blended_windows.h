// Training samples from a weighted blend of Megatron indexed datasets (train/data_blend.h): the
// same interface as TokenWindows, over several of them. Sample k goes to the part that
// BlendSchedule picks for it; each part keeps its own seeded shuffled order (TokenWindows) and
// starts a new epoch when exhausted, independently of the others. Sample k is a pure function
// of (parts, weights, seq_len, seed, k): resuming at sample k reproduces the stream. One part
// of weight 1 is exactly TokenWindows with the same seed (the stream of a single --data).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/data_blend.h"
#include "train/token_windows.h"

namespace mambalm {

class BlendedWindows {
 public:
  // Reads every part into memory; `shuffle` false for validation (each part in file order).
  BlendedWindows(const std::vector<BlendPart>& parts, int64_t seq_len, uint64_t seed, bool shuffle = true);

  // Windows of all parts together (validation reads at most this many samples).
  int64_t window_count() const { return n_windows_; }
  int64_t max_token() const { return max_token_; }
  size_t part_count() const { return parts_.size(); }
  const BlendPart& part(size_t i) const { return parts_[i]; }
  const TokenWindows& windows(size_t i) const { return *windows_[i]; }

  // Sample k (any k >= 0) as TokenWindows::sample: inputs, targets, document ids, [seq_len] each.
  void sample(int64_t k, int32_t* inputs, int32_t* targets, int32_t* doc_ids) const;

  // One line per part: weight, prefix, tokens and windows ("  0.7  corpus_a_train: ...").
  std::string describe() const;

 private:
  std::vector<BlendPart> parts_;
  std::vector<std::unique_ptr<TokenWindows>> windows_;  // [parts]
  BlendSchedule schedule_;
  int64_t n_windows_ = 0;
  int64_t max_token_ = -1;
};

}  // namespace mambalm
