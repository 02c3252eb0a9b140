// lm-evaluation-harness's per-sample logs (`lm_eval ... --log_samples`, for example with
// `--model dummy`, which renders every request without a model), read so that mambalm scores
// exactly the requests lm-eval makes: its prompts, few-shot examples, per-option contexts.
//
// One JSON object per line, as lm-eval's evaluator and EvaluationTracker write it:
//   doc_id          int: the document's index in the task
//   doc             the dataset row (not needed here)
//   target          str(doc_to_target(doc)): a gold index, a gold string or a reference text
//   arguments       {"gen_args_0": {"arg_0": ..., "arg_1": ...}, "gen_args_1": ...} (older
//                   versions: a list of argument lists), one entry per request of the document:
//                     loglikelihood          (context, continuation)   two strings
//                     loglikelihood_rolling  (text,)                   one string
//                     generate_until         (context, {until, max_gen_toks, ...})
//   resps, filtered_resps   the model's answers, stringified ("-0.53", "False")
//   filter          the filter name ("none" for log-likelihood tasks)
//   metrics         the metric names the task computes for this document
//   <metric>        the per-document metric values lm-eval computed from those answers, e.g.
//                   "acc": 0.0, or "word_perplexity": [loglikelihood, words]
// The task name comes from the file name (samples_<task>_<date>.jsonl) unless given.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/scoring.h"

namespace mambalm::eval {

enum class SampleRequestKind { Loglikelihood, Rolling, Generate };

struct SampleRequest {
  SampleRequestKind kind = SampleRequestKind::Loglikelihood;
  std::string context;       // loglikelihood, generate_until: the context; rolling: the text
  std::string continuation;  // loglikelihood only
  GenerateUntilOptions generation;  // generate_until only: stop strings and token limit
};

// The output type of the task a sample belongs to, from its requests and metric names.
enum class SampleTaskKind { Loglikelihood, MultipleChoice, Rolling, Generate };
const char* task_kind_name(SampleTaskKind k);

struct LmEvalSample {
  int64_t doc_id = 0;
  int64_t line = 0;  // line number in the file, for messages
  std::string target;
  std::string filter;
  std::vector<SampleRequest> requests;
  std::vector<std::string> metrics;  // names; empty when the line has none
  nlohmann::json recorded;           // the per-document metric values lm-eval wrote (object)
  std::vector<std::optional<double>> recorded_lls;  // the first number of each filtered_resps entry
  SampleTaskKind kind = SampleTaskKind::Loglikelihood;
};

struct LmEvalSamplesFile {
  std::string path, task;
  SampleTaskKind kind = SampleTaskKind::Loglikelihood;
  std::vector<LmEvalSample> samples;  // one per document: a later line of a doc_id (another filter) is skipped
  int64_t skipped_filter_lines = 0;
};

// Reads and checks a samples file; malformed lines throw naming path:line and the field.
// `generation_default_max_tokens`: the token limit of generate_until requests without
// max_gen_toks (lm-eval's HF model: 256).
LmEvalSamplesFile read_lm_eval_samples(const std::string& path, const std::string& task_name = "",
                                       int64_t generation_default_max_tokens = 256);

// samples_<task>_<date>.jsonl -> <task>; another name -> its stem.
std::string task_name_from_samples_path(const std::string& path);

}  // namespace mambalm::eval
