// The evaluator: walks the statement tree, with Jinja's scoping (a for loop's body and a
// macro call get their own scope; `if` does not), Python's operator semantics, and budgets on
// work and output so that no template can run away.
#include <cmath>
#include <limits>
#include <unordered_map>

#include "tokenizer/chat_template/jinja_builtins.h"
#include "tokenizer/chat_template/jinja_error.h"
#include "tokenizer/chat_template/jinja_lexer.h"
#include "tokenizer/chat_template/jinja_parser.h"
#include "tokenizer/chat_template/jinja_template.h"
#include "tokenizer/chat_template/jinja_text.h"
#include "tokenizer/utf8.h"

namespace mambalm::jinja {

namespace {

constexpr int64_t kMaxSteps = 1'000'000;          // expressions and statements per render
constexpr size_t kMaxOutput = size_t{64} << 20;   // bytes of rendered text
constexpr int kMaxCallDepth = 100;                // nested macro calls

[[noreturn]] void bad(const std::string& what) { throw EvalError(what); }

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
};
using FramePtr = std::shared_ptr<Frame>;

enum class Flow { Normal, Break, Continue };

class Evaluator {
 public:
  explicit Evaluator(const Dict& globals) : root_(std::make_shared<Frame>()) {
    for (const auto& [k, v] : globals) root_->vars[k] = v;
  }

  int line() const { return line_; }

  std::string run(const Body& body) {
    std::string out;
    render(body, root_, out);
    return out;
  }

 private:
  void step(int line) {
    line_ = line;
    if (++steps_ > kMaxSteps) bad("the template runs too long (more than 1M steps)");
  }

  Flow render(const Body& body, const FramePtr& frame, std::string& out) {
    for (const StmtPtr& s : body) {
      const Flow f = exec(*s, frame, out);
      if (f != Flow::Normal) return f;
      if (out.size() > kMaxOutput) bad("the template's output passes 64 MiB");
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s, const FramePtr& frame, std::string& out) {
    step(s.line);
    switch (s.kind) {
      case Stmt::Kind::Text: out += s.text; return Flow::Normal;
      case Stmt::Kind::Output: out += eval(*s.expr, frame).str(); return Flow::Normal;
      case Stmt::Kind::If: {
        for (size_t i = 0; i < s.conditions.size(); ++i)
          if (eval(*s.conditions[i], frame).truthy()) return render(s.bodies[i], frame, out);
        if (s.bodies.size() > s.conditions.size()) return render(s.bodies.back(), frame, out);
        return Flow::Normal;
      }
      case Stmt::Kind::For: return exec_for(s, frame, out);
      case Stmt::Kind::Set: {
        Value v;
        if (s.expr) {
          v = eval(*s.expr, frame);
        } else {
          std::string captured;
          render(s.bodies[0], frame, captured);
          v = Value::string(std::move(captured));
        }
        if (!s.attribute.empty()) {
          const Value target = lookup(s.targets[0], frame);
          if (target.kind() != Value::Kind::Namespace)
            bad("cannot set attribute '" + s.attribute + "' on '" + s.targets[0] + "': only namespace() objects take attributes");
          target.set(s.attribute, std::move(v));
        } else {
          assign(s.targets, v, frame);
        }
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: frame->vars[s.text] = macro(s, frame); return Flow::Normal;
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
      case Stmt::Kind::Block: return render(s.bodies[0], frame, out);
    }
    return Flow::Normal;
  }

  void assign(const std::vector<std::string>& names, const Value& v, const FramePtr& frame) {
    if (names.size() == 1) {
      frame->vars[names[0]] = v;
      return;
    }
    if (!v.is_list() || v.items().size() != names.size())
      bad("cannot unpack " + v.type_name() + " into " + std::to_string(names.size()) + " names");
    for (size_t i = 0; i < names.size(); ++i) frame->vars[names[i]] = v.items()[i];
  }

  Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
    const Value iterable = eval(*s.expr, frame);
    List items;
    switch (iterable.kind()) {
      case Value::Kind::Undefined: break;
      case Value::Kind::List: items = iterable.items(); break;
      case Value::Kind::Dict:
        for (const auto& kv : iterable.entries()) items.push_back(Value::string(kv.first));
        break;
      case Value::Kind::String: items = apply_filter("list", iterable, {}).items(); break;
      default: bad("'" + iterable.type_name() + "' object is not iterable");
    }
    if (s.condition) {  // {% for x in xs if cond %}: the loop sees only the items that pass
      List kept;
      for (const Value& item : items) {
        auto probe = std::make_shared<Frame>();
        probe->parent = frame;
        assign(s.targets, item, probe);
        if (eval(*s.condition, probe).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (s.bodies.size() > 1) return render(s.bodies[1], frame, out);
      return Flow::Normal;
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      step(s.line);
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      assign(s.targets, items[static_cast<size_t>(i)], inner);
      inner->vars["loop"] = Value::dict({
          {"index0", Value::integer(i)},
          {"index", Value::integer(i + 1)},
          {"revindex0", Value::integer(n - i - 1)},
          {"revindex", Value::integer(n - i)},
          {"first", Value::boolean(i == 0)},
          {"last", Value::boolean(i == n - 1)},
          {"length", Value::integer(n)},
          {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value()},
          {"nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value()},
          {"cycle", Value::function("loop.cycle", [i](CallArgs& a) {
             if (a.positional.empty()) bad("loop.cycle() needs at least one value");
             return a.positional[static_cast<size_t>(i) % a.positional.size()];
           })},
      });
      if (render(s.bodies[0], inner, out) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  Value macro(const Stmt& s, const FramePtr& frame) {
    std::weak_ptr<Frame> defined_in = frame;
    const Stmt* def = &s;
    return Value::function(s.text, [this, def, defined_in](CallArgs& a) {
      if (++call_depth_ > kMaxCallDepth) bad("macros nest deeper than " + std::to_string(kMaxCallDepth) + " calls");
      auto scope = std::make_shared<Frame>();
      scope->parent = defined_in.lock();
      if (!scope->parent) scope->parent = root_;
      if (a.positional.size() > def->targets.size())
        bad("macro '" + def->text + "' takes " + std::to_string(def->targets.size()) + " arguments");
      for (size_t i = 0; i < def->targets.size(); ++i) {
        Value v = argument(a, i, def->targets[i].c_str(), Value());
        if (v.is_undefined() && def->defaults[i]) v = eval(*def->defaults[i], scope);
        scope->vars[def->targets[i]] = v;
      }
      for (const auto& kw : a.keyword) {
        bool known = false;
        for (const auto& t : def->targets) known = known || t == kw.first;
        if (!known) bad("macro '" + def->text + "' has no argument '" + kw.first + "'");
      }
      std::string out;
      render(def->bodies[0], scope, out);
      --call_depth_;
      return Value::string(std::move(out));
    });
  }

  Value lookup(const std::string& name, const FramePtr& frame) const {
    for (const Frame* f = frame.get(); f; f = f->parent.get()) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return it->second;
    }
    return builtin_global(name);
  }

  CallArgs call_args(const Expr& e, size_t first, const FramePtr& frame) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], frame));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x, frame));
    return a;
  }

