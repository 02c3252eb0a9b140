// TextStream: decode everything so far, emit what is new up to the last complete character.
// Decoding the whole sequence each time (not token by token) keeps tokenizers whose pieces
// depend on their neighbours (SentencePiece's leading space, byte fallback) exact.
#include "infer/text_stream.h"

#include <string_view>
#include <utility>

namespace mambalm {

namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Bytes of the character a lead byte starts (1 for ASCII and for bytes that are not leads).
size_t utf8_length(unsigned char lead) { return lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1; }

// Where the text may be cut without splitting its last character: text.size(), or the offset
// of the last character's lead byte when its continuation bytes have not all arrived. The scan
// for that lead byte stops at `emitted` (bytes already out are never taken back, even invalid ones).
size_t complete_end(const std::string& text, size_t emitted) {
  size_t lead = text.size();
  while (lead > emitted && is_continuation(static_cast<unsigned char>(text[lead - 1]))) --lead;
  if (lead == emitted) return text.size();
  const size_t start = lead - 1;  // the last character's first byte
  return text.size() - start < utf8_length(static_cast<unsigned char>(text[start])) ? start : text.size();
}

// SentencePiece (and tokenizer.json's ByteFallback decoder) turn the bytes of an unfinished
// character into U+FFFD instead of keeping them, and the next token may turn that U+FFFD back
// into the character ("f" + <0xCA> decodes to "f\uFFFD", + <0xAC> to "f\u02AC"). So trailing
// U+FFFDs are held back too, until a later token settles them or finish() releases them.
size_t settled_end(const std::string& text, size_t emitted) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  size_t end = complete_end(text, emitted);
  while (end >= emitted + kReplacement.size() && std::string_view(text).substr(end - kReplacement.size(), kReplacement.size()) == kReplacement)
    end -= kReplacement.size();
  return end;
}

}  // namespace

TextStream::TextStream(DecodeFn decode) : decode_(std::move(decode)) {}

std::string TextStream::push(int32_t token) {
  tokens_.push_back(token);
  text_ = decode_(tokens_);
  const size_t end = settled_end(text_, emitted_);
  if (end <= emitted_) return {};
  std::string piece = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return piece;
}

std::string TextStream::finish() {
  if (emitted_ >= text_.size()) return {};
  std::string rest = text_.substr(emitted_);
  emitted_ = text_.size();
  return rest;
}

}  // namespace mambalm
