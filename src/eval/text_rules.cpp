#include "eval/text_rules.h"

#include "core/error.h"

namespace mambalm::eval {

namespace {

// Decodes the code point starting at text[i] and advances i; throws on invalid UTF-8
// (overlong forms, surrogates and values past U+10FFFF included, as Python's decoder).
char32_t next_code_point(std::string_view text, size_t& i, const std::string& where) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  size_t n = 0;
  char32_t cp = 0, min = 0;
  if (b0 < 0x80) {
    ++i;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 1, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 2, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 3, cp = b0 & 0x07, min = 0x10000;
  } else {
    fail(where, "invalid UTF-8 at byte " + std::to_string(i), "the text must be UTF-8");
  }
  if (i + n >= text.size()) fail(where, "truncated UTF-8 sequence at byte " + std::to_string(i), "the text must be UTF-8");
  for (size_t k = 1; k <= n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) fail(where, "invalid UTF-8 at byte " + std::to_string(i), "the text must be UTF-8");
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    fail(where, "invalid UTF-8 at byte " + std::to_string(i), "the text must be UTF-8");
  i += n + 1;
  return cp;
}

}  // namespace

bool python_isspace(char32_t c) {
  // CPython's _PyUnicode_IsWhitespace: bidirectional class WS, B or S, or category Zs.
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
    case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
    case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

void check_utf8(std::string_view text, const std::string& where) {
  for (size_t i = 0; i < text.size();) next_code_point(text, i, where);
}

int64_t python_len(std::string_view text, const std::string& where) {
  int64_t n = 0;
  for (size_t i = 0; i < text.size(); ++n) next_code_point(text, i, where);
  return n;
}

size_t python_rstrip_size(std::string_view text, const std::string& where) {
  size_t keep = 0;  // end of the last non-space code point
  for (size_t i = 0; i < text.size();) {
    const char32_t c = next_code_point(text, i, where);
    if (!python_isspace(c)) keep = i;
  }
  return keep;
}

int64_t lm_eval_word_count(std::string_view text, const std::string& where) {
  int64_t runs = 0;
  bool in_space = false;
  for (size_t i = 0; i < text.size();) {
    const bool space = python_isspace(next_code_point(text, i, where));
    if (space && !in_space) ++runs;
    in_space = space;
  }
  return runs + 1;
}

}  // namespace mambalm::eval
