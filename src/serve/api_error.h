// Errors a client caused (or the server hit while serving it), shaped as the OpenAI API
// returns them: an HTTP status and {"error": {"message", "type", "param", "code"}}.
#pragma once
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace mambalm::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, code_;
};

// "invalid_request_error" for 4xx, "server_error" for 5xx (OpenAI's type names).
std::string error_type_for(int status);
// The OpenAI-style body; param/code are null when empty.
nlohmann::json error_body(int status, const std::string& message, const std::string& param = "", const std::string& code = "");

}  // namespace mambalm::serve
