#include "tokenizer/chat_template/jinja_parser.h"

#include <cerrno>
#include <cstdlib>
#include <initializer_list>

#include "tokenizer/chat_template/jinja_error.h"

namespace mambalm::jinja {

namespace {

using TK = Token::Kind;
constexpr int kMaxNesting = 200;  // deeper templates are refused, not a stack overflow

ExprPtr make(Expr::Kind kind, int line, std::string name = "") {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  e->name = std::move(name);
  return e;
}

ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b) {
  auto e = make(Expr::Kind::Binary, a->line, op);
  e->args.push_back(std::move(a));
  e->args.push_back(std::move(b));
  return e;
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& origin) : t_(tokens), origin_(origin) {}

  Body program() {
    std::string end;
    Body body = until({}, end, 0);
    return body;
  }

 private:
  struct Nest {
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) p_.error("the template nests deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~Nest() { --p_.depth_; }
    Parser& p_;
  };

  const Token& peek(size_t ahead = 0) const {
    const size_t i = pos_ + ahead;
    return i < t_.size() ? t_[i] : t_.back();
  }
  const Token& take() {
    const Token& t = t_[pos_];
    if (pos_ + 1 < t_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op, size_t ahead = 0) const { return peek(ahead).kind == TK::Op && peek(ahead).text == op; }
  bool is_name(const char* n, size_t ahead = 0) const { return peek(ahead).kind == TK::Name && peek(ahead).text == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    take();
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    take();
    return true;
  }

  [[noreturn]] void error(const std::string& what) const { throw TemplateError(origin_, peek().line, what); }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TK::Text: return "text";
      case TK::VarBegin: return "'{{'";
      case TK::VarEnd: return "'}}'";
      case TK::BlockBegin: return "'{%'";
      case TK::BlockEnd: return "'%}'";
      case TK::String: return "a string";
      case TK::End: return "the end of the template";
      default: return "'" + t.text + "'";
    }
  }

  void expect_op(const char* op) {
    if (!accept_op(op)) error(std::string("expected '") + op + "', found " + describe(peek()));
  }
  void expect(TK kind, const char* what) {
    if (peek().kind != kind) error(std::string("expected ") + what + ", found " + describe(peek()));
    take();
  }
  std::string expect_name() {
    if (peek().kind != TK::Name) error("expected a name, found " + describe(peek()));
    return take().text;
  }

  // Statements up to a {% tag %} named in `ends` (consumed up to its name, stored in `found`).
  Body until(std::initializer_list<const char*> ends, std::string& found, int opened_at) {
    Nest nest(*this);
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == TK::End) {
        if (ends.size() == 0) return body;
        throw TemplateError(origin_, opened_at, std::string("missing {% ") + *(ends.end() - 1) + " %} for the tag opened here");
      }
      if (t.kind == TK::Text) {
        auto s = stmt(Stmt::Kind::Text, t.line);
        s->text = take().text;
        body.push_back(std::move(s));
      } else if (t.kind == TK::VarBegin) {
        take();
        auto s = stmt(Stmt::Kind::Output, t.line);
        s->expr = expression();
        expect(TK::VarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.kind == TK::BlockBegin) {
        const Token& name = peek(1);
        if (name.kind != TK::Name) {
          take();
          error("expected a tag name after '{%', found " + describe(peek()));
        }
        for (const char* e : ends)
          if (name.text == e) {
            take();
            take();
            found = e;
            return body;
          }
        take();
        body.push_back(statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  static StmtPtr stmt(Stmt::Kind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  StmtPtr statement() {
    const Token& name = take();
    const std::string& tag = name.text;
    const int line = name.line;
    std::string found;
    if (tag == "if") {
      auto s = stmt(Stmt::Kind::If, line);
      s->conditions.push_back(expression());
      expect(TK::BlockEnd, "'%}'");
      while (true) {
        s->bodies.push_back(until({"elif", "else", "endif"}, found, line));
        if (found == "elif") {
          s->conditions.push_back(expression());
          expect(TK::BlockEnd, "'%}'");
        } else if (found == "else") {
          expect(TK::BlockEnd, "'%}'");
          s->bodies.push_back(until({"endif"}, found, line));
          break;
        } else {
          break;
        }
      }
      expect(TK::BlockEnd, "'%}'");
      return s;
    }
    if (tag == "for") {
      auto s = stmt(Stmt::Kind::For, line);
      s->targets.push_back(expect_name());
      while (accept_op(",")) s->targets.push_back(expect_name());
      if (!accept_name("in")) error("expected 'in' in the for tag, found " + describe(peek()));
      s->expr = expression(false);
      if (accept_name("if")) s->condition = expression(false);
      if (is_name("recursive")) error("recursive for loops are not supported");
      expect(TK::BlockEnd, "'%}'");
      s->bodies.push_back(until({"else", "endfor"}, found, line));
      if (found == "else") {
        expect(TK::BlockEnd, "'%}'");
        s->bodies.push_back(until({"endfor"}, found, line));
      }
      expect(TK::BlockEnd, "'%}'");
      return s;
    }
    if (tag == "set") {
      auto s = stmt(Stmt::Kind::Set, line);
      s->targets.push_back(expect_name());
      if (accept_op(".")) s->attribute = expect_name();
      else
        while (accept_op(",")) s->targets.push_back(expect_name());
      if (accept_op("=")) {
        s->expr = expression();
        if (is_op(",")) {  // set a = x, y: a tuple
          auto tuple = make(Expr::Kind::Tuple, line);
          tuple->args.push_back(std::move(s->expr));
          while (accept_op(",")) tuple->args.push_back(expression());
          s->expr = std::move(tuple);
        }
        expect(TK::BlockEnd, "'%}'");
        return s;
      }
      if (s->targets.size() != 1) error("a {% set %} block assigns one name");
      expect(TK::BlockEnd, "'%}'");
      s->bodies.push_back(until({"endset"}, found, line));
      expect(TK::BlockEnd, "'%}'");
      return s;
    }
    if (tag == "macro") {
      auto s = stmt(Stmt::Kind::Macro, line);
      s->text = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        s->targets.push_back(expect_name());
        s->defaults.push_back(accept_op("=") ? expression() : nullptr);
        if (!accept_op(",")) break;
      }
      expect_op(")");
      expect(TK::BlockEnd, "'%}'");
      s->bodies.push_back(until({"endmacro"}, found, line));
      if (peek().kind == TK::Name) take();  // {% endmacro name %}
      expect(TK::BlockEnd, "'%}'");
      return s;
    }
    if (tag == "break" || tag == "continue") {
      expect(TK::BlockEnd, "'%}'");
      return stmt(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
    }
    if (tag == "generation") {  // transformers' assistant-mask marker: renders its body
      auto s = stmt(Stmt::Kind::Block, line);
      expect(TK::BlockEnd, "'%}'");
      s->bodies.push_back(until({"endgeneration"}, found, line));
      expect(TK::BlockEnd, "'%}'");
      return s;
    }
    throw TemplateError(origin_, line, "unknown or unsupported tag '" + tag + "'");
  }

  // ---- expressions ------------------------------------------------------------------------

  ExprPtr expression(bool with_ternary = true) {
    Nest nest(*this);
    ExprPtr e = parse_or();
    if (with_ternary && is_name("if")) {
      take();
      auto t = make(Expr::Kind::Ternary, e->line);
      t->args.push_back(std::move(e));
      t->args.push_back(parse_or());
      t->args.push_back(accept_name("else") ? expression() : nullptr);
      return t;
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (accept_name("or")) e = binary("or", std::move(e), parse_and());
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (accept_name("and")) e = binary("and", std::move(e), parse_not());
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest nest(*this);
      auto e = make(Expr::Kind::Unary, take().line, "not");
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    for (int n = 0;; ++n) {
      std::string op;
      for (const char* o : {"==", "!=", "<", ">", "<=", ">="})
        if (is_op(o)) op = o;
      if (!op.empty()) {
        take();
      } else if (is_name("in")) {
        take();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        take();
        take();
        op = "not in";
      } else {
        return e;
      }
      if (n > 0) error("chained comparisons (a < b < c) are not supported; write (a < b) and (b < c)");
      e = binary(op, std::move(e), parse_math1());
    }
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = take().text;
      e = binary(op, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (accept_op("~")) e = binary("~", std::move(e), parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = take().text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (accept_op("**")) e = binary("**", std::move(e), parse_unary(true));
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = take();
      e = make(Expr::Kind::Unary, t.line, t.text);
      e->args.push_back(parse_unary(false));
    } else {
      e = postfix(primary());
    }
    return with_filter ? filters(std::move(e)) : std::move(e);
  }

  ExprPtr primary() {
    const Token& t = peek();
    switch (t.kind) {
      case TK::Name: {
        take();
        auto e = make(Expr::Kind::Literal, t.line);
        if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
        else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
        else if (t.text == "none" || t.text == "None") e->value = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        return e;
      }
      case TK::String: {
        std::string s = take().text;
        while (peek().kind == TK::String) s += take().text;  // adjacent literals concatenate
        auto e = make(Expr::Kind::Literal, t.line);
        e->value = Value::string(std::move(s));
        return e;
      }
      case TK::Int: {
        take();
        auto e = make(Expr::Kind::Literal, t.line);
        errno = 0;
        const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno == ERANGE) error("integer literal " + t.text + " is too large");
        e->value = Value::integer(v);
        return e;
      }
      case TK::Float: {
        take();
        auto e = make(Expr::Kind::Literal, t.line);
        e->value = Value::real(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case TK::Op: {
        if (t.text == "(") {
          take();
          if (accept_op(")")) return make(Expr::Kind::Tuple, t.line);
          ExprPtr e = expression();
          if (is_op(",")) {
            auto tuple = make(Expr::Kind::Tuple, t.line);
            tuple->args.push_back(std::move(e));
            while (accept_op(",") && !is_op(")")) tuple->args.push_back(expression());
            e = std::move(tuple);
          }
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          take();
          auto e = make(Expr::Kind::List, t.line);
          while (!is_op("]")) {
            e->args.push_back(expression());
            if (!accept_op(",")) break;
          }
          expect_op("]");
          return e;
        }
        if (t.text == "{") {
          take();
          auto e = make(Expr::Kind::Dict, t.line);
          while (!is_op("}")) {
            e->args.push_back(expression());
            expect_op(":");
            e->args.push_back(expression());
            if (!accept_op(",")) break;
          }
          expect_op("}");
          return e;
        }
        break;
      }
      default: break;
    }
    error("expected an expression, found " + describe(t));
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const int line = take().line;
        if (peek().kind == TK::Int) {  // x.0 is x[0]
          auto idx = make(Expr::Kind::Index, line);
          idx->args.push_back(std::move(e));
          idx->args.push_back(primary());
          e = std::move(idx);
        } else {
          auto a = make(Expr::Kind::Attr, line, expect_name());
          a->args.push_back(std::move(e));
          e = std::move(a);
        }
      } else if (is_op("[")) {
        e = subscript(std::move(e));
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr target) {
    const int line = take().line;  // '['
    ExprPtr parts[3];
    int colons = 0;
    if (!is_op(":")) parts[0] = expression();
    while (colons < 2 && accept_op(":")) {
      ++colons;
      if (!is_op(":") && !is_op("]")) parts[colons] = expression();
    }
    expect_op("]");
    if (colons == 0) {
      if (!parts[0]) error("empty subscript '[]'");
      auto e = make(Expr::Kind::Index, line);
      e->args.push_back(std::move(target));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(Expr::Kind::Slice, line);
    e->args.push_back(std::move(target));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // Arguments "(a, b, key=value)" into e->args (after what is already there) and e->kwargs.
  void call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == TK::Name && is_op("=", 1)) {
        std::string key = take().text;
        take();
        e.kwargs.emplace_back(std::move(key), expression());
      } else {
        if (!e.kwargs.empty()) error("a positional argument follows a keyword argument");
        e.args.push_back(expression());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr call(ExprPtr callee) {
    auto e = make(Expr::Kind::Call, callee->line);
    e->args.push_back(std::move(callee));
    call_args(*e);
    return e;
  }

  ExprPtr filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        const int line = take().line;
        auto f = make(Expr::Kind::Filter, line, expect_name());
        f->args.push_back(std::move(e));
        if (is_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        const int line = take().line;
        auto t = make(Expr::Kind::Test, line);
        t->negated = accept_name("not");
        t->name = expect_name();
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          call_args(*t);
        } else if (starts_test_argument()) {
          t->args.push_back(postfix(primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = call(std::move(e));
      } else {
        return e;
      }
    }
  }

  // `x is equalto 'a'`: a test may take one argument without parentheses.
  bool starts_test_argument() const {
    const Token& t = peek();
    if (t.kind == TK::String || t.kind == TK::Int || t.kind == TK::Float) return true;
    if (t.kind == TK::Op) return t.text == "[" || t.text == "{";
    if (t.kind != TK::Name) return false;
    for (const char* kw : {"else", "or", "and", "if", "not", "in", "is"})
      if (t.text == kw) return false;
    return true;
  }

  const std::vector<Token>& t_;
  const std::string& origin_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& origin) { return Parser(tokens, origin).program(); }

}  // namespace mambalm::jinja
