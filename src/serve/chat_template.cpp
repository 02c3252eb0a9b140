#include "serve/chat_template.h"

namespace mambalm::serve {

nlohmann::json chat_messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::json out = nlohmann::json::array();
  for (const ChatMessage& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
  return out;
}

std::string render_default_chat(const std::vector<ChatMessage>& messages) {
  return mambalm::render_default_chat(chat_messages_json(messages));
}

}  // namespace mambalm::serve
