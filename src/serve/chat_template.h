// Chat messages to one prompt text. The default template is plain text, so it works with any
// tokenizer (bytes included):
//   "System: <content>\n\nUser: <content>\n\nAssistant: <content>\n\n...Assistant:"
// i.e. each message as "<Role>: <content>" separated by a blank line, then "Assistant:" for the
// model to continue. Generation stops at "\n\nUser:" (added to the request's stop strings).
// A model directory's tokenizer_config.json chat_template (Jinja) is NOT interpreted yet.
#pragma once
#include <string>
#include <vector>

namespace mambalm::serve {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "developer" or "tool"
  std::string content;
};

std::string render_default_chat(const std::vector<ChatMessage>& messages);

// The stop string the default template implies (the model starting the user's next turn).
inline const char* kDefaultChatStop = "\n\nUser:";

}  // namespace mambalm::serve
