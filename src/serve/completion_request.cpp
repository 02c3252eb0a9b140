#include "serve/completion_request.h"

#include <random>

#include <nlohmann/json.hpp>

#include "serve/api_error.h"
#include "serve/chat_template.h"
#include "tokenizer/chat_template/jinja_error.h"

namespace mambalm::serve {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& param, const std::string& message, const std::string& code = "") {
  throw ApiError(400, message, param, code);
}

const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

bool get_bool(const json& j, const char* name, bool fallback) {
  const json* v = field(j, name);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(name, std::string("'") + name + "' must be a boolean");
  return v->get<bool>();
}

int64_t get_int(const json& j, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(j, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) bad(name, std::string("'") + name + "' must be an integer");
  // Unsigned values beyond int64 are out of range whatever the bounds.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    bad(name, std::string("'") + name + "' is out of range");
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    bad(name, std::string("'") + name + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  std::to_string(x));
  return x;
}

double get_number(const json& j, const char* name, double fallback, double lo, double hi, bool open_lo = false) {
  const json* v = field(j, name);
  if (!v) return fallback;
  if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!(open_lo ? x > lo : x >= lo) || !(x <= hi)) {
    bad(name, std::string("'") + name + "' must be in " + (open_lo ? "(" : "[") + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + std::to_string(x));
  }
  return x;
}

