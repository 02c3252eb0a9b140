// Prefill and decode over a SequenceState: the prompt runs in chunks (bounded activation
// memory), then one token per step. Pure-SSM models do constant work per decode step.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "infer/sampler.h"
#include "model/state.h"
#include "model/model.h"

namespace mambalm {

// Runs `tokens` through the model from `state`, `chunk` tokens per forward call; returns the
// logits [V] after the last token.
std::vector<float> prefill(Model& model, SequenceState& state, const std::vector<int32_t>& tokens, int64_t chunk = 512);

// One decode step: feeds `token`, returns the logits [V] for the next position.
std::vector<float> decode_step(Model& model, SequenceState& state, int32_t token);

struct GenerateOptions {
  int64_t max_tokens = 32;
  SamplingOptions sampling;
  bool stop_at_eos = true;
  int64_t prefill_chunk = 512;
  // Sample only ids < vocab_limit (0 = the model's vocabulary): the embedding may be padded
  // past the tokenizer's vocabulary, and padding rows are not tokens.
  int64_t vocab_limit = 0;
};

// Generates up to max_tokens after `prompt`, calling on_token for each as it is chosen.
std::vector<int32_t> generate(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                              const std::function<void(int32_t)>& on_token = {});

// What one generation did and how long it took (wall clock, seconds).
struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;      // the prompt through the model
  double first_token_seconds = 0;  // start to the first generated token (prefill + its choice)
  double decode_seconds = 0;       // first token to the last: generated_tokens - 1 decode steps
  std::string finish_reason;       // "eos", "length", or "stopped" (the step function said so)
};

// Called with each chosen token and the raw logits [V] (the model's whole vocabulary) it was
// chosen from; returns false to end the generation there.
using StepFn = std::function<bool(int32_t token, const std::vector<float>& logits)>;

// generate() with a say in when to stop, and its timing.
GenerateStats generate_steps(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                             const StepFn& on_step);

// The state a generation of up to `max_tokens` tokens (prompt included) needs on the model's
// device, its KV cache in model.kv_dtype(): on CUDA planned at that many rows, on the CPU
// growing on demand up to that many.
StateOptions state_options_for(const Model& model, int64_t max_tokens);

// A tensor's values as floats on the host (copied from the device if needed).
void copy_to_host(const Tensor& t, std::vector<float>& out);

// Token ids must lie in [0, vocab): throws naming `where` and the first bad position.
void check_token_ids(const std::vector<int32_t>& ids, int64_t vocab, const std::string& where);

}  // namespace mambalm
