// The special tokens a tokenizer puts around one text when asked to (transformers'
// add_special_tokens=True): what Tokenizer::add_special_tokens() applies. Filled from a
// tokenizer.json post_processor (hf_post_processor.h); empty for formats without one.
#pragma once
#include <cstdint>
#include <vector>

namespace mambalm {

struct SpecialTokenTemplate {
  std::vector<int32_t> before, after;  // ids around the text's ids

  std::vector<int32_t> apply(std::vector<int32_t> ids) const {
    if (before.empty() && after.empty()) return ids;
    std::vector<int32_t> out(before);
    out.reserve(before.size() + ids.size() + after.size());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after.begin(), after.end());
    return out;
  }
};

}  // namespace mambalm
