// A parsed Jinja template, rendered as transformers renders chat templates (jinja2 with
// trim_blocks and lstrip_blocks, the loopcontrols extension, tojson as json.dumps, and the
// globals raise_exception and strftime_now). Only the subset of Jinja that chat templates use
// is implemented; anything else is a one-line TemplateError naming the template line.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/chat_template/jinja_ast.h"
#include "tokenizer/chat_template/jinja_value.h"

namespace mambalm::jinja {

class Template {
 public:
  // Parses `source`; `origin` names it in errors ("model/tokenizer_config.json chat_template").
  // Throws TemplateError on a syntax error.
  explicit Template(const std::string& source, std::string origin = "chat template");

  // Renders with `variables` as the template's globals. Throws TemplateError on a failure and
  // TemplateRaised when the template calls raise_exception().
  std::string render(const Dict& variables) const;

  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
  std::shared_ptr<const Body> body_;
};

}  // namespace mambalm::jinja