std::vector<int32_t> token_list(const json& a, const RequestLimits& limits) {
  std::vector<int32_t> ids;
  for (const json& t : a) {
    if (!t.is_number_integer()) bad("prompt", "a token-id prompt must contain only integers");
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= limits.vocab)
      bad("prompt", "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(limits.vocab) + ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

void add_prompt_text(CompletionRequest& r, const std::string& text, const Tokenizer& tok) {
  r.prompts.push_back(tok.encode(text));
  r.prompt_texts.push_back(text);
}

void add_prompt_ids(CompletionRequest& r, std::vector<int32_t> ids, const Tokenizer& tok) {
  r.prompt_texts.push_back(tok.decode(ids));
  r.prompts.push_back(std::move(ids));
}

// OpenAI's four prompt forms: "text", ["text", ...], [id, ...], [[id, ...], ...].
void parse_prompt(const json& body, CompletionRequest& r, const Tokenizer& tok, const RequestLimits& limits) {
  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  if (p->is_string()) {
    add_prompt_text(r, p->get<std::string>(), tok);
  } else if (p->is_array()) {
    if (p->empty()) bad("prompt", "'prompt' must not be an empty list");
    const json& first = (*p)[0];
    if (first.is_number_integer()) {
      add_prompt_ids(r, token_list(*p, limits), tok);
    } else {
      for (const json& item : *p) {
        if (item.is_string()) add_prompt_text(r, item.get<std::string>(), tok);
        else if (item.is_array()) add_prompt_ids(r, token_list(item, limits), tok);
        else bad("prompt", "'prompt' must be a string, a list of strings, a list of token ids, or a list of such lists");
      }
    }
  } else {
    bad("prompt", "'prompt' must be a string, a list of strings, a list of token ids, or a list of such lists");
  }
  if (static_cast<int64_t>(r.prompts.size()) > limits.max_prompts)
    bad("prompt", "at most " + std::to_string(limits.max_prompts) + " prompts per request");
}

std::string message_content(const json& m, size_t i) {
  const json* c = field(m, "content");
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad(where, "'" + where + "' must be a string or a list of text parts");
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" || !part.contains("text") ||
        !part["text"].is_string())
      bad(where, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported in '" + where + "'");
    text += part["text"].get<std::string>();
  }
  return text;
}

void parse_messages(const json& body, CompletionRequest& r, const Tokenizer& tok, const ChatTemplate* chat_template) {
  const json* ms = field(body, "messages");
  if (!ms) bad("messages", "'messages' is required");
  if (!ms->is_array() || ms->empty()) bad("messages", "'messages' must be a non-empty list");
  std::vector<ChatMessage> chat;
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(where, "'" + where + "' must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) bad(where + ".role", "'" + where + ".role' must be a string");
    const std::string rs = role->get<std::string>();
    if (rs != "system" && rs != "developer" && rs != "user" && rs != "assistant" && rs != "tool")
      bad(where + ".role", "unknown role '" + rs + "' (valid: system, developer, user, assistant, tool)");
    chat.push_back({rs, message_content(m, i)});
  }
  if (!chat_template || chat_template->is_default()) {
    add_prompt_text(r, render_default_chat(chat), tok);
    r.stop.push_back(kDefaultChatStop);
    return;
  }
  std::string text;
  try {
    text = chat_template->render(chat_messages_json(chat), /*add_generation_prompt=*/true);
  } catch (const jinja::TemplateRaised& e) {
    bad("messages", "the model's chat template refused these messages: " + e.message());
  } catch (const Error& e) {
    bad("messages", std::string("the model's chat template failed on these messages: ") + e.what());
  }
  // As apply_chat_template(tokenize=True): the template writes special tokens as text
  // (<|begin_of_text|>, [INST], ...), which must encode to their ids.
  r.prompts.push_back(tok.encode(text, /*allow_special=*/true));
  r.prompt_texts.push_back(text);
}

void parse_stop(const json& body, CompletionRequest& r) {
  const json* s = field(body, "stop");
  if (!s) return;
  std::vector<std::string> stops;
  if (s->is_string()) stops.push_back(s->get<std::string>());
  else if (s->is_array()) {
    for (const json& x : *s) {
      if (!x.is_string()) bad("stop", "'stop' must be a string or a list of strings");
      stops.push_back(x.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or a list of strings");
  }
  if (stops.size() > 4) bad("stop", "at most 4 stop strings");
  for (const auto& x : stops)
    if (!x.empty()) r.stop.push_back(x);
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& text, bool chat, const Tokenizer& tok,
                                           const RequestLimits& limits, const ChatTemplate* chat_template) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    bad("", std::string("the request body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) bad("", "the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", "'model' must be a string");
    r.model = m->get<std::string>();
  }
  if (chat) parse_messages(body, r, tok, chat_template);
  else parse_prompt(body, r, tok, limits);
  for (const auto& p : r.prompts) {
    if (p.empty()) bad(chat ? "messages" : "prompt", "the prompt encodes to no tokens");
    if (static_cast<int64_t>(p.size()) >= limits.max_context) {
      bad(chat ? "messages" : "prompt",
          "this model's maximum context length is " + std::to_string(limits.max_context) + " tokens, but the prompt has " +
              std::to_string(p.size()) + " tokens",
          "context_length_exceeded");
    }
  }
  size_t longest = 0;
  for (const auto& p : r.prompts) longest = std::max(longest, p.size());
  const int64_t room = limits.max_context - static_cast<int64_t>(longest);
  const char* max_name = chat && field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const int64_t fallback = chat ? std::min(limits.default_chat_max_tokens, room) : std::min<int64_t>(16, room);
  r.max_tokens = get_int(body, max_name, fallback, chat ? 1 : 0, INT64_MAX);
  if (r.max_tokens > room) {
    bad(max_name,
        "this model's maximum context length is " + std::to_string(limits.max_context) + " tokens; the prompt has " +
            std::to_string(longest) + " and '" + max_name + "' asks for " + std::to_string(r.max_tokens) + " more",
        "context_length_exceeded");
  }
  r.sampling.temperature = get_number(body, "temperature", 1.0, 0.0, 2.0);
  r.sampling.top_p = get_number(body, "top_p", 1.0, 0.0, 1.0, /*open_lo=*/true);
  r.sampling.top_k = get_int(body, "top_k", 0, -1, INT32_MAX);
  if (r.sampling.top_k < 0) r.sampling.top_k = 0;  // vLLM's -1 = no limit
  if (field(body, "seed")) {
    r.sampling.seed = static_cast<uint64_t>(get_int(body, "seed", 0, INT64_MIN, INT64_MAX));
  } else {
    std::random_device rd;
    r.sampling.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  r.n = get_int(body, "n", 1, 1, limits.max_n);
  r.stream = get_bool(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    r.include_usage = get_bool(*so, "include_usage", false);
  }
  r.ignore_eos = get_bool(body, "ignore_eos", false);
  parse_stop(body, r);
  if (chat) {
    const bool want = get_bool(body, "logprobs", false);
    const int64_t top = get_int(body, "top_logprobs", 0, 0, limits.max_logprobs);
    if (field(body, "top_logprobs") && !want) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.logprobs = want ? static_cast<int>(top) : -1;
  } else {
    r.logprobs = static_cast<int>(get_int(body, "logprobs", -1, 0, limits.max_logprobs));
    if (!field(body, "logprobs")) r.logprobs = -1;
    r.echo = get_bool(body, "echo", false);
    if (r.echo && r.stream) bad("echo", "'echo' is not supported together with 'stream'");
    const int64_t best_of = get_int(body, "best_of", 1, 1, limits.max_n);
    if (best_of != r.n && best_of != 1) bad("best_of", "'best_of' is not supported by this server");
    if (const json* s = field(body, "suffix"); s && !(s->is_string() && s->get<std::string>().empty()))
      bad("suffix", "'suffix' is not supported by this server");
  }
  if (!r.chat && r.max_tokens == 0 && !r.echo) bad("max_tokens", "'max_tokens' may be 0 only with 'echo': true");
  // OpenAI's ranges; repetition_penalty and min_p as vLLM takes them (the penalty over the
  // whole prompt and output).
  r.sampling.penalties.presence = get_number(body, "presence_penalty", 0.0, -2.0, 2.0);
  r.sampling.penalties.frequency = get_number(body, "frequency_penalty", 0.0, -2.0, 2.0);
  r.sampling.penalties.repeat = get_number(body, "repetition_penalty", 1.0, 0.0, 1e6, /*open_lo=*/true);
  r.sampling.penalties.repeat_last_n = -1;
  r.sampling.min_p = get_number(body, "min_p", 0.0, 0.0, 1.0);
  if (const json* lb = field(body, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
    bad("logit_bias", "'logit_bias' is not supported by this server");
  return r;
}

}  // namespace mambalm::serve
