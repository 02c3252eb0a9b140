// Reading JSON Lines task files: one JSON object per non-blank line, each line valid UTF-8.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace mambalm::eval {

// Calls each(object, where, line) for every non-blank line of `path`, where = "path:line" for
// error messages. A line that is not valid UTF-8, not JSON or not an object is a one-line error
// naming it (`hint`, when given, says what the file should hold).
void for_each_jsonl_object(const std::string& path,
                           const std::function<void(const nlohmann::json&, const std::string& where, int64_t line)>& each,
                           const std::string& hint = "");

}  // namespace mambalm::eval
