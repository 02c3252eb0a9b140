// Next-token choice from logits: greedy (temperature 0), or sampling, reproducible from a seed.
// The samplers run in the order of Hugging Face transformers' logits processors:
//   penalties (repetition, presence, frequency) -> temperature -> top-k -> top-p -> min-p,
// then a draw (or the argmax when greedy: penalties still apply, the rest cannot change it).
// llama.cpp's default chain differs only in applying temperature last (after min-p), so with
// T != 1 its top-p and min-p cuts are taken on the untempered distribution and ours on the
// tempered one. docs/generate.md has the table.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "infer/sampling_penalties.h"

namespace mambalm {

// The first four fields keep their order: tests and callers write {temperature, top_k, top_p, seed}.
struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = no limit
  double top_p = 1.0;        // 1 = no limit
  uint64_t seed = 0;
  double min_p = 0.0;        // 0 = no limit: keep tokens with p >= min_p * max p
  Penalties penalties{};     // neutral by default
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& opts);
  // The tokens before the first generated one: the repetition penalty's window reaches into
  // them (presence and frequency penalties count generated tokens only).
  void set_prompt(const std::vector<int32_t>& prompt);
  // Chooses the next token and remembers it as generated (for the penalties).
  int32_t sample(const float* logits, int64_t vocab);
  const SamplingOptions& options() const { return opts_; }

 private:
  int32_t draw(const float* logits, int64_t vocab);  // temperature, top-k, top-p, min-p, draw

  SamplingOptions opts_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused across calls
  std::vector<float> penalized_;                       // [vocab]: logits after the penalties
  std::vector<int32_t> context_;                       // prompt, then generated tokens
  size_t prompt_length_ = 0;
};

}  // namespace mambalm
