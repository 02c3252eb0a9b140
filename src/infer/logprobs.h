// Log-probabilities of a chosen token and of the most likely alternatives, from the raw model
// distribution (the logits before penalties, temperature and truncation), as OpenAI-compatible
// servers report them. log softmax in double over the whole vocabulary given.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace mambalm {

struct TokenLogprobs {
  int32_t token = 0;
  double logprob = 0;                           // log p(token)
  std::vector<std::pair<int32_t, double>> top;  // the `top` most likely ids, most likely first (ties: lower id)
};

TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t token, int top);

}  // namespace mambalm
