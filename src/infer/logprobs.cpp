#include "infer/logprobs.h"

#include <algorithm>
#include <cmath>

namespace mambalm {

TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t token, int top) {
  TokenLogprobs t;
  t.token = token;
  double mx = logits[0];
  for (int64_t v = 1; v < vocab; ++v) mx = std::max(mx, static_cast<double>(logits[v]));
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  const double log_z = mx + std::log(sum);
  t.logprob = static_cast<double>(logits[token]) - log_z;
  if (top > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int64_t v = 0; v < vocab; ++v) ids[static_cast<size_t>(v)] = static_cast<int32_t>(v);
    const size_t k = std::min<size_t>(static_cast<size_t>(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (size_t i = 0; i < k; ++i) t.top.push_back({ids[i], static_cast<double>(logits[ids[i]]) - log_z});
  }
  return t;
}

}  // namespace mambalm
