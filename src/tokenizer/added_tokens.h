// A tokenizer's added tokens (special tokens and user-added pieces) found in text as HF
// tokenizers finds them: the leftmost match at or after a position, the longest on ties,
// lstrip/rstrip swallowing the whitespace beside it; special tokens only when allowed. Shared by
// the byte-level tokenizers (byte_level.cpp) and BPE with byte fallback (hf_byte_fallback_bpe.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/byte_level.h"

namespace mambalm {

class AddedTokenMatcher {
 public:
  // Checks every token (non-empty, id in range; `source` names the file in errors).
  AddedTokenMatcher(std::vector<AddedToken> added, const std::string& source);

  bool empty() const { return added_.empty(); }
  int64_t max_id() const { return max_id_; }  // -1 without added tokens
  // The text of added token `id`, or null when `id` is not one.
  const std::string* text_of(int32_t id) const;

  // text split at its added tokens: encode_section(piece, ids) for the text between them, each
  // match's id appended in place.
  template <class EncodeSection>
  void encode(std::string_view text, bool allow_special, std::vector<int32_t>& ids, EncodeSection encode_section) const {
    size_t pos = 0;
    while (pos < text.size()) {
      size_t start = 0, end = 0;
      const AddedToken* tok = added_.empty() ? nullptr : find(text, pos, allow_special, start, end);
      encode_section(text.substr(pos, (tok ? start : text.size()) - pos), ids);
      if (!tok) break;
      ids.push_back(tok->id);
      pos = end;
    }
  }

 private:
  // Leftmost added token at or after `pos`, [start, end) its match with stripped whitespace.
  const AddedToken* find(std::string_view text, size_t pos, bool allow_special, size_t& start, size_t& end) const;

  std::vector<AddedToken> added_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, std::string> by_id_;
  bool first_bytes_[256] = {};
  size_t max_len_ = 0;
  int64_t max_id_ = -1;
};

}  // namespace mambalm
