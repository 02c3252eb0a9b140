// Token ids as text: whitespace-separated decimal integers (the format of `--tokens FILE`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mambalm::io {

// Throws naming the file, line and word if something is not a non-negative 32-bit integer.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& where);
std::vector<int32_t> read_token_ids(const std::string& path);

}  // namespace mambalm::io
