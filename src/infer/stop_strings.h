// Stop strings over streamed text (llama.cpp's --reverse-prompt/--stop, OpenAI's `stop`): text
// arrives in pieces (a token's worth at a time), and is released as soon as it is known not to
// be part of a stop string. At the first stop string the stream ends: neither it nor anything
// after it is ever released. A stop string may span several pieces; a tail of the text that is
// the start of some stop string is held back until the next piece decides it, and released
// by finish() when no more text comes. Text is only ever cut on UTF-8 character boundaries.
#pragma once
#include <string>
#include <vector>

namespace mambalm {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);  // empty strings are ignored

  // Adds text; returns the newly releasable part (possibly empty). After a stop, returns "".
  std::string push(const std::string& piece);
  // The held-back tail once no more text comes (empty after a stop string).
  std::string finish();
  bool stopped() const { return stopped_; }
  // The stop string that ended the text (empty while none has).
  const std::string& matched() const { return matched_; }
  // Everything released so far.
  const std::string& visible() const { return visible_; }

 private:
  std::string release(size_t end);  // text_[emitted_, end) becomes visible

  std::vector<std::string> stops_;
  std::string text_;    // all text pushed so far
  size_t emitted_ = 0;  // bytes of text_ released
  std::string visible_;
  std::string matched_;
  bool stopped_ = false;
};

}  // namespace mambalm
