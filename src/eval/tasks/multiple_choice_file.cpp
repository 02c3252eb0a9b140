// read_mc_jsonl (multiple_choice.h): the multiple-choice task file reader, in a file of its own so
// that the fuzz target (fuzz/fuzz_eval_tasks.cpp) links it without the scorer and the model.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/jsonl.h"
#include "eval/tasks/multiple_choice.h"

namespace mambalm::eval {

std::vector<McDoc> read_mc_jsonl(const std::string& path) {
  std::vector<McDoc> docs;
  for_each_jsonl_object(path, [&](const nlohmann::json& j, const std::string& where, int64_t) {
    McDoc d;
    const char* ctx_key = j.contains("context") ? "context" : j.contains("query") ? "query" : "question";
    check(j.contains(ctx_key) && j[ctx_key].is_string(), where, "missing string field \"context\" (or \"query\")");
    d.context = j[ctx_key].get<std::string>();
    check(j.contains("choices") && j["choices"].is_array() && j["choices"].size() >= 2, where,
          "\"choices\" must be an array of at least 2 strings");
    for (const auto& c : j["choices"]) {
      check(c.is_string(), where, "\"choices\" must hold strings");
      d.choices.push_back(c.get<std::string>());
    }
    check(j.contains("gold") && j["gold"].is_number_integer(), where, "\"gold\" must be an integer index into \"choices\"");
    d.gold = j["gold"].get<int64_t>();
    check(d.gold >= 0 && d.gold < static_cast<int64_t>(d.choices.size()), where,
          "\"gold\" " + std::to_string(d.gold) + " is not an index into " + std::to_string(d.choices.size()) + " choices");
    docs.push_back(std::move(d));
  });
  check(!docs.empty(), path, "no documents");
  return docs;
}

}  // namespace mambalm::eval
