// One interface over every tokenizer a model directory may carry: SentencePiece .model files,
// Hugging Face tokenizer.json byte-level BPE, tiktoken rank files, GPT-2 encoder.json +
// vocab.bpe, and raw bytes. Encoding never adds BOS/EOS by itself; callers ask for them
// (add_special_tokens, or the ids themselves).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mambalm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text (UTF-8; invalid UTF-8 is an error naming the byte offset) -> ids. Special-token text
  // such as "<|endoftext|>" is matched as one token only when `allow_special` is true.
  virtual std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const = 0;
  // `ids` of one text with the special tokens the tokenizer's files ask for around it, as
  // transformers' encode(text, add_special_tokens=True) places them: a tokenizer.json's
  // post_processor (Llama-2: BOS first; BERT: [CLS] ... [SEP]; Llama-3's ByteLevel: none). The
  // formats without a post-processor add none.
  virtual std::vector<int32_t> add_special_tokens(std::vector<int32_t> ids) const { return ids; }
  // Ids -> text. Byte-level pieces that do not complete a UTF-8 sequence are kept as bytes.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Every id is < vocab_size().
  virtual int64_t vocab_size() const = 0;
  // -1 when the tokenizer has no such token.
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t pad_id() const = 0;
  // "sentencepiece", "hf-bpe", "tiktoken", "gpt2", "bytes".
  virtual std::string kind() const = 0;
};

// Decodes generated ids: ids past the tokenizer's vocabulary (rows a model pads its embedding
// with, which sampling can still pick) decode to nothing instead of being an error.
std::string decode_generated(const Tokenizer& tokenizer, const std::vector<int32_t>& ids);

// Opens a tokenizer from a path: a model directory (tokenizer.json, tokenizer.model, or
// encoder.json + vocab.bpe inside it), a .model, a tokenizer.json, a .tiktoken file, or the
// word "bytes". Throws naming the path when nothing there is a tokenizer.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path);

}  // namespace mambalm
