// Pre-tokenizer regexes (GPT-2, cl100k, o200k, Llama-3 and the Split patterns of tokenizer.json
// files) compiled with PCRE2 in UTF + UCP mode and JIT. Matching splits text into pieces the
// way tiktoken and HF tokenizers do: every match is a piece, and so is any text between matches.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mambalm {

class SplitRegex {
 public:
  // `where` names the file/field the pattern came from, for error messages.
  SplitRegex(const std::string& pattern, const std::string& where);
  ~SplitRegex();
  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;

  // Appends the pieces of `text` (valid UTF-8, already checked) to `out`, in order; together
  // they cover `text` exactly.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// The published split patterns, written as tiktoken writes them.
extern const char* const kGpt2SplitPattern;    // GPT-2, r50k_base, p50k_base, HF ByteLevel use_regex
extern const char* const kCl100kSplitPattern;  // cl100k_base
extern const char* const kO200kSplitPattern;   // o200k_base

}  // namespace mambalm
