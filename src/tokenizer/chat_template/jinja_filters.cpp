// Jinja's filters and tests as chat templates use them, with the results Python's Jinja gives.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "tokenizer/chat_template/jinja_builtins.h"
#include "tokenizer/chat_template/jinja_text.h"

namespace mambalm::jinja {

namespace {

[[noreturn]] void bad(const std::string& what) { throw EvalError(what); }

int64_t checked_sum(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) bad("integer overflow in sum (values past 64 bits are not supported)");
  return r;
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return static_cast<int64_t>(text::length(v.as_string()));
    case Value::Kind::List: return static_cast<int64_t>(v.items().size());
    case Value::Kind::Dict: return static_cast<int64_t>(v.entries().size());
    default: bad("object of type '" + v.type_name() + "' has no len()");
  }
}

// The items a filter walks: a list's items, a dict's keys, a string's characters.
List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.items();
    case Value::Kind::Dict: {
      List keys;
      for (const auto& kv : v.entries()) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      List chars;
      const auto cps = text::code_points(v.as_string());
      for (size_t i = 0; i < cps.size(); ++i) chars.push_back(Value::string(text::from_code_points(cps, i, i + 1)));
      return chars;
    }
    default: bad("'" + v.type_name() + "' object is not iterable");
  }
}

// attribute="a.b" of map/selectattr/join/sort: a dotted path of keys or list indices.
Value path(const Value& item, const std::string& dotted) {
  Value v = item;
  size_t from = 0;
  while (true) {
    const size_t dot = dotted.find('.', from);
    const std::string part = dotted.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
    if (v.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const size_t i = std::strtoull(part.c_str(), nullptr, 10);
      v = i < v.items().size() ? v.items()[i] : Value();
    } else if (v.is_undefined()) {
      return v;
    } else {
      v = attribute(v, part);
    }
    if (dot == std::string::npos) return v;
    from = dot + 1;
  }
}

// The arguments after the first `skip` positional ones, for select("test", args...).
CallArgs rest(const CallArgs& args, size_t skip) {
  CallArgs r;
  for (size_t i = skip; i < args.positional.size(); ++i) r.positional.push_back(args.positional[i]);
  for (const auto& kw : args.keyword)
    if (kw.first != "attribute" && kw.first != "default") r.keyword.push_back(kw);
  return r;
}

