// Template text to tokens, with Jinja's whitespace rules as transformers configures them:
// trim_blocks (the newline after a block tag or comment is dropped), lstrip_blocks (spaces and
// tabs before a block tag or comment at the start of a line are dropped), `-` on a tag's side
// strips all whitespace on that side, and one trailing newline of the template is dropped.
#pragma once
#include <string>
#include <vector>

namespace mambalm::jinja {

struct Token {
  enum class Kind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };
  Kind kind;
  std::string text;  // Text: the literal text; String: the decoded value; Name/Op/numbers: as written
  int line = 1;      // 1-based line of the template where the token starts
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws TemplateError (naming `origin` and the line) on an unclosed tag or string, or a
// character that no expression may contain.
std::vector<Token> tokenize(const std::string& source, const std::string& origin, LexOptions options = {});

}  // namespace mambalm::jinja
