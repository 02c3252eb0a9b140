// Unicode normalization forms (NFC, NFD, NFKC, NFKD), as the "normalizer" steps of Hugging Face
// tokenizer.json files use them, through Debian's libutf8proc.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace mambalm {

enum class UnicodeForm { NFC, NFD, NFKC, NFKD };

// "NFC", "NFD", "NFKC", "NFKD" (tokenizer.json normalizer type names); nullopt otherwise.
std::optional<UnicodeForm> unicode_form_named(std::string_view name);

// `text` (valid UTF-8, may hold NUL bytes) in normalization form `form`. Throws naming `where`
// when the library refuses the text.
std::string unicode_normalize(std::string_view text, UnicodeForm form, const std::string& where);

}  // namespace mambalm
