// UTF-8 checks for text that crosses the HTTP boundary: request bodies are rejected when not
// UTF-8, and streamed text is only ever cut on character boundaries.
#pragma once
#include <cstddef>
#include <string_view>

namespace mambalm::serve {

// Byte offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points past U+10FFFF included), or npos when the text is valid.
size_t first_invalid_utf8(std::string_view text);

// The largest n <= max_bytes such that text[0, n) ends on a character boundary.
size_t utf8_boundary_at_or_before(std::string_view text, size_t max_bytes);

}  // namespace mambalm::serve
