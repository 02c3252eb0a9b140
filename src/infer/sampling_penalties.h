// Penalties on tokens already seen, applied to the logits before any other sampler:
// - repetition (llama.cpp's --repeat-penalty, transformers' repetition_penalty): each distinct
//   token among the last `repeat_last_n` tokens of the context (prompt + generated) has its logit
//   divided by `repeat` when positive and multiplied by it when negative;
// - presence and frequency (OpenAI's presence_penalty / frequency_penalty): each token's logit
//   loses presence * [count > 0] + frequency * count, counting generated tokens only.
// Each distinct token is penalized once, however often it occurs (as both references do).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mambalm {

struct Penalties {
  double repeat = 1.0;          // 1 = off; > 0
  int64_t repeat_last_n = 64;   // tokens of context the repetition penalty looks at; -1 = all
  double presence = 0.0;        // 0 = off
  double frequency = 0.0;       // 0 = off
  bool active() const { return repeat != 1.0 || presence != 0.0 || frequency != 0.0; }
};

// Throws naming `where` when a value is out of range (repeat <= 0, repeat_last_n < -1, not finite).
void check_penalties(const Penalties& p, const char* where);

// Applies the penalties to logits[0, vocab) in place. `context` is the prompt followed by the
// generated tokens, the last `generated` of which are generated; ids outside [0, vocab) are ignored.
void apply_penalties(float* logits, int64_t vocab, const std::vector<int32_t>& context, size_t generated,
                     const Penalties& p);

}  // namespace mambalm
