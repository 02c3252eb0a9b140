// A weighted blend of token-window streams (blended_windows.h).
#include "train/blended_windows.h"

#include <algorithm>
#include <cstdio>

namespace mambalm {

namespace {

std::vector<double> weights_of(const std::vector<BlendPart>& parts) {
  std::vector<double> w;
  for (const BlendPart& p : parts) w.push_back(p.weight);
  return w;
}

// Part i's shuffle seed: the run's seed for the first part (so that a single dataset keeps the
// order it always had), a distinct mix of it for the others (two parts that are the same
// dataset still visit it in different orders).
uint64_t part_seed(uint64_t seed, size_t i) { return i == 0 ? seed : seed ^ (0xd1b54a32d192ed03ull * static_cast<uint64_t>(i)); }

}  // namespace

BlendedWindows::BlendedWindows(const std::vector<BlendPart>& parts, int64_t seq_len, uint64_t seed, bool shuffle)
    : parts_(parts), schedule_(weights_of(parts)) {
  for (size_t i = 0; i < parts_.size(); ++i) {
    windows_.push_back(std::make_unique<TokenWindows>(parts_[i].prefix, seq_len, part_seed(seed, i), shuffle));
    n_windows_ += windows_.back()->window_count();
    max_token_ = std::max(max_token_, windows_.back()->max_token());
  }
}

void BlendedWindows::sample(int64_t k, int32_t* inputs, int32_t* targets, int32_t* doc_ids) const {
  const BlendSchedule::Source s = schedule_.source_of(k);
  windows_[static_cast<size_t>(s.part)]->sample(s.index, inputs, targets, doc_ids);
}

std::string BlendedWindows::describe() const {
  std::string out;
  for (size_t i = 0; i < parts_.size(); ++i) {
    char line[128];
    std::snprintf(line, sizeof line, "  %.4g  ", parts_[i].weight);
    out += line + parts_[i].prefix;
    std::snprintf(line, sizeof line, ": %lld tokens, %lld windows\n", static_cast<long long>(windows_[i]->token_count()),
                  static_cast<long long>(windows_[i]->window_count()));
    out += line;
  }
  return out;
}

}  // namespace mambalm
