#include "tokenizer/byte_level.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/utf8.h"

namespace mambalm {

namespace {

// bytes_to_unicode() of GPT-2: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order.
struct ByteLevelTable {
  uint32_t byte_to_cp[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteLevelTable() {
    uint32_t extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? b : 256 + extra++;
      cp_to_byte[byte_to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteLevelTable& table() {
  static const ByteLevelTable t;
  return t;
}

class ByteLevelTokenizer final : public Tokenizer {
 public:
  explicit ByteLevelTokenizer(ByteLevelSpec spec) : s_(std::move(spec)), added_(s_.added, s_.source) {
    if (s_.vocab_size == 0) s_.vocab_size = std::max<int64_t>(s_.model.max_id(), added_.max_id()) + 1;
  }

  std::vector<int32_t> encode(std::string_view text, bool allow_special) const override {
    utf8::validate(text, s_.kind + " tokenizer input");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    added_.encode(text, allow_special, ids, [this](std::string_view piece, std::vector<int32_t>& out) { encode_text(piece, out); });
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (const std::string* added = added_.text_of(id)) {
        out += *added;
        continue;
      }
      const std::string* bytes = s_.model.token_bytes(id);
      if (!bytes)
        fail(s_.source, "cannot decode token id " + std::to_string(id),
             "ids must be below the vocabulary size " + std::to_string(s_.vocab_size) + " and name a token");
      out += *bytes;
    }
    return out;
  }

  std::vector<int32_t> add_special_tokens(std::vector<int32_t> ids) const override { return s_.post.apply(std::move(ids)); }
  int64_t vocab_size() const override { return s_.vocab_size; }
  int32_t bos_id() const override { return s_.bos; }
  int32_t eos_id() const override { return s_.eos; }
  int32_t pad_id() const override { return s_.pad; }
  std::string kind() const override { return s_.kind; }

 private:
  void encode_text(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    // HF normalizes the text between added tokens, before the pre-tokenizer.
    std::string normalized;
    for (UnicodeForm form : s_.normalizers) {
      normalized = unicode_normalize(text, form, s_.source);
      text = normalized;
    }
    std::string prefixed;
    if (s_.add_prefix_space && text[0] != ' ') {
      prefixed = " ";
      prefixed += text;
      text = prefixed;
    }
    std::vector<std::string_view> pieces, refined;
    if (s_.splits.empty()) {
      pieces.push_back(text);
    } else {
      s_.splits[0].split(text, pieces);
      for (size_t k = 1; k < s_.splits.size(); ++k) {
        refined.clear();
        for (std::string_view p : pieces) s_.splits[k].split(p, refined);
        pieces.swap(refined);
      }
    }
    for (std::string_view p : pieces) s_.model.encode_piece(p, ids);
  }

  ByteLevelSpec s_;
  AddedTokenMatcher added_;
};

}  // namespace

bool byte_level_to_bytes(std::string_view mapped, std::string& bytes) {
  bytes.clear();
  const ByteLevelTable& t = table();
  for (size_t i = 0; i < mapped.size();) {
    const uint32_t cp = utf8::next(mapped, i);
    auto it = t.cp_to_byte.find(cp);
    if (it == t.cp_to_byte.end()) return false;
    bytes += static_cast<char>(it->second);
  }
  return true;
}

std::unique_ptr<Tokenizer> make_byte_level_tokenizer(ByteLevelSpec spec) {
  return std::make_unique<ByteLevelTokenizer>(std::move(spec));
}

}  // namespace mambalm
