#include "tokenizer/byte_level.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "core/limits.h"
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

bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class ByteLevelTokenizer final : public Tokenizer {
 public:
  explicit ByteLevelTokenizer(ByteLevelSpec spec) : s_(std::move(spec)) {
    int64_t max_id = s_.model.max_id();
    for (const AddedToken& a : s_.added) {
      check(!a.content.empty(), s_.source, "added token " + std::to_string(a.id) + " is empty");
      limits::in_range(a.id, 0, limits::kMaxTokenId, s_.source, "added token '" + a.content + "' id");
      max_id = std::max<int64_t>(max_id, a.id);
      by_content_[a.content] = static_cast<int32_t>(&a - s_.added.data());
      first_bytes_[static_cast<unsigned char>(a.content[0])] = true;
      max_len_ = std::max(max_len_, a.content.size());
      if (a.id >= 0) decode_added_[a.id] = a.content;
    }
    if (s_.vocab_size == 0) s_.vocab_size = max_id + 1;
  }

  std::vector<int32_t> encode(std::string_view text, bool allow_special) const override {
    utf8::validate(text, s_.kind + " tokenizer input");
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t start = 0, end = 0;
      const AddedToken* tok = s_.added.empty() ? nullptr : find_added(text, pos, allow_special, start, end);
      encode_text(text.substr(pos, (tok ? start : text.size()) - pos), ids);
      if (!tok) break;
      ids.push_back(tok->id);
      pos = end;
    }
    return ids;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (!decode_added_.empty()) {
        auto it = decode_added_.find(id);
        if (it != decode_added_.end()) {
          out += it->second;
          continue;
        }
      }
      const std::string* bytes = s_.model.token_bytes(id);
      if (!bytes)
        fail(s_.source, "cannot decode token id " + std::to_string(id),
             "ids must be below the vocabulary size " + std::to_string(s_.vocab_size) + " and name a token");
      out += *bytes;
    }
    return out;
  }

  int64_t vocab_size() const override { return s_.vocab_size; }
  int32_t bos_id() const override { return s_.bos; }
  int32_t eos_id() const override { return s_.eos; }
  int32_t pad_id() const override { return s_.pad; }
  std::string kind() const override { return s_.kind; }

 private:
  // Leftmost added token at or after `pos` (longest on ties), with lstrip/rstrip whitespace.
  const AddedToken* find_added(std::string_view text, size_t pos, bool allow_special, size_t& start,
                               size_t& end) const {
    for (size_t i = pos; i < text.size(); ++i) {
      if (!first_bytes_[static_cast<unsigned char>(text[i])]) continue;
      const size_t longest = std::min(max_len_, text.size() - i);
      for (size_t len = longest; len >= 1; --len) {
        auto it = by_content_.find(std::string(text.substr(i, len)));
        if (it == by_content_.end()) continue;
        const AddedToken& a = s_.added[it->second];
        if (a.special && !allow_special) continue;
        start = i, end = i + len;
        if (a.lstrip)
          while (start > pos && is_space_byte(text[start - 1])) --start;
        if (a.rstrip)
          while (end < text.size() && is_space_byte(text[end])) ++end;
        return &a;
      }
    }
    return nullptr;
  }

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
  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_map<int32_t, std::string> decode_added_;
  bool first_bytes_[256] = {};
  size_t max_len_ = 0;
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
