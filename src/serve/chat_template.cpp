#include "serve/chat_template.h"

namespace mambalm::serve {

namespace {
std::string role_label(const std::string& role) {
  if (role == "system" || role == "developer") return "System";
  if (role == "assistant") return "Assistant";
  if (role == "tool") return "Tool";
  return "User";
}
}  // namespace

std::string render_default_chat(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) out += role_label(m.role) + ": " + m.content + "\n\n";
  out += "Assistant:";
  return out;
}

}  // namespace mambalm::serve
