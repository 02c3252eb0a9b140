#include "eval/jsonl.h"

#include <fstream>

#include "core/error.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

void for_each_jsonl_object(const std::string& path,
                           const std::function<void(const nlohmann::json&, const std::string& where, int64_t line)>& each,
                           const std::string& hint) {
  std::ifstream f(path, std::ios::binary);
  check(f.good(), path, "cannot open the file");
  std::string text;
  for (int64_t lineno = 1; std::getline(f, text); ++lineno) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    check_utf8(text, where);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(where, std::string("not valid JSON: ") + e.what(), hint);
    }
    check(j.is_object(), where, "each line must be a JSON object");
    each(j, where, lineno);
  }
}

}  // namespace mambalm::eval
