#include "serve/choice_text.h"

#include <algorithm>
#include <string_view>

#include "serve/utf8.h"

namespace mambalm::serve {

ChoiceText::ChoiceText(const Tokenizer& tokenizer, std::vector<std::string> stops)
    : stream_([&tokenizer](const std::vector<int32_t>& ids) { return tokenizer.decode(ids); }), stops_(std::move(stops)) {}

std::string ChoiceText::release(size_t end) {
  if (end <= emitted_) return "";
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  visible_ += out;
  return out;
}

std::string ChoiceText::push(int32_t token) {
  if (stopped_) return "";
  text_ += stream_.push(token);
  // A stop string can only start at or after emitted_ (anything before it was checked).
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    const size_t at = text_.find(s, emitted_);
    if (at != std::string::npos && at < cut) cut = at;
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    return release(cut);
  }
  // Hold back only the longest tail of the text that could still grow into a stop string.
  size_t hold = 0;
  const std::string_view pending = std::string_view(text_).substr(emitted_);
  for (const auto& s : stops_)
    for (size_t k = std::min(s.empty() ? 0 : s.size() - 1, pending.size()); k > hold; --k)
      if (pending.substr(pending.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
  return release(utf8_boundary_at_or_before(text_, text_.size() - hold));
}

std::string ChoiceText::finish() {
  if (stopped_) return "";
  text_ += stream_.finish();
  return release(text_.size());
}

}  // namespace mambalm::serve
