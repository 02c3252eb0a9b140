#include "serve/completion_response.h"

#include <atomic>
#include <chrono>
#include <cstdio>

namespace mambalm::serve {

using nlohmann::json;

namespace {
json byte_list(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}
}  // namespace

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json completion_logprobs(const std::vector<TokenLogprob>& entries, const Tokenizer& tok, size_t first_offset) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = first_offset;
  for (const TokenLogprob& e : entries) {
    const std::string text = decode_generated(tok, {e.token});
    tokens.push_back(text);
    offsets.push_back(offset);
    offset += text.size();
    if (!e.has_logprob) {
      lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    lps.push_back(e.logprob);
    json top = json::object();
    for (const auto& [id, lp] : e.top) {
      const std::string t = decode_generated(tok, {id});
      if (!top.contains(t)) top[t] = lp;  // two ids with one text: the likelier one (listed first)
    }
    tops.push_back(top);
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_logprobs(const std::vector<TokenLogprob>& entries, const Tokenizer& tok) {
  json content = json::array();
  for (const TokenLogprob& e : entries) {
    const std::string text = decode_generated(tok, {e.token});
    json top = json::array();
    for (const auto& [id, lp] : e.top) {
      const std::string t = decode_generated(tok, {id});
      top.push_back({{"token", t}, {"logprob", lp}, {"bytes", byte_list(t)}});
    }
    content.push_back({{"token", text}, {"logprob", e.logprob}, {"bytes", byte_list(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

std::string new_response_id(bool chat) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t start = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s-%012llx%06llx", chat ? "chatcmpl" : "cmpl",
                static_cast<unsigned long long>(start & 0xffffffffffffULL), static_cast<unsigned long long>(++counter));
  return buf;
}

}  // namespace mambalm::serve
