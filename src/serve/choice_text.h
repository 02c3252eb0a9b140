// The text of one choice as its tokens arrive: detokenized incrementally (TextStream), cut at
// the first stop string. A tail of the text that is the start of a stop string is held back
// until the next token decides it, so a streamed client never sees the stop string or anything
// after it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "infer/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::serve {

class ChoiceText {
 public:
  ChoiceText(const Tokenizer& tokenizer, std::vector<std::string> stops);

  // Adds a generated token; returns the newly visible text (possibly empty).
  std::string push(int32_t token);
  // The held-back text once no more tokens come (empty after a stop string).
  std::string finish();
  bool stopped() const { return stopped_; }
  // Everything made visible so far.
  const std::string& visible() const { return visible_; }

 private:
  std::string release(size_t end);  // text_[emitted_, end) becomes visible

  TextStream stream_;
  std::vector<std::string> stops_;
  std::string text_;       // all decoded text so far
  size_t emitted_ = 0;     // bytes of text_ made visible
  std::string visible_;
  bool stopped_ = false;
};

}  // namespace mambalm::serve
