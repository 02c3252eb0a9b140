// Tokens to a statement tree, by Jinja's grammar and operator precedence (lowest first):
// `x if c else y`, or, and, not, comparisons and in/not in, + -, ~, * / // %, **, unary - +,
// then primaries with .attr, [index], [a:b:c], calls, `| filter` and `is test`.
// Tags: if/elif/else, for (with `if` filter and else), set (also ns.attr and {% set %} blocks),
// macro, break, continue, generation. Anything else is a TemplateError naming its line.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/chat_template/jinja_ast.h"
#include "tokenizer/chat_template/jinja_lexer.h"

namespace mambalm::jinja {

Body parse(const std::vector<Token>& tokens, const std::string& origin);

}  // namespace mambalm::jinja
