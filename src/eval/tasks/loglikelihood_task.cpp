#include "eval/tasks/loglikelihood_task.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/jsonl.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

LoglikelihoodDoc split_last_word(const std::string& text) {
  const size_t at = text.rfind(' ');
  if (at == std::string::npos) return {"", " " + text};
  return {text.substr(0, at), " " + text.substr(at + 1)};
}

std::vector<LoglikelihoodDoc> read_loglikelihood_jsonl(const std::string& path) {
  std::vector<LoglikelihoodDoc> docs;
  for_each_jsonl_object(path, [&](const nlohmann::json& j, const std::string& where, int64_t) {
    if (j.contains("text")) {
      check(j["text"].is_string(), where, "\"text\" must be a string");
      docs.push_back(split_last_word(j["text"].get<std::string>()));
      return;
    }
    check(j.contains("context") && j["context"].is_string() && j.contains("continuation") && j["continuation"].is_string(), where,
          "needs string fields \"context\" and \"continuation\" (or \"text\")");
    docs.push_back({j["context"].get<std::string>(), j["continuation"].get<std::string>()});
    check(!docs.back().continuation.empty(), where, "\"continuation\" is empty");
  });
  check(!docs.empty(), path, "no documents");
  return docs;
}

}  // namespace mambalm::eval
