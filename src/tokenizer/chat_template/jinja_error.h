// The one error a chat template raises: a syntax error, a failed operation or the template's
// own raise_exception('...'), as one line naming where ("chat template line 3: ...").
#pragma once
#include <string>

#include "core/error.h"

namespace mambalm::jinja {

class TemplateError : public Error {
 public:
  TemplateError(const std::string& origin, int line, const std::string& what)
      : Error(origin + (line > 0 ? " line " + std::to_string(line) : std::string()) + ": " + what) {}
};

// Thrown by raise_exception('msg'): the template refused its input (e.g. roles that do not
// alternate). The message is the template's own.
class TemplateRaised : public TemplateError {
 public:
  TemplateRaised(const std::string& origin, int line, const std::string& message)
      : TemplateError(origin, line, "the template raised an exception: " + message), message_(message) {}
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

}  // namespace mambalm::jinja
