#include "infer/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mambalm {

Sampler::Sampler(const SamplingOptions& opts) : opts_(opts), rng_(opts.seed) {
  check(opts.temperature >= 0, "sampling", "temperature must be >= 0");
  check(opts.top_k >= 0, "sampling", "top-k must be >= 0");
  check(opts.top_p > 0 && opts.top_p <= 1, "sampling", "top-p must be in (0, 1]");
  check(opts.min_p >= 0 && opts.min_p <= 1, "sampling", "min-p must be in [0, 1]");
  check_penalties(opts.penalties, "sampling");
}

void Sampler::set_prompt(const std::vector<int32_t>& prompt) {
  context_ = prompt;
  prompt_length_ = prompt.size();
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (opts_.penalties.active()) {
    penalized_.assign(logits, logits + vocab);
    apply_penalties(penalized_.data(), vocab, context_, context_.size() - prompt_length_, opts_.penalties);
    logits = penalized_.data();
  }
  int32_t chosen;
  if (opts_.temperature == 0.0) {
    // Greedy: the first maximum, as torch.argmax does.
    chosen = static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
  } else {
    chosen = draw(logits, vocab);
  }
  context_.push_back(chosen);
  return chosen;
}

int32_t Sampler::draw(const float* logits, int64_t vocab) {
  candidates_.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) candidates_[static_cast<size_t>(i)] = {logits[i], static_cast<int32_t>(i)};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = candidates_.size();
  if (opts_.top_k > 0 && static_cast<size_t>(opts_.top_k) < keep) {
    keep = static_cast<size_t>(opts_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep), candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  // Softmax over the kept candidates at the given temperature (max subtracted for stability):
  // probs[0] = 1 is the most likely token's weight.
  double max_logit = candidates_[0].first, total = 0;
  std::vector<double> probs(keep);
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((candidates_[i].first - max_logit) / opts_.temperature);
    total += probs[i];
  }
  // Nucleus: the smallest prefix whose probability reaches top_p (at least one token).
  if (opts_.top_p < 1.0) {
    double cumulative = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      cumulative += probs[i] / total;
      if (cumulative >= opts_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
  }
  // Min-p: tokens at least min_p times as likely as the most likely one (a ratio, so the
  // renormalization after top-p does not change it).
  if (opts_.min_p > 0.0) {
    size_t cut = 1;
    while (cut < keep && probs[cut] >= opts_.min_p * probs[0]) ++cut;
    keep = cut;
  }
  total = 0;
  for (size_t i = 0; i < keep; ++i) total += probs[i];
  double r = rng_.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    r -= probs[i];
    if (r < 0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace mambalm
