// generate --prompts-file: one prompt per line.
#pragma once
#include <string>
#include <vector>

namespace mambalm::cli {

// The prompts of a text file, one per line: a trailing '\r' is dropped and empty lines are
// skipped. The file must be UTF-8 (an error names the byte and line of the first bad sequence)
// and hold at least one prompt.
std::vector<std::string> read_prompt_lines(const std::string& path);

}  // namespace mambalm::cli
