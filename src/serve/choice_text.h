// The text of one choice as its tokens arrive: detokenized incrementally (TextStream), cut at
// the first stop string (StopStrings, which holds back a tail that could begin one until the
// next token decides it), so a streamed client never sees the stop string or anything after it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "infer/stop_strings.h"
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
  bool stopped() const { return stops_.stopped(); }
  // Everything made visible so far.
  const std::string& visible() const { return stops_.visible(); }

 private:
  TextStream stream_;
  StopStrings stops_;
};

}  // namespace mambalm::serve
