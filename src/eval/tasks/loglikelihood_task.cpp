#include "eval/tasks/loglikelihood_task.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

LoglikelihoodDoc split_last_word(const std::string& text) {
  const size_t at = text.rfind(' ');
  if (at == std::string::npos) return {"", " " + text};
  return {text.substr(0, at), " " + text.substr(at + 1)};
}

std::vector<LoglikelihoodDoc> read_loglikelihood_jsonl(const std::string& path) {
  std::ifstream f(path);
  check(f.good(), path, "cannot open the task file");
  std::vector<LoglikelihoodDoc> docs;
  std::string line;
  for (int64_t lineno = 1; std::getline(f, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    check_utf8(line, where);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, std::string("not valid JSON: ") + e.what());
    }
    check(j.is_object(), where, "each line must be a JSON object");
    if (j.contains("text")) {
      check(j["text"].is_string(), where, "\"text\" must be a string");
      docs.push_back(split_last_word(j["text"].get<std::string>()));
      continue;
    }
    check(j.contains("context") && j["context"].is_string() && j.contains("continuation") && j["continuation"].is_string(), where,
          "needs string fields \"context\" and \"continuation\" (or \"text\")");
    docs.push_back({j["context"].get<std::string>(), j["continuation"].get<std::string>()});
    check(!docs.back().continuation.empty(), where, "\"continuation\" is empty");
  }
  check(!docs.empty(), path, "no documents");
  return docs;
}

}  // namespace mambalm::eval
