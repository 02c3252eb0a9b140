#include "tokenizer/chat_template/jinja_lexer.h"

#include <cstring>

#include "tokenizer/chat_template/jinja_error.h"
#include "tokenizer/utf8.h"

namespace mambalm::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& origin, LexOptions options)
      : src_(source), origin_(origin), opt_(options) {
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();  // keep_trailing_newline=False
  }

  std::vector<Token> run() {
    bool strip_next = false;  // the previous tag ended with '-'
    while (pos_ < src_.size()) {
      const size_t open = next_open(pos_);
      std::string text = src_.substr(pos_, open - pos_);
      const int text_line = line_;
      const bool at_line_start = pos_ == 0 || src_[pos_ - 1] == '\n';
      advance_to(open);
      if (strip_next) {
        size_t i = 0;
        while (i < text.size() && is_space(text[i])) ++i;
        text.erase(0, i);
      }
      strip_next = false;
      if (open == src_.size()) {
        emit_text(text, text_line);
        break;
      }
      const char kind = src_[open + 1];  // '{', '%' or '#'
      const char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+' && kind != '{' && opt_.lstrip_blocks) {
        const size_t nl = text.rfind('\n');
        const size_t from = nl == std::string::npos ? 0 : nl + 1;
        if (nl != std::string::npos || at_line_start) {
          bool blank = true;
          for (size_t i = from; i < text.size(); ++i) blank = blank && (text[i] == ' ' || text[i] == '\t');
          if (blank) text.erase(from);
        }
      }
      emit_text(text, text_line);
      advance_to(open + 2 + ((sign == '-' || sign == '+') ? 1 : 0));
      if (kind == '#') {
        strip_next = comment();
      } else {
        strip_next = tag(kind == '{');
      }
    }
    out_.push_back({Token::Kind::End, "", line_});
    return std::move(out_);
  }

 private:
  size_t next_open(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return src_.size();
  }

  void advance_to(size_t p) {
    for (; pos_ < p && pos_ < src_.size(); ++pos_)
      if (src_[pos_] == '\n') ++line_;
  }

  void emit_text(const std::string& text, int line) {
    if (!text.empty()) out_.push_back({Token::Kind::Text, text, line});
  }

  [[noreturn]] void error(const std::string& what, int line) const { throw TemplateError(origin_, line, what); }

  // After a block tag or comment: trim_blocks drops one newline.
  void trim_newline() {
    if (opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') advance_to(pos_ + 1);
  }

  // Skips a comment; returns whether it ended with "-#}".
  bool comment() {
    const int start_line = line_;
    const size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) error("unclosed comment '{#'", start_line);
    const bool strip = close > pos_ && src_[close - 1] == '-';
    advance_to(close + 2);
    if (!strip) trim_newline();
    return strip;
  }

  // Lexes the expression tokens of a {{ }} or {% %} tag; returns whether it ended with '-'.
  bool tag(bool variable) {
    const int start_line = line_;
    out_.push_back({variable ? Token::Kind::VarBegin : Token::Kind::BlockBegin, "", line_});
    int depth = 0;
    const char* close = variable ? "}}" : "%}";
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) advance_to(pos_ + 1);
      if (pos_ >= src_.size())
        error(std::string("unclosed '") + (variable ? "{{" : "{%") + "'" + (depth > 0 ? " (a bracket inside it is not closed)" : ""), start_line);
      const char c = src_[pos_];
      if (depth == 0) {
        if (src_.compare(pos_, 2, close) == 0 || (c == '-' && src_.compare(pos_ + 1, 2, close) == 0)) {
          const bool strip = c == '-';
          out_.push_back({variable ? Token::Kind::VarEnd : Token::Kind::BlockEnd, "", line_});
          advance_to(pos_ + (strip ? 3 : 2));
          if (!variable && !strip) trim_newline();
          return strip;
        }
      }
      if (c == '\'' || c == '"') {
        string_literal(c);
      } else if (is_digit(c)) {
        number();
      } else if (is_name_start(c)) {
        const size_t b = pos_;
        size_t e = pos_;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        out_.push_back({Token::Kind::Name, src_.substr(b, e - b), line_});
        advance_to(e);
      } else {
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(pos_, 2, t) == 0) op = t;
        if (op.empty()) {
          if (!std::strchr("+-*/%~<>=()[]{},.:|", c)) {
            std::string shown(1, c);
            if (static_cast<unsigned char>(c) >= 0x80) shown = "non-ASCII byte";
            error("unexpected character '" + shown + "' in an expression", line_);
          }
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') ++depth;
          if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        }
        out_.push_back({Token::Kind::Op, op, line_});
        advance_to(pos_ + op.size());
      }
    }
  }

  void number() {
    size_t e = pos_;
    while (e < src_.size() && is_digit(src_[e])) ++e;
    bool real = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      real = true;
      ++e;
      while (e < src_.size() && is_digit(src_[e])) ++e;
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t f = e + 1;
      if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
      if (f < src_.size() && is_digit(src_[f])) {
        real = true;
        e = f;
        while (e < src_.size() && is_digit(src_[e])) ++e;
      }
    }
    out_.push_back({real ? Token::Kind::Float : Token::Kind::Int, src_.substr(pos_, e - pos_), line_});
    advance_to(e);
  }

  // A quoted string with Python's escapes; the token holds the decoded text.
  void string_literal(char quote) {
    const int start_line = line_;
    std::string value;
    size_t i = pos_ + 1;
    while (true) {
      if (i >= src_.size()) error("unclosed string literal", start_line);
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) error("unclosed string literal", start_line);
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '0': value += '\0'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\n': break;  // a backslash-newline continues the line
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            const int h = i + k < src_.size() ? hex_value(src_[i + k]) : -1;
            if (h < 0) error(std::string("bad \\") + e + " escape in a string literal", line_);
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            error(std::string("\\") + e + " escape names no Unicode character", line_);
          utf8::append(value, cp);
          i += n;
          break;
        }
        default:  // Python keeps unknown escapes as written
          value += '\\';
          value += e;
      }
    }
    out_.push_back({Token::Kind::String, value, start_line});
    advance_to(i + 1);
  }

  std::string src_;
  const std::string& origin_;
  LexOptions opt_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const std::string& origin, LexOptions options) {
  return Lexer(source, origin, options).run();
}

}  // namespace mambalm::jinja
