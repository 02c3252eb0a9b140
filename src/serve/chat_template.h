// Chat messages to one prompt text, for POST /v1/chat/completions. The model directory's
// tokenizer_config.json chat_template (Jinja, rendered as transformers' apply_chat_template does:
// tokenizer/chat_template/chat_template.h) when it has one; otherwise the plain default, which
// works with any tokenizer (bytes included):
//   "System: <content>\n\nUser: <content>\n\nAssistant: <content>\n\n...Assistant:"
// i.e. each message as "<Role>: <content>" separated by a blank line, then "Assistant:" for the
// model to continue. With the default, generation also stops at "\n\nUser:" (added to the
// request's stop strings); with a model's template it stops at the EOS token.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/chat_template/chat_template.h"

namespace mambalm::serve {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "developer" or "tool"
  std::string content;
};

// The messages as the JSON list a chat template renders ([{"role", "content"}, ...]).
nlohmann::json chat_messages_json(const std::vector<ChatMessage>& messages);

std::string render_default_chat(const std::vector<ChatMessage>& messages);

// The stop string the default template implies (the model starting the user's next turn).
inline const char* kDefaultChatStop = "\n\nUser:";

}  // namespace mambalm::serve
