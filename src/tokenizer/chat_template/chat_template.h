// A model's chat template: chat messages to the prompt text, as transformers'
// apply_chat_template(messages, add_generation_prompt=True, tokenize=False) renders them.
//   - tokenizer_config.json's "chat_template" (a string, or a list of {name, template} from which
//     "default" is used) is a Jinja template (tokenizer/chat_template/jinja_template.h), rendered
//     with messages, add_generation_prompt, tools = documents = None and the special tokens
//     bos_token / eos_token / pad_token / unk_token (strings or {"content": ...} objects).
//   - Without one, the built-in default, plain text that suits any tokenizer:
//       "System: <content>\n\nUser: <content>\n\nAssistant: <content>\n\n...Assistant:"
//     whose implied stop string is "\n\nUser:" (the model starting the user's next turn).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mambalm {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // The built-in default.
  ChatTemplate();
  // From a model directory: its tokenizer_config.json's chat_template when it has one, else the
  // default. Throws mambalm::Error naming the file on a malformed config or template.
  static ChatTemplate from_model_dir(const std::string& dir);
  // From a parsed tokenizer_config.json (`where` names it in errors).
  static ChatTemplate from_tokenizer_config(const nlohmann::json& config, const std::string& where);
  // From template text and special tokens (empty bos/eos: undefined in the template).
  static ChatTemplate from_source(const std::string& source, const std::string& bos_token,
                                  const std::string& eos_token, const std::string& where);

  bool is_default() const { return !template_; }
  // Where the template came from, for logs: "built-in default" or "<path> chat_template".
  const std::string& source_name() const { return source_name_; }
  // The template's end-of-turn text: eos_token (empty for the default template).
  const std::string& eos_token() const { return eos_token_; }
  // The stop string the default template implies; empty for a Jinja template.
  std::string implied_stop() const;

  // `messages` is a JSON list of {"role": ..., "content": ...} objects (other fields pass through
  // to the template). Throws jinja::TemplateRaised when the template refuses the conversation
  // (raise_exception) and jinja::TemplateError on any other failure.
  std::string render(const nlohmann::json& messages, bool add_generation_prompt = true) const;

 private:
  std::shared_ptr<const jinja::Template> template_;
  std::string source_name_ = "built-in default";
  nlohmann::json special_tokens_ = nlohmann::json::object();
  std::string eos_token_;
};

// The default template's text for messages of (role, content).
std::string render_default_chat(const nlohmann::json& messages);

}  // namespace mambalm
