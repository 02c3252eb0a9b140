// Streaming detokenization: generated token ids in, newly completed text out. A byte-level
// token may end inside a multi-byte UTF-8 character that the next token completes, so each
// push decodes every token so far and returns only the new complete characters; the bytes of
// an unfinished character are held back until a later token finishes it. Decoders that write
// such bytes as U+FFFD (SentencePiece's byte fallback) get their trailing U+FFFDs held back too.
//
// The decoder is passed in as a function (this layer does not depend on tokenizer/): for a
// Tokenizer t, [&](const std::vector<int32_t>& ids) { return t.decode(ids); }.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mambalm {

class TextStream {
 public:
  using DecodeFn = std::function<std::string(const std::vector<int32_t>&)>;

  explicit TextStream(DecodeFn decode);

  // Adds one token; returns the text it completes (empty while a character is unfinished).
  std::string push(int32_t token);
  // The held-back bytes of a character no token completed (empty when the text ended on a
  // character boundary); afterwards the stream has emitted the whole decoded text.
  std::string finish();

  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  DecodeFn decode_;
  std::vector<int32_t> tokens_;  // every token pushed so far
  std::string text_;             // decode(tokens_) after the last push
  size_t emitted_ = 0;           // bytes of text_ already returned
};

}  // namespace mambalm
