#include "prompts_file.h"

#include <algorithm>

#include "core/error.h"
#include "io/atomic_file.h"
#include "tokenizer/utf8.h"

namespace mambalm::cli {

std::vector<std::string> read_prompt_lines(const std::string& path) {
  const std::string text = io::read_text_file(path);
  const size_t bad = utf8::find_invalid(text);
  if (bad != std::string::npos) {
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
    fail(path, "invalid UTF-8 at byte " + std::to_string(bad) + " (line " + std::to_string(line) +
                   "); a prompts file is UTF-8 text, one prompt per line");
  }
  std::vector<std::string> prompts;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(std::move(line));
    begin = end + 1;
  }
  check(!prompts.empty(), path, "no prompts: the file is empty or has only empty lines (one prompt per line)");
  return prompts;
}

}  // namespace mambalm::cli
