// The output side of `mambalm generate`: one generation after a prompt, printed as it streams
// (text through the stop strings, or token ids), or as one JSON line; each token's logprobs on
// request; and the timing of all generations, summed for the summary at the end (stderr).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "infer/generate.h"
#include "infer/logprobs.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

struct OutputOptions {
  bool as_text = false;            // decode with the tokenizer (else print token ids)
  bool json = false;               // one JSON object per generation instead of streamed text
  int logprobs = -1;               // -1: none; N >= 0: each token's logprob and N alternatives
  std::vector<std::string> stops;  // the text ends before the first of these (needs as_text)
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated, up to the one that completed a stop string or EOS
  std::string text;             // the visible text (as_text): up to the stop string
  std::string finish_reason;    // OpenAI's: "stop" (EOS or a stop string) or "length"
  std::string stop;             // the stop string that ended it ("" for EOS or length)
  std::vector<TokenLogprobs> logprobs;  // one per generated token when asked
  GenerateStats stats;
};

class GenerateSession {
 public:
  GenerateSession(Model& model, const Tokenizer* tokenizer, GenerateOptions generate, OutputOptions out);

  // Generates after `prompt` with the session's stop strings plus `extra_stops`. In text and
  // ids modes the generated text streams to stdout as it comes (no newline at the end); in JSON
  // mode nothing is printed (see to_json).
  GenerationResult run(const std::vector<int32_t>& prompt, const std::vector<std::string>& extra_stops = {});

  // The JSON line of a result; `prompt` is the prompt's text (omitted when empty).
  nlohmann::ordered_json to_json(const GenerationResult& r, const std::string& prompt) const;
  // The readable logprobs table of a result (text and ids modes), printed after its text.
  void print_logprobs(const GenerationResult& r, std::FILE* out) const;
  // Prompt and generation throughput and time to first token, over every run so far.
  void print_timing(std::FILE* out) const;

  const OutputOptions& output() const { return out_; }

 private:
  std::string token_text(int32_t id) const;

  Model& model_;
  const Tokenizer* tokenizer_;
  GenerateOptions generate_;
  OutputOptions out_;
  // Sums over runs, for print_timing.
  int64_t runs_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0, decode_steps_ = 0;
  double prefill_seconds_ = 0, decode_seconds_ = 0, first_token_seconds_ = 0;
};

// JSON text of `j`, with any invalid UTF-8 (a token that is part of a character) as U+FFFD.
std::string json_line(const nlohmann::ordered_json& j);

}  // namespace mambalm::cli