Value select_like(const Value& operand, const CallArgs& args, bool by_attribute, bool keep) {
  List out;
  const size_t test_at = by_attribute ? 1 : 0;
  std::string attr;
  if (by_attribute) {
    const Value a = argument(args, 0, "attribute");
    if (!a.is_string()) bad("selectattr/rejectattr need an attribute name");
    attr = a.as_string();
  }
  const Value test = argument(args, test_at, "test");
  const CallArgs test_args = rest(args, test_at + 1);
  for (const Value& item : iterate(operand)) {
    const Value subject = by_attribute ? path(item, attr) : item;
    const bool pass = test.is_undefined() ? subject.truthy() : apply_test(test.str(), subject, test_args);
    if (pass == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value to_int(const Value& v, const Value& fallback) {
  switch (v.kind()) {
    case Value::Kind::Bool:
    case Value::Kind::Int: return Value::integer(v.as_int());
    case Value::Kind::Float: return Value::integer(static_cast<int64_t>(std::trunc(v.as_double())));
    case Value::Kind::String: {
      const std::string s = text::strip(v.as_string(), text::Side::Both);
      char* end = nullptr;
      const long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0') return Value::integer(i);
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0' && std::isfinite(d)) return Value::integer(static_cast<int64_t>(std::trunc(d)));
      return fallback;
    }
    default: return fallback;
  }
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value::real(v.as_double());
  if (v.is_string()) {
    const std::string s = text::strip(v.as_string(), text::Side::Both);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && *end == '\0') return Value::real(d);
  }
  return fallback;
}

std::string indent_text(const std::string& s, const Value& width, bool first, bool blank) {
  const std::string pad = width.is_string() ? width.as_string() : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
  std::string out;
  size_t from = 0;
  bool is_first = true;
  while (true) {
    const size_t nl = s.find('\n', from);
    const std::string line = s.substr(from, nl == std::string::npos ? std::string::npos : nl - from);
    if ((!is_first || first) && (blank || !line.empty())) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    from = nl + 1;
    is_first = false;
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

Value argument(const CallArgs& args, size_t index, const char* name, Value fallback) {
  if (index < args.positional.size()) return args.positional[index];
  for (const auto& kw : args.keyword)
    if (kw.first == name) return kw.second;
  return fallback;
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    const double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.as_string().compare(b.as_string()) < 0 ? -1 : a.as_string() == b.as_string() ? 0 : 1;
  if (a.is_list() && b.is_list()) {
    const size_t n = std::min(a.items().size(), b.items().size());
    for (size_t i = 0; i < n; ++i)
      if (const int c = compare(a.items()[i], b.items()[i])) return c;
    return a.items().size() < b.items().size() ? -1 : a.items().size() > b.items().size() ? 1 : 0;
  }
  bad("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value apply_filter(const std::string& name, const Value& v, const CallArgs& args) {
  if (name == "trim") {
    const Value chars = argument(args, 0, "chars");
    return Value::string(text::strip(v.str(), text::Side::Both, chars.is_string(), chars.is_string() ? chars.as_string() : ""));
  }
  if (name == "length" || name == "count") return Value::integer(length_of(v));
  if (name == "upper") return Value::string(text::upper(v.str()));
  if (name == "lower") return Value::string(text::lower(v.str()));
  if (name == "capitalize") return Value::string(text::capitalize(v.str()));
  if (name == "title") return Value::string(text::title(v.str()));
  if (name == "string") return Value::string(v.str());
  if (name == "safe") return v;
  if (name == "e" || name == "escape") return Value::string(html_escape(v.str()));
  if (name == "tojson") {
    // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    if (argument(args, 0, "ensure_ascii").truthy()) bad("tojson(ensure_ascii=True) is not supported");
    const Value indent = argument(args, 1, "indent");
    const Value sort_keys = argument(args, 3, "sort_keys");
    return Value::string(to_json(v, indent.is_number() ? static_cast<int>(indent.as_int()) : -1, sort_keys.truthy()));
  }
  if (name == "default" || name == "d") {
    const Value fallback = argument(args, 0, "default_value", Value::string(""));
    const bool boolean = argument(args, 1, "boolean").truthy();
    return (v.is_undefined() || (boolean && !v.truthy())) ? fallback : v;
  }
  if (name == "first" || name == "last") {
    List items = iterate(v);
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value sep = argument(args, 0, "d", Value::string(""));
    const Value attr = argument(args, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += sep.str();
      first = false;
      out += (attr.is_string() ? path(item, attr.as_string()) : item).str();
    }
    return Value::string(out);
  }
  if (name == "replace") {
    const Value from = argument(args, 0, "old"), to = argument(args, 1, "new"), count = argument(args, 2, "count");
    if (!from.is_string() || !to.is_string()) bad("replace needs two strings");
    return Value::string(text::replace(v.str(), from.as_string(), to.as_string(), count.is_number() ? count.as_int() : -1));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_mapping()) bad("the items filter needs a dict, not '" + v.type_name() + "'");
    List out;
    for (const auto& [k, x] : v.entries()) out.push_back(Value::list({Value::string(k), x}));
    return Value::list(std::move(out));
  }
  if (name == "list") return Value::list(iterate(v));
  if (name == "int") return to_int(v, argument(args, 0, "default", Value::integer(0)));
  if (name == "float") return to_float(v, argument(args, 0, "default", Value::real(0)));
  if (name == "abs") {
    if (v.kind() == Value::Kind::Float) return Value::real(std::fabs(v.as_double()));
    if (v.is_number() && v.as_int() == std::numeric_limits<int64_t>::min()) bad("integer overflow in abs()");
    if (v.is_number()) return Value::integer(std::llabs(v.as_int()));
    bad("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "round") {
    const int64_t precision = argument(args, 0, "precision", Value::integer(0)).as_int();
    const std::string method = argument(args, 1, "method", Value::string("common")).str();
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_double() * scale;
    const double r = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
    return Value::real(r / scale);
  }
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = text::code_points(v.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value::string(text::from_code_points(cps));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "unique") {
    List out;
    for (const Value& item : iterate(v))
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.equals(item); })) out.push_back(item);
    return Value::list(std::move(out));
  }
  if (name == "sort") {
    const bool reverse = argument(args, 0, "reverse").truthy();
    const bool case_sensitive = argument(args, 1, "case_sensitive").truthy();
    const Value attr = argument(args, 2, "attribute");
    List items = iterate(v);
    auto key = [&](const Value& x) {
      Value k = attr.is_string() ? path(x, attr.as_string()) : x;
      return (!case_sensitive && k.is_string()) ? Value::string(text::lower(k.as_string())) : k;
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
      const int c = compare(key(a), key(b));
      return reverse ? c > 0 : c < 0;
    });
    return Value::list(std::move(items));
  }
  if (name == "sum") {
    const Value attr = argument(args, 0, "attribute");
    Value total = argument(args, 1, "start", Value::integer(0));
    for (const Value& item : iterate(v)) {
      const Value x = attr.is_string() ? path(item, attr.as_string()) : item;
      if (!x.is_number() || !total.is_number()) bad("sum needs numbers");
      total = (x.kind() == Value::Kind::Float || total.kind() == Value::Kind::Float)
                  ? Value::real(total.as_double() + x.as_double())
                  : Value::integer(checked_sum(total.as_int(), x.as_int()));
    }
    return total;
  }
  if (name == "indent") {
    return Value::string(indent_text(v.str(), argument(args, 0, "width", Value::integer(4)),
                                     argument(args, 1, "first").truthy(), argument(args, 2, "blank").truthy()));
  }
  if (name == "map") {
    const Value attr = argument(args, 99, "attribute");
    List out;
    if (attr.is_string()) {
      const Value fallback = argument(args, 99, "default");
      for (const Value& item : iterate(v)) {
        Value x = path(item, attr.as_string());
        out.push_back(x.is_undefined() ? fallback : x);
      }
    } else {
      const Value filter = argument(args, 0, "");
      if (!filter.is_string()) bad("map needs a filter name or attribute=");
      const CallArgs filter_args = rest(args, 1);
      for (const Value& item : iterate(v)) out.push_back(apply_filter(filter.as_string(), item, filter_args));
    }
    return Value::list(std::move(out));
  }
  if (name == "select") return select_like(v, args, false, true);
  if (name == "reject") return select_like(v, args, false, false);
  if (name == "selectattr") return select_like(v, args, true, true);
  if (name == "rejectattr") return select_like(v, args, true, false);
  bad("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& args) {
  using K = Value::Kind;
  const Value other = argument(args, 0, "value");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind() == K::Bool;
  if (name == "true") return v.kind() == K::Bool && v.as_bool();
  if (name == "false") return v.kind() == K::Bool && !v.as_bool();
  if (name == "integer") return v.kind() == K::Int;
  if (name == "float") return v.kind() == K::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.kind() == K::Dict;
  if (name == "iterable") return v.is_string() || v.is_list() || v.kind() == K::Dict || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_list() || v.kind() == K::Dict;
  if (name == "callable") return v.kind() == K::Function;
  if (name == "lower") return v.is_string() && text::lower(v.as_string()) == v.as_string();
  if (name == "upper") return v.is_string() && text::upper(v.as_string()) == v.as_string();
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (v.kind() != K::Int && v.kind() != K::Bool) bad("the '" + name + "' test needs an integer");
    const int64_t n = v.as_int();
    if (name == "odd") return n % 2 != 0;
    if (name == "even") return n % 2 == 0;
    if (!other.is_number() || other.as_int() == 0) bad("divisibleby needs a non-zero number");
    return other.as_int() == -1 || n % other.as_int() == 0;  // (INT64_MIN % -1 overflows)
  }
  if (name == "eq" || name == "equalto" || name == "==") return v.equals(other);
  if (name == "ne" || name == "!=") return !v.equals(other);
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, other) < 0;
  if (name == "le" || name == "<=") return compare(v, other) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, other) > 0;
  if (name == "ge" || name == ">=") return compare(v, other) >= 0;
  if (name == "sameas") return v.kind() == other.kind() && v.equals(other);
  if (name == "in") {
    if (other.is_string()) return v.is_string() && other.as_string().find(v.as_string()) != std::string::npos;
    if (other.is_list()) return std::any_of(other.items().begin(), other.items().end(), [&](const Value& x) { return x.equals(v); });
    if (other.is_mapping()) return v.is_string() && other.find(v.as_string()) != nullptr;
    return false;
  }
  if (name == "escaped") return false;
  bad("unknown test '" + name + "'");
}

}  // namespace mambalm::jinja
