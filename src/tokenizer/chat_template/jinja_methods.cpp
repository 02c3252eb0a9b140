// Attribute lookup, the Python methods of str and dict that chat templates call, and the
// globals (range, namespace, dict, raise_exception, strftime_now).
#include <ctime>

#include "tokenizer/chat_template/jinja_builtins.h"
#include "tokenizer/chat_template/jinja_text.h"

namespace mambalm::jinja {

namespace {

[[noreturn]] void bad(const std::string& what) { throw EvalError(what); }

std::string string_arg(const CallArgs& args, size_t i, const char* name, const char* method) {
  const Value v = argument(args, i, name);
  if (!v.is_string()) bad(std::string("str.") + method + "() needs a string argument");
  return v.as_string();
}

bool affix(const std::string& s, const Value& what, bool prefix, const char* method) {
  auto one = [&](const Value& p) {
    if (!p.is_string()) bad(std::string("str.") + method + "() needs a string or a tuple of strings");
    const std::string& x = p.as_string();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (what.is_list()) {
    for (const Value& p : what.items())
      if (one(p)) return true;
    return false;
  }
  return one(what);
}

Value string_method(const std::string& s, const std::string& name) {
  auto method = [&](Function f) { return Value::function("str." + name, std::move(f)); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const text::Side side = name == "strip" ? text::Side::Both : name == "lstrip" ? text::Side::Left : text::Side::Right;
    return method([s, side](CallArgs& a) {
      const Value chars = argument(a, 0, "chars");
      if (!chars.is_undefined() && !chars.is_none() && !chars.is_string()) bad("str.strip() needs a string argument");
      return Value::string(text::strip(s, side, chars.is_string(), chars.is_string() ? chars.as_string() : ""));
    });
  }
  if (name == "startswith" || name == "endswith") {
    const bool prefix = name == "startswith";
    return method([s, prefix](CallArgs& a) {
      return Value::boolean(affix(s, argument(a, 0, "prefix"), prefix, prefix ? "startswith" : "endswith"));
    });
  }
  if (name == "split" || name == "rsplit") {
    const bool right = name == "rsplit";
    return method([s, right](CallArgs& a) {
      const Value sep = argument(a, 0, "sep");
      const int64_t maxsplit = argument(a, 1, "maxsplit", Value::integer(-1)).as_int();
      if (sep.is_string() && sep.as_string().empty()) bad("str.split(): empty separator");
      if (right && maxsplit >= 0) bad("str.rsplit() with maxsplit is not supported");
      List parts;
      for (auto& p : text::split(s, sep.is_string(), sep.is_string() ? sep.as_string() : "", maxsplit))
        parts.push_back(Value::string(std::move(p)));
      return Value::list(std::move(parts));
    });
  }
  if (name == "upper") return method([s](CallArgs&) { return Value::string(text::upper(s)); });
  if (name == "lower") return method([s](CallArgs&) { return Value::string(text::lower(s)); });
  if (name == "title") return method([s](CallArgs&) { return Value::string(text::title(s)); });
  if (name == "capitalize") return method([s](CallArgs&) { return Value::string(text::capitalize(s)); });
  if (name == "replace") {
    return method([s](CallArgs& a) {
      const Value count = argument(a, 2, "count", Value::integer(-1));
      return Value::string(text::replace(s, string_arg(a, 0, "old", "replace"), string_arg(a, 1, "new", "replace"), count.as_int()));
    });
  }
  if (name == "find") {
    return method([s](CallArgs& a) {
      const size_t at = s.find(string_arg(a, 0, "sub", "find"));
      return Value::integer(at == std::string::npos ? -1 : static_cast<int64_t>(text::length(s.substr(0, at))));
    });
  }
  if (name == "count") {
    return method([s](CallArgs& a) {
      const std::string sub = string_arg(a, 0, "sub", "count");
      if (sub.empty()) return Value::integer(static_cast<int64_t>(text::length(s)) + 1);
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value::integer(n);
    });
  }
  if (name == "join") {
    return method([s](CallArgs& a) {
      const Value items = argument(a, 0, "iterable");
      if (!items.is_list()) bad("str.join() needs a list");
      std::string out;
      for (size_t i = 0; i < items.items().size(); ++i) out += (i ? s : "") + items.items()[i].str();
      return Value::string(out);
    });
  }
  return Value();
}

Value dict_method(const Value& d, const std::string& name) {
  auto method = [&](Function f) { return Value::function("dict." + name, std::move(f)); };
  if (name == "items" || name == "keys" || name == "values") {
    return method([d, name](CallArgs&) {
      List out;
      for (const auto& [k, v] : d.entries()) {
        if (name == "items") out.push_back(Value::list({Value::string(k), v}));
        else out.push_back(name == "keys" ? Value::string(k) : v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return method([d](CallArgs& a) {
      const Value key = argument(a, 0, "key");
      const Value* v = key.is_string() ? d.find(key.as_string()) : nullptr;
      return v ? *v : argument(a, 1, "default", Value::none());
    });
  }
  return Value();
}

Dict keywords(const CallArgs& a) {
  Dict out;
  for (const auto& kw : a.keyword) out.push_back(kw);
  return out;
}

}  // namespace

Value attribute(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::Undefined: bad("cannot read '" + name + "' of an undefined value");
    case Value::Kind::Dict: {
      if (name == "items" || name == "keys" || name == "values" || name == "get") return dict_method(obj, name);
      const Value* v = obj.find(name);
      return v ? *v : Value();
    }
    case Value::Kind::Namespace: {
      const Value* v = obj.find(name);
      return v ? *v : Value();
    }
    case Value::Kind::String: return string_method(obj.as_string(), name);
    default: return Value();
  }
}

Value builtin_global(const std::string& name) {
  if (name == "range") {
    return Value::function("range", [](CallArgs& a) {
      for (const Value& v : a.positional)
        if (v.kind() != Value::Kind::Int) bad("range() needs integers");
      int64_t start = 0, stop = 0, step = 1;
      if (a.positional.size() == 1) stop = a.positional[0].as_int();
      else if (a.positional.size() >= 2) {
        start = a.positional[0].as_int();
        stop = a.positional[1].as_int();
        if (a.positional.size() >= 3) step = a.positional[2].as_int();
      } else {
        bad("range() needs 1 to 3 arguments");
      }
      if (step == 0) bad("range() step must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (out.size() >= (size_t{1} << 24)) bad("range() longer than 16M items");
        out.push_back(Value::integer(i));
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "namespace") {
    return Value::function("namespace", [](CallArgs& a) {
      Dict attrs;
      for (const Value& p : a.positional)
        if (p.kind() == Value::Kind::Dict)
          for (const auto& kv : p.entries()) attrs.push_back(kv);
      for (auto& kv : keywords(a)) attrs.push_back(std::move(kv));
      return Value::name_space(std::move(attrs));
    });
  }
  if (name == "dict") {
    return Value::function("dict", [](CallArgs& a) {
      Dict entries;
      for (const Value& p : a.positional)
        if (p.kind() == Value::Kind::Dict)
          for (const auto& kv : p.entries()) entries.push_back(kv);
      for (auto& kv : keywords(a)) entries.push_back(std::move(kv));
      return Value::dict(std::move(entries));
    });
  }
  if (name == "raise_exception") {
    return Value::function("raise_exception", [](CallArgs& a) -> Value {
      throw RaisedByTemplate{argument(a, 0, "message").str()};
    });
  }
  if (name == "strftime_now") {
    return Value::function("strftime_now", [](CallArgs& a) {
      const Value format = argument(a, 0, "format");
      if (!format.is_string()) bad("strftime_now() needs a format string");
      const std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof buf, format.as_string().c_str(), &local);
      return Value::string(std::string(buf, n));
    });
  }
  return Value();
}

}  // namespace mambalm::jinja
