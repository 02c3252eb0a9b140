#include "study/results.h"

#include <fstream>
#include <string>

#include "core/error.h"
#include "study/findings.h"
#include "study/train_phase.h"

namespace mambalm::study {

const std::vector<RetrievalTask>& retrieval_tasks() {
  static const std::vector<RetrievalTask> t = {
      {"phonebook", "Phonebook (standard)", "book tokens"},
      {"phonebook_reversed", "Phonebook (reversed, question first)", "book tokens"},
      {"mqar", "Multi-query associative recall", "key-value pairs"},
      {"selective_copy", "Selective copy", "items"},
  };
  return t;
}

std::map<int64_t, double> accuracy_by_length(const nlohmann::json& task_result) {
  std::map<int64_t, double> out;
  if (!task_result.contains("breakdown") || !task_result["breakdown"].contains("length")) return out;
  for (const auto& [length, cell] : task_result["breakdown"]["length"].items()) out[std::stoll(length)] = cell.value("acc", 0.0);
  return out;
}

namespace {

// The loss curve of a run: one row per logged step (step, loss, val_loss when measured).
nlohmann::json loss_curve(const std::string& path) {
  std::ifstream in(path);
  check(in.good(), path, "cannot read the training log", "rerun the train phase");
  nlohmann::json rows = nlohmann::json::array();
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_discarded() || !row.is_object() || !row.contains("step")) continue;
    nlohmann::json kept = {{"step", row["step"]}, {"loss", row["loss"]}};
    if (row.contains("val_loss")) kept["val_loss"] = row["val_loss"];
    rows.push_back(kept);
  }
  return rows;
}

}  // namespace

nlohmann::json assemble_results(const StudyPlan& plan, const nlohmann::json& data, const nlohmann::json& train,
                                const nlohmann::json& eval, const nlohmann::json& speed) {
  nlohmann::json r;
  r["study"] = plan.to_json();
  r["families"] = families();
  r["data"] = data;
  for (const std::string& f : families()) {
    nlohmann::json m = train.at(f);
    m.erase("seconds_last_session");  // not a result: depends on where a run was interrupted
    r["models"][f] = m;
    r["loss_curves"][f] = loss_curve(metrics_path(plan, f));
    const nlohmann::json& p = eval.at(f).at("perplexity").at("metrics");
    r["lm"][f] = {{"token_perplexity", p.value("token_perplexity", 0.0)},
                  {"byte_perplexity", p.value("byte_perplexity", 0.0)},
                  {"bits_per_byte", p.value("bits_per_byte", 0.0)},
                  {"documents", p.value("documents", 0)},
                  {"tokens", p.value("tokens", 0)},
                  {"bytes", p.value("bytes", 0)}};
    for (const RetrievalTask& t : retrieval_tasks()) {
      const nlohmann::json& res = eval.at(f).at(t.key);
      nlohmann::json by_length = nlohmann::json::object();
      for (const auto& [len, acc] : accuracy_by_length(res)) by_length[std::to_string(len)] = acc;
      r["retrieval"][f][t.key] = {{"accuracy", res.at("metrics").value("exact_match", 0.0)},
                                  {"n", res.at("metrics").value("n", 0)},
                                  {"by_length", by_length}};
    }
    // Multiple choice in both formats (absent from an eval phase of an older build).
    for (const char* format : {"cloze", "letter"}) {
      const std::string key = std::string("mc_") + format;
      if (!eval.at(f).contains(key)) continue;
      const nlohmann::json& m = eval.at(f).at(key).at("metrics");
      r["multiple_choice"][f][format] = {{"acc", m.value("acc", 0.0)},
                                         {"acc_stderr", m.value("acc_stderr", 0.0)},
                                         {"acc_norm", m.value("acc_norm", 0.0)},
                                         {"acc_norm_stderr", m.value("acc_norm_stderr", 0.0)},
                                         {"n", m.value("n", 0)}};
    }
    r["speed"][f] = speed.at("families").at(f);
  }
  r["multiple_choice_settings"] = {{"questions", plan.eval_mc_questions},
                                   {"shots", plan.mc_shots},
                                   {"choices", plan.mc_facts},
                                   {"chance", 1.0 / static_cast<double>(plan.mc_facts)},
                                   {"training_fraction", plan.mc_fraction}};
  r["speed_device"] = speed.value("device", "cpu");
  r["speed_8b"] = speed.value("shape_8b", nlohmann::json{{"measured", false}, {"reason", "not measured by this run"}});
  r["eval_device"] = plan.device == Device::CUDA ? "cuda" : "cpu";
  r["findings"] = judge_findings(r);
  return r;
}

}  // namespace mambalm::study
