// DIR/results.json: everything the report shows, gathered from the phases' outputs, in one
// document whose numbers report.md and report.html print unchanged:
//   study       the plan (scale, settings of every phase)
//   data        tokenizer, corpus, held-out and synthetic amounts
//   models      per family: preset, pattern, parameters, tokens, final losses
//   loss_curves per family: [{step, loss, val_loss?}] from metrics.jsonl
//   lm          per family: held-out token perplexity, byte perplexity, bits per byte
//   retrieval   per family and task: overall accuracy and accuracy by length
//   multiple_choice  per family and format (cloze, letter): acc, acc_norm, their standard
//               errors, n (with multiple_choice_settings: questions, shots, choices, chance)
//   speed       per family: decode tokens/s and memory per sequence by context
//   findings    the study's findings (a)-(e), each with its numbers and a verdict
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "study/study_plan.h"

namespace mambalm::study {

// The retrieval tasks of the report, in table order, with their titles.
struct RetrievalTask {
  const char* key;    // eval result key: phonebook, phonebook_reversed, mqar, selective_copy
  const char* title;  // "Phonebook (standard)"
  const char* unit;   // what "length" counts: "book tokens", "key-value pairs", "items"
};
const std::vector<RetrievalTask>& retrieval_tasks();

nlohmann::json assemble_results(const StudyPlan& plan, const nlohmann::json& data, const nlohmann::json& train,
                                const nlohmann::json& eval, const nlohmann::json& speed);

// {length -> accuracy} of one task's breakdown, lengths in numeric order.
std::map<int64_t, double> accuracy_by_length(const nlohmann::json& task_result);

}  // namespace mambalm::study
