// lm-eval's `loglikelihood` output type (LAMBADA-style): one context and one continuation per
// document, from JSON Lines:
//   {"context": str, "continuation": str}
//   or {"text": str}: LAMBADA's split, context = the words before the last space-separated one
//   (text.split(' ')[:-1] joined by ' '), continuation = ' ' + the last word.
// Metrics (lm-eval's): acc = mean of is_greedy (every continuation token is the model's argmax);
// perplexity = exp(-mean over documents of the continuation's log-likelihood).
#pragma once
#include <string>
#include <vector>

namespace mambalm::eval {

struct LoglikelihoodDoc {
  std::string context, continuation;
};

// Throws naming the file, line and field at fault.
std::vector<LoglikelihoodDoc> read_loglikelihood_jsonl(const std::string& path);

// LAMBADA's split of one text at its last ' '.
LoglikelihoodDoc split_last_word(const std::string& text);

}  // namespace mambalm::eval
