// The byte-level BPE tokenizer behind three file formats: tiktoken rank files, GPT-2
// encoder.json + vocab.bpe, and tokenizer.json byte-level BPE. Loaders (tiktoken_tokenizer.cpp,
// gpt2_tokenizer.cpp, hf_bpe_tokenizer.cpp) fill a ByteLevelSpec; encoding is the same for all:
// validate UTF-8 -> split out added/special tokens -> split regexes -> BPE merges per piece.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/byte_pair.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/special_token_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_normalize.h"

namespace mambalm {

// GPT-2's byte <-> printable-unicode mapping, used by encoder.json, vocab.bpe and tokenizer.json.
// Returns false when `mapped` holds a character outside the 256 mapped ones.
bool byte_level_to_bytes(std::string_view mapped, std::string& bytes);

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = true;   // matched only with allow_special; otherwise always matched
  bool lstrip = false;   // the match swallows whitespace on its left
  bool rstrip = false;   // ... and on its right
};

struct ByteLevelSpec {
  std::string kind;    // "tiktoken", "gpt2", "hf-bpe"
  std::string source;  // the file, for error messages
  BytePairModel model;
  std::vector<SplitRegex> splits;  // applied in order, each refining the pieces of the last
  bool add_prefix_space = false;   // HF ByteLevel: a space before text that lacks one
  std::vector<UnicodeForm> normalizers;  // HF NFC/NFKC/...: applied in order to text between added tokens
  std::vector<AddedToken> added;
  int64_t vocab_size = 0;          // 0: derived from the largest id
  int32_t bos = -1, eos = -1, pad = -1;
  SpecialTokenTemplate post;       // add_special_tokens(): ids around a text (HF post_processor)
};

std::unique_ptr<Tokenizer> make_byte_level_tokenizer(ByteLevelSpec spec);

}  // namespace mambalm
