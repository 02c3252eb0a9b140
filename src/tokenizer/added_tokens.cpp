#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "core/error.h"
#include "core/limits.h"

namespace mambalm {

namespace {

bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> added, const std::string& source) : added_(std::move(added)) {
  for (size_t i = 0; i < added_.size(); ++i) {
    const AddedToken& a = added_[i];
    check(!a.content.empty(), source, "added token " + std::to_string(a.id) + " is empty");
    limits::in_range(a.id, 0, limits::kMaxTokenId, source, "added token '" + a.content + "' id");
    max_id_ = std::max<int64_t>(max_id_, a.id);
    by_content_[a.content] = i;
    first_bytes_[static_cast<unsigned char>(a.content[0])] = true;
    max_len_ = std::max(max_len_, a.content.size());
    by_id_[a.id] = a.content;
  }
}

const std::string* AddedTokenMatcher::text_of(int32_t id) const {
  if (by_id_.empty()) return nullptr;
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

const AddedToken* AddedTokenMatcher::find(std::string_view text, size_t pos, bool allow_special, size_t& start,
                                          size_t& end) const {
  for (size_t i = pos; i < text.size(); ++i) {
    if (!first_bytes_[static_cast<unsigned char>(text[i])]) continue;
    for (size_t len = std::min(max_len_, text.size() - i); len >= 1; --len) {
      auto it = by_content_.find(std::string(text.substr(i, len)));
      if (it == by_content_.end()) continue;
      const AddedToken& a = added_[it->second];
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

}  // namespace mambalm
