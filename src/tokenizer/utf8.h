// UTF-8 checks and conversions shared by the tokenizers. Tokenizers reject invalid UTF-8 up
// front (naming the byte offset) instead of letting a regex engine or a library guess.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mambalm::utf8 {

// Byte offset of the first invalid sequence (overlong forms, surrogates and code points past
// U+10FFFF are invalid), or npos when `text` is valid UTF-8.
size_t find_invalid(std::string_view text);

// Throws mambalm::Error "where: invalid UTF-8 at byte N (...)" when `text` is not valid UTF-8.
void validate(std::string_view text, const std::string& where);

// Appends the UTF-8 encoding of code point `cp` (must be valid).
void append(std::string& out, uint32_t cp);

// Decodes the code point starting at text[i] of valid UTF-8 and advances i past it.
uint32_t next(std::string_view text, size_t& i);

}  // namespace mambalm::utf8
