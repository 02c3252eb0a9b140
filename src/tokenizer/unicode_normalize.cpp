#include "tokenizer/unicode_normalize.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace mambalm {

std::optional<UnicodeForm> unicode_form_named(std::string_view name) {
  if (name == "NFC") return UnicodeForm::NFC;
  if (name == "NFD") return UnicodeForm::NFD;
  if (name == "NFKC") return UnicodeForm::NFKC;
  if (name == "NFKD") return UnicodeForm::NFKD;
  return std::nullopt;
}

std::string unicode_normalize(std::string_view text, UnicodeForm form, const std::string& where) {
  if (text.empty()) return std::string();
  // Pure ASCII is stable under every form; skip the library (the common case in corpora).
  bool ascii = true;
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return std::string(text);
  // The options of utf8proc_NFC() & co., without NULLTERM so that NUL bytes are ordinary text.
  int options = UTF8PROC_STABLE;
  switch (form) {
    case UnicodeForm::NFC: options |= UTF8PROC_COMPOSE; break;
    case UnicodeForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case UnicodeForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case UnicodeForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  if (n < 0)
    fail(where, std::string("Unicode normalization failed: ") + utf8proc_errmsg(n),
         "the text must be valid UTF-8");
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

}  // namespace mambalm
