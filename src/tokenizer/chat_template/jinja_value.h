// The values a chat template computes with, modelled on the Python objects Jinja sees when
// transformers renders a template: undefined, None, bool, int, float, str, list, dict
// (insertion-ordered), namespace() objects and callables (macros, builtins, bound methods).
// Lists, dicts and namespaces are shared by reference, as in Python, so `ns.x = ...` inside a
// loop is seen after it. Strings are UTF-8; lengths, indices and slices count code points.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mambalm::jinja {

class Value;
using List = std::vector<Value>;
// A dict (or a namespace's attributes): string keys in insertion order, as Python keeps them.
using Dict = std::vector<std::pair<std::string, Value>>;

// Arguments of a call: positional, then keyword (name=value) in the order written.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };

  Value() = default;  // undefined
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value real(double d);
  static Value string(std::string s);
  static Value list(List items = {});
  static Value dict(Dict items = {});
  static Value name_space(Dict attributes = {});
  static Value function(std::string name, Function f);
  // JSON as Python's json.loads gives it: objects to dicts, arrays to lists, and so on.
  static Value from_json(const nlohmann::json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_mapping() const { return kind_ == Kind::Dict || kind_ == Kind::Namespace; }

  bool as_bool() const { return b_; }
  // A float is truncated as Python's int() does; past the 64-bit range (or NaN) it saturates
  // instead of converting out of range (undefined behaviour in C++).
  int64_t as_int() const {
    if (kind_ != Kind::Float) return i_;
    if (!(d_ > -9.2e18)) return d_ == d_ ? std::numeric_limits<int64_t>::min() : 0;
    if (!(d_ < 9.2e18)) return std::numeric_limits<int64_t>::max();
    return static_cast<int64_t>(d_);
  }
  double as_double() const { return kind_ == Kind::Float ? d_ : static_cast<double>(i_); }
  const std::string& as_string() const { return *s_; }
  List& items() const { return *list_; }        // list
  Dict& entries() const { return *dict_; }      // dict or namespace
  const Function& call() const { return *fn_; }
  const std::string& function_name() const { return *s_; }

  // Python's bool(x): empty strings, lists and dicts, 0, None and undefined are false.
  bool truthy() const;
  // Python's str(x); undefined is "" (Jinja's default Undefined).
  std::string str() const;
  // Python's repr(x), for values inside printed lists and dicts.
  std::string repr() const;
  // Python's ==, deep for lists and dicts.
  bool equals(const Value& other) const;
  // Python's type name, for error messages ("str", "int", "list", "dict", ...).
  std::string type_name() const;

  // Dict or namespace lookup; nullptr when absent.
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v) const;

 private:
  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

// Python's repr() of a float ("1.0", "0.1", "1e-05").
std::string python_float(double d);

// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=...) as transformers' tojson does
// it; indent < 0 means none (one line, ", " and ": " separators).
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);

}  // namespace mambalm::jinja
