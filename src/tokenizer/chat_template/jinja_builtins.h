// What a template can call by name: filters (`x | trim`), tests (`x is defined`), methods of
// strings and dicts (`s.strip()`, `d.items()`), and the globals range(), namespace(), dict(),
// raise_exception() and strftime_now(). Failures throw EvalError (the evaluator adds the line).
#pragma once
#include <stdexcept>
#include <string>

#include "tokenizer/chat_template/jinja_value.h"

namespace mambalm::jinja {

struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by raise_exception('message').
struct RaisedByTemplate {
  std::string message;
};

// Python's ordering for <, >, sort: numbers with numbers, strings with strings, lists
// element-wise. Returns <0, 0 or >0; throws EvalError on values that do not order.
int compare(const Value& a, const Value& b);

// Argument `index` (positional) or `name` (keyword) of a call, else `fallback`.
Value argument(const CallArgs& args, size_t index, const char* name, Value fallback = Value());

Value apply_filter(const std::string& name, const Value& operand, const CallArgs& args);
bool apply_test(const std::string& name, const Value& operand, const CallArgs& args);

// obj.name as Jinja resolves it: a dict's key (or its method items/keys/values/get), a
// namespace's attribute, a string's method; undefined when there is none. Reading an
// attribute of an undefined value throws EvalError.
Value attribute(const Value& obj, const std::string& name);

// A builtin global (range, namespace, dict, raise_exception, strftime_now), else undefined.
Value builtin_global(const std::string& name);

}  // namespace mambalm::jinja
