#include "tokenizer/chat_template/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/chat_template/jinja_template.h"

namespace mambalm {

namespace {

using nlohmann::json;

// A special token as tokenizer_config.json writes it: "text", {"content": "text", ...}, or null.
bool token_text(const json& config, const char* key, const std::string& where, std::string& out) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return false;
  if (it->is_string()) {
    out = it->get<std::string>();
    return true;
  }
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    out = (*it)["content"].get<std::string>();
    return true;
  }
  fail(where, std::string("'") + key + "' must be a string or an object with a string \"content\"");
}

std::string role_label(const std::string& role) {
  if (role == "system" || role == "developer") return "System";
  if (role == "assistant") return "Assistant";
  if (role == "tool") return "Tool";
  return "User";
}

}  // namespace

ChatTemplate::ChatTemplate() = default;

std::string render_default_chat(const json& messages) {
  std::string out;
  for (const json& m : messages) {
    const std::string role = m.contains("role") && m["role"].is_string() ? m["role"].get<std::string>() : "user";
    const std::string content = m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
    out += role_label(role) + ": " + content + "\n\n";
  }
  out += "Assistant:";
  return out;
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  const std::filesystem::path path = std::filesystem::path(dir) / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return ChatTemplate();
  std::ifstream f(path);
  check(static_cast<bool>(f), path.string(), "cannot open");
  std::stringstream text;
  text << f.rdbuf();
  json config;
  try {
    config = json::parse(text.str());
  } catch (const json::exception& e) {
    fail(path.string(), std::string("not valid JSON: ") + e.what());
  }
  return from_tokenizer_config(config, path.string());
}

ChatTemplate ChatTemplate::from_tokenizer_config(const json& config, const std::string& where) {
  check(config.is_object(), where, "the tokenizer config must be a JSON object");
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return ChatTemplate();
  std::string source;
  if (it->is_string()) {
    source = it->get<std::string>();
  } else if (it->is_array()) {
    // Several named templates ({"name": ..., "template": ...}); a plain chat uses "default".
    bool found = false;
    for (const json& t : *it) {
      check(t.is_object() && t.contains("name") && t["name"].is_string() && t.contains("template") &&
                t["template"].is_string(),
            where, "each entry of 'chat_template' must be {\"name\": string, \"template\": string}");
      if (t["name"] == "default") {
        source = t["template"].get<std::string>();
        found = true;
      }
    }
    check(found, where, "'chat_template' is a list without a template named \"default\"");
  } else {
    fail(where, "'chat_template' must be a string or a list of {\"name\", \"template\"} objects");
  }
  ChatTemplate t;
  t.source_name_ = where + " chat_template";
  t.template_ = std::make_shared<const jinja::Template>(source, t.source_name_);
  for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
    std::string text;
    if (token_text(config, key, where, text)) t.special_tokens_[key] = text;
  }
  if (t.special_tokens_.contains("eos_token")) t.eos_token_ = t.special_tokens_["eos_token"].get<std::string>();
  return t;
}

ChatTemplate ChatTemplate::from_source(const std::string& source, const std::string& bos_token,
                                       const std::string& eos_token, const std::string& where) {
  json config = {{"chat_template", source}};
  if (!bos_token.empty()) config["bos_token"] = bos_token;
  if (!eos_token.empty()) config["eos_token"] = eos_token;
  ChatTemplate t = from_tokenizer_config(config, where);
  t.source_name_ = where;
  return t;
}

std::string ChatTemplate::implied_stop() const { return is_default() ? "\n\nUser:" : ""; }

std::string ChatTemplate::render(const json& messages, bool add_generation_prompt) const {
  check(messages.is_array(), "chat messages", "must be a list");
  if (!template_) return render_default_chat(messages);
  jinja::Dict vars;
  vars.emplace_back("messages", jinja::Value::from_json(messages));
  vars.emplace_back("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  vars.emplace_back("tools", jinja::Value::none());
  vars.emplace_back("documents", jinja::Value::none());
  for (auto it = special_tokens_.begin(); it != special_tokens_.end(); ++it)
    vars.emplace_back(it.key(), jinja::Value::string(it.value().get<std::string>()));
  return template_->render(vars);
}

}  // namespace mambalm
