#include "io/token_list.h"

#include <cctype>

#include "core/error.h"
#include "io/atomic_file.h"

namespace mambalm::io {

std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& where) {
  std::vector<int32_t> ids;
  size_t i = 0;
  int line = 1;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c)) {
      line += (c == '\n');
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    std::string word = text.substr(i, j - i);
    bool digits = word.size() <= 10;
    for (char d : word) digits = digits && std::isdigit(static_cast<unsigned char>(d));
    int64_t v = digits ? std::stoll(word) : -1;
    if (!digits || v > INT32_MAX) {
      std::string shown = word.size() > 20 ? word.substr(0, 20) + "..." : word;
      fail(where, "line " + std::to_string(line) + ": '" + shown + "' is not a token id", "expected whitespace-separated non-negative integers");
    }
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  check(!ids.empty(), where, "no token ids");
  return ids;
}

std::vector<int32_t> read_token_ids(const std::string& path) { return parse_token_ids(read_text_file(path), path); }

}  // namespace mambalm::io