  // Every value a template computes stays within the output budget, so that no loop of
  // `x = x + x` can exhaust memory.
  Value eval(const Expr& e, const FramePtr& frame) {
    Value v = eval_unchecked(e, frame);
    if ((v.is_string() && v.as_string().size() > kMaxOutput) || (v.is_list() && v.items().size() > kMaxOutput / 8))
      bad("a value larger than 64 MiB");
    return v;
  }

  Value eval_unchecked(const Expr& e, const FramePtr& frame) {
    step(e.line);
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: return lookup(e.name, frame);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        List items;
        for (const auto& x : e.args) items.push_back(eval(*x, frame));
        return Value::list(std::move(items));
      }
      case Expr::Kind::Dict: {
        Value d = Value::dict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i], frame);
          if (!k.is_string()) bad("dict keys must be strings, not " + k.type_name());
          d.set(k.as_string(), eval(*e.args[i + 1], frame));
        }
        return d;
      }
      case Expr::Kind::Attr: {
        const Value obj = eval(*e.args[0], frame);
        if (obj.is_undefined()) bad(describe(*e.args[0]) + " is undefined (reading ." + e.name + ")");
        return attribute(obj, e.name);
      }
      case Expr::Kind::Index: return index(eval(*e.args[0], frame), eval(*e.args[1], frame), *e.args[0]);
      case Expr::Kind::Slice: return slice(e, frame);
      case Expr::Kind::Call: {
        const Value f = eval(*e.args[0], frame);
        if (f.kind() != Value::Kind::Function) {
          if (f.is_undefined()) bad(describe(*e.args[0]) + " is undefined (called as a function)");
          bad("'" + f.type_name() + "' object is not callable");
        }
        CallArgs a = call_args(e, 1, frame);
        return f.call()(a);
      }
      case Expr::Kind::Filter: {
        const Value v = eval(*e.args[0], frame);
        return apply_filter(e.name, v, call_args(e, 1, frame));
      }
      case Expr::Kind::Test: {
        const Value v = eval(*e.args[0], frame);
        return Value::boolean(apply_test(e.name, v, call_args(e, 1, frame)) != e.negated);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.args[0], frame);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (!v.is_number()) bad("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v.kind() == Value::Kind::Bool ? Value::integer(v.as_int()) : v;
        if (v.kind() == Value::Kind::Float) return Value::real(-v.as_double());
        if (v.as_int() == std::numeric_limits<int64_t>::min()) bad("integer overflow in unary '-' (values past 64 bits are not supported)");
        return Value::integer(-v.as_int());
      }
      case Expr::Kind::Binary: return binary(e, frame);
      case Expr::Kind::Ternary: {
        if (eval(*e.args[1], frame).truthy()) return eval(*e.args[0], frame);
        return e.args[2] ? eval(*e.args[2], frame) : Value();
      }
    }
    return Value();
  }

  static std::string describe(const Expr& e) {
    if (e.kind == Expr::Kind::Name) return "'" + e.name + "'";
    if (e.kind == Expr::Kind::Attr) return describe(*e.args[0]) + "." + e.name;
    return "the value";
  }

  Value index(const Value& obj, const Value& key, const Expr& what) {
    switch (obj.kind()) {
      case Value::Kind::Undefined: bad(describe(what) + " is undefined (indexed with [" + key.repr() + "])");
      case Value::Kind::Dict:
      case Value::Kind::Namespace: {
        if (!key.is_string()) return Value();
        const Value* v = obj.find(key.as_string());
        return v ? *v : Value();
      }
      case Value::Kind::List: {
        if (key.kind() != Value::Kind::Int && key.kind() != Value::Kind::Bool) return Value();
        int64_t i = key.as_int();
        const int64_t n = static_cast<int64_t>(obj.items().size());
        if (i < 0) i += n;
        return (i >= 0 && i < n) ? obj.items()[static_cast<size_t>(i)] : Value();
      }
      case Value::Kind::String: {
        if (key.is_string()) return attribute(obj, key.as_string());
        if (key.kind() != Value::Kind::Int) return Value();
        const auto cps = text::code_points(obj.as_string());
        int64_t i = key.as_int();
        const int64_t n = static_cast<int64_t>(cps.size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value();
        return Value::string(text::from_code_points(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
      }
      default: return Value();
    }
  }

  Value slice(const Expr& e, const FramePtr& frame) {
    const Value obj = eval(*e.args[0], frame);
    int64_t bound[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
      if (!e.args[1 + k]) continue;
      const Value v = eval(*e.args[1 + k], frame);
      if (v.is_none()) continue;
      if (v.kind() != Value::Kind::Int) bad("slice indices must be integers");
      bound[k] = v.as_int();
      given[k] = true;
    }
    const int64_t step = bound[2];
    if (step == 0) bad("slice step cannot be zero");
    std::vector<uint32_t> cps;
    int64_t n = 0;
    if (obj.is_list()) {
      n = static_cast<int64_t>(obj.items().size());
    } else if (obj.is_string()) {
      cps = text::code_points(obj.as_string());
      n = static_cast<int64_t>(cps.size());
    } else if (obj.is_undefined()) {
      bad(describe(*e.args[0]) + " is undefined (sliced)");
    } else {
      bad("'" + obj.type_name() + "' object cannot be sliced");
    }
    // Python's slice.indices(n).
    auto clamp = [&](int64_t v, bool is_given, int64_t fallback) {
      if (!is_given) return fallback;
      if (v < 0) v += n;
      if (step > 0) return std::min(std::max<int64_t>(v, 0), n);
      return std::min(std::max<int64_t>(v, -1), n - 1);
    };
    const int64_t start = clamp(bound[0], given[0], step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(bound[1], given[1], step > 0 ? n : -1);
    List items;
    std::vector<uint32_t> chosen;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (obj.is_list()) items.push_back(obj.items()[static_cast<size_t>(i)]);
      else chosen.push_back(cps[static_cast<size_t>(i)]);
    }
    if (obj.is_list()) return Value::list(std::move(items));
    return Value::string(text::from_code_points(chosen));
  }

  Value binary(const Expr& e, const FramePtr& frame) {
    const std::string& op = e.name;
    const Value a = eval(*e.args[0], frame);
    if (op == "and") return a.truthy() ? eval(*e.args[1], frame) : a;
    if (op == "or") return a.truthy() ? a : eval(*e.args[1], frame);
    const Value b = eval(*e.args[1], frame);
    if (op == "==") return Value::boolean(a.equals(b));
    if (op == "!=") return Value::boolean(!a.equals(b));
    if (op == "<") return Value::boolean(compare(a, b) < 0);
    if (op == ">") return Value::boolean(compare(a, b) > 0);
    if (op == "<=") return Value::boolean(compare(a, b) <= 0);
    if (op == ">=") return Value::boolean(compare(a, b) >= 0);
    if (op == "in" || op == "not in") {
      if (!b.is_undefined() && !b.is_string() && !b.is_list() && !b.is_mapping())
        bad("argument of type '" + b.type_name() + "' is not iterable");
      if (b.is_string() && !a.is_string()) bad("'in <string>' requires a string on the left, not " + a.type_name());
      CallArgs args;
      args.positional.push_back(b);
      return Value::boolean(apply_test("in", a, args) == (op == "in"));
    }
    if (op == "~") return Value::string(a.str() + b.str());
    if (a.is_undefined() || b.is_undefined())
      bad(std::string(a.is_undefined() ? "the left" : "the right") + " operand of '" + op + "' is undefined");
    if (op == "+") {
      if (a.is_string() && b.is_string()) return Value::string(a.as_string() + b.as_string());
      if (a.is_list() && b.is_list()) {
        List items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(items));
      }
    }
    if (op == "*") {
      const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
      const Value* count = seq == &a ? &b : &a;
      if (seq && (count->kind() == Value::Kind::Int || count->kind() == Value::Kind::Bool)) {
        const int64_t n = std::max<int64_t>(0, count->as_int());
        const size_t unit = seq->is_string() ? seq->as_string().size() : seq->items().size();
        if (unit > 0 && static_cast<uint64_t>(n) > kMaxOutput / unit) bad("a repetition longer than 64M");
        if (seq->is_string()) {
          std::string out;
          for (int64_t i = 0; i < n; ++i) out += seq->as_string();
          return Value::string(std::move(out));
        }
        List items;
        for (int64_t i = 0; i < n; ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
        return Value::list(std::move(items));
      }
    }
    if (!a.is_number() || !b.is_number())
      bad("unsupported operand types for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
    const bool ints = a.kind() != Value::Kind::Float && b.kind() != Value::Kind::Float;
    if (op == "/") {
      if (b.as_double() == 0) bad("division by zero");
      return Value::real(a.as_double() / b.as_double());
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        const double r = std::pow(a.as_double(), b.as_double());
        if (std::fabs(r) < 9.0e18) return Value::integer(static_cast<int64_t>(std::llround(r)));
        bad("integer power too large");
      }
      return Value::real(std::pow(a.as_double(), b.as_double()));
    }
    if (ints) {
      const int64_t x = a.as_int(), y = b.as_int();
      // Python's integers do not overflow; ours are 64-bit, so a result past them is an error.
      int64_t r = 0;
      const bool overflow = op == "+"   ? __builtin_add_overflow(x, y, &r)
                            : op == "-" ? __builtin_sub_overflow(x, y, &r)
                            : op == "*" ? __builtin_mul_overflow(x, y, &r)
                                        : false;
      if (overflow) bad("integer overflow in '" + op + "' (values past 64 bits are not supported)");
      if (op == "+" || op == "-" || op == "*") return Value::integer(r);
      if (y == 0) bad("integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) bad("integer overflow in '" + op + "' (values past 64 bits are not supported)");
      if (op == "//" || op == "%") {
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::integer(op == "//" ? q : r);
      }
    } else {
      const double x = a.as_double(), y = b.as_double();
      if (op == "+") return Value::real(x + y);
      if (op == "-") return Value::real(x - y);
      if (op == "*") return Value::real(x * y);
      if (y == 0) bad("float division or modulo by zero");
      if (op == "//") return Value::real(std::floor(x / y));
      if (op == "%") {
        double r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return Value::real(r);
      }
    }
    bad("unsupported operator '" + op + "'");
  }

  FramePtr root_;
  int line_ = 0;
  int64_t steps_ = 0;
  int call_depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source, std::string origin) : origin_(std::move(origin)) {
  utf8::validate(source, origin_);
  body_ = std::make_shared<const Body>(parse(tokenize(source, origin_), origin_));
}

std::string Template::render(const Dict& variables) const {
  Evaluator ev(variables);
  try {
    return ev.run(*body_);
  } catch (const RaisedByTemplate& r) {
    throw TemplateRaised(origin_, ev.line(), r.message);
  } catch (const EvalError& e) {
    throw TemplateError(origin_, ev.line(), e.what());
  }
}

}  // namespace mambalm::jinja
