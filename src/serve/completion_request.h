// The body of POST /v1/completions and /v1/chat/completions, parsed and checked. Every
// problem is an ApiError 400 naming the field (`param`), so a client learns what to fix.
// Fields we do not implement are ignored when absent or at their neutral value, and refused
// otherwise (a request is never silently served differently from what it asked for).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "infer/sampler.h"
#include "tokenizer/chat_template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::serve {

struct RequestLimits {
  int64_t max_context = 2048;   // prompt + generated tokens
  int64_t vocab = 0;            // token ids in a prompt must be < this
  int64_t max_n = 16;           // choices per prompt
  int64_t max_prompts = 64;     // prompts per request (batched lm-eval requests)
  int64_t max_logprobs = 20;    // alternatives per token
  int64_t default_chat_max_tokens = 256;
};

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::vector<std::vector<int32_t>> prompts;  // one token list per prompt, each non-empty
  std::vector<std::string> prompt_texts;      // the prompt as text (for echo)
  int64_t max_tokens = 16;                    // per choice
  SamplingOptions sampling;                   // seed: the request's, else a random one
  std::vector<std::string> stop;              // up to 4 stop strings (+ the chat template's)
  int64_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt is part of the returned text
  int logprobs = -1;           // -1: none; else alternatives per token (chat: top_logprobs)
  bool ignore_eos = false;     // non-standard (vLLM's): keep going past EOS
};

// Parses and validates `body` (already known to be UTF-8). `chat` selects the chat schema; its
// messages become the prompt through `chat_template` (null: the default, serve/chat_template.h).
CompletionRequest parse_completion_request(const std::string& body, bool chat, const Tokenizer& tokenizer,
                                           const RequestLimits& limits, const ChatTemplate* chat_template = nullptr);

}  // namespace mambalm::serve
