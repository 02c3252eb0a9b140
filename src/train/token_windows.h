// Training samples from a Megatron indexed dataset: windows of seq_len + 1 tokens over the
// documents laid end to end, visited in a seeded random order that is reshuffled every epoch.
// Sample k is a pure function of (dataset, seq_len, seed, k), so resuming at sample k
// reproduces the same stream. Each window also carries the document id of every input token,
// so packed documents do not see each other (attention mask, SSM/conv state reset).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mambalm {

class TokenWindows {
 public:
  // Reads every document of PREFIX.{bin,idx} into memory (4 bytes per token).
  TokenWindows(const std::string& prefix, int64_t seq_len, uint64_t seed, bool shuffle = true);

  int64_t window_count() const { return n_windows_; }
  int64_t token_count() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t max_token() const { return max_token_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

  // Sample k (any k >= 0): inputs = window[0..L), targets = window[1..L], doc_ids of the inputs.
  void sample(int64_t k, int32_t* inputs, int32_t* targets, int32_t* doc_ids) const;

 private:
  int64_t window_of(int64_t k) const;  // which window sample k reads

  std::vector<int32_t> tokens_;        // all documents, concatenated
  std::vector<int64_t> doc_starts_;    // token offset of each document, ascending
  int64_t seq_len_;
  uint64_t seed_;
  bool shuffle_;
  int64_t n_windows_ = 0;
  int64_t max_token_ = -1;
  mutable int64_t cached_epoch_ = -1;  // the permutation of the epoch last asked for
  mutable std::vector<int64_t> order_;
};

}  // namespace mambalm
