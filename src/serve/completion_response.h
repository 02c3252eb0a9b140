// The JSON shapes of OpenAI's completion and chat-completion responses (whole and streamed
// chunks) and of their logprobs. Token strings are the tokenizer's decoding of one id; a piece
// that is not valid UTF-8 on its own (part of a multi-byte character) is written with U+FFFD
// in the token string, and its exact bytes in the chat format's "bytes".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/job.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::serve {

// Legacy completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}; the first
// prompt token (nothing predicts it) has null logprob and null top_logprobs.
nlohmann::json completion_logprobs(const std::vector<TokenLogprob>& entries, const Tokenizer& tokenizer, size_t first_offset);
// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}, ...]}.
nlohmann::json chat_logprobs(const std::vector<TokenLogprob>& entries, const Tokenizer& tokenizer);

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// JSON text as sent: never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& j);

// "cmpl-..." / "chatcmpl-...": unique within this server process.
std::string new_response_id(bool chat);

}  // namespace mambalm::serve
