#include "serve/choice_text.h"

namespace mambalm::serve {

ChoiceText::ChoiceText(const Tokenizer& tokenizer, std::vector<std::string> stops)
    : stream_([&tokenizer](const std::vector<int32_t>& ids) { return decode_generated(tokenizer, ids); }), stops_(std::move(stops)) {}

std::string ChoiceText::push(int32_t token) {
  if (stops_.stopped()) return "";
  return stops_.push(stream_.push(token));
}

std::string ChoiceText::finish() {
  if (stops_.stopped()) return "";
  std::string out = stops_.push(stream_.finish());
  return stops_.stopped() ? out : out + stops_.finish();
}

}  // namespace mambalm::serve
