// The parsed form of a chat template: statements (text, output, if, for, set, macro, ...) over
// expressions. One node type each, with a `kind` and the children that kind uses; every node
// keeps its template line for error messages.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/chat_template/jinja_value.h"

namespace mambalm::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // args: the items
    Tuple,     // args: the items
    Dict,      // args: key, value, key, value, ...
    Attr,      // args[0].name
    Index,     // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]] (absent parts are null)
    Call,      // args[0](args[1..], kwargs)
    Filter,    // args[0] | name(args[1..], kwargs)
    Test,      // args[0] is [not] name(args[1..]); negated
    Unary,     // name ("not", "-", "+") args[0]
    Binary,    // args[0] name args[1]: arithmetic, comparison, "and", "or", "in", "not in", "~"
    Ternary,   // args[0] if args[1] else args[2] (args[2] null: undefined)
  };
  Kind kind;
  int line = 0;
  std::string name;
  Value value;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }}
    If,        // conditions[i] -> bodies[i]; bodies.back() is the else branch when it has one more
    For,       // for targets in expr [if condition]: bodies[0]; else: bodies[1]
    Set,       // targets (or target.attr) = expr; block form: bodies[0] rendered
    Macro,     // name(params = defaults): bodies[0]
    Break,
    Continue,
    Block,     // bodies[0] rendered in place ({% generation %} ... {% endgeneration %})
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;                         // Output, For (iterable), Set (value)
  ExprPtr condition;                    // For's optional filter
  std::vector<ExprPtr> conditions;      // If
  std::vector<std::string> targets;     // For / Set names; Macro parameter names
  std::string attribute;                // Set: ns.attribute = ...
  std::vector<ExprPtr> defaults;        // Macro: default per parameter (null: none)
  std::vector<Body> bodies;
};

}  // namespace mambalm::jinja
