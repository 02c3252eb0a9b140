// Errors carry what failed, where (file, tensor, field) and a hint. The CLI prints what() as
// one line on stderr and exits non-zero; nothing in the library aborts on user input.
#pragma once
#include <stdexcept>
#include <string>

namespace mambalm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "where: what (hint)" — where is a file, a tensor name or a config field.
[[noreturn]] inline void fail(const std::string& where, const std::string& what,
                              const std::string& hint = "") {
  std::string m = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) m += " (" + hint + ")";
  throw Error(m);
}

inline void check(bool ok, const std::string& where, const std::string& what,
                  const std::string& hint = "") {
  if (!ok) fail(where, what, hint);
}

}  // namespace mambalm

// Like check(), but the message arguments are evaluated only on failure: use it on hot paths
// (every op call, every Tensor::dim) where building the message string would dominate.
#define MAMBALM_CHECK(cond, ...)                        \
  do {                                                  \
    if (!(cond)) [[unlikely]] ::mambalm::fail(__VA_ARGS__); \
  } while (0)
