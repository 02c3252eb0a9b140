#include "infer/stop_strings.h"

#include <algorithm>
#include <string_view>

namespace mambalm {

namespace {

// The largest n <= max_bytes such that text[0, n) does not end inside a character.
size_t boundary_at_or_before(std::string_view s, size_t max_bytes) {
  const size_t n = std::min(max_bytes, s.size());
  if (n == 0) return 0;
  size_t j = n - 1;  // the lead byte of the last character that starts before n
  while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80 && n - j < 4) --j;
  const auto lead = static_cast<unsigned char>(s[j]);
  const size_t len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return j + len <= n ? n : j;
}

}  // namespace

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStrings::release(size_t end) {
  if (end <= emitted_) return "";
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  visible_ += out;
  return out;
}

std::string StopStrings::push(const std::string& piece) {
  if (stopped_) return "";
  text_ += piece;
  // A stop string can only start at or after emitted_ (anything before it was checked); the
  // earliest one wins, the longest at the same place.
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    const size_t at = text_.find(s, emitted_);
    if (at != std::string::npos && (at < cut || (at == cut && s.size() > matched_.size()))) {
      cut = at;
      matched_ = s;
    }
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    return release(cut);
  }
  // Hold back only the longest tail of the text that could still grow into a stop string.
  size_t hold = 0;
  const std::string_view pending = std::string_view(text_).substr(emitted_);
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - 1, pending.size()); k > hold; --k)
      if (pending.substr(pending.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
  return release(boundary_at_or_before(text_, text_.size() - hold));
}

std::string StopStrings::finish() {
  if (stopped_) return "";
  return release(text_.size());
}

}  // namespace mambalm
