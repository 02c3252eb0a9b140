// Scores for generated text against several references, as published benchmarks define them,
// and the runner that applies them to generation samples:
//   RULER (Hsieh et al. 2024, NVIDIA/RULER scripts/eval/synthetic/constants.py and
//   scripts/eval/evaluate.py), on the prediction after RULER's post-processing (strip, every
//   control character 0x00-0x1f becomes '\n', strip again):
//     string_match_all   mean over the references of [lower(ref) is a substring of lower(pred)]
//     string_match_part  max over the references of the same
//   RULER reports these x100; mambalm reports them in [0, 1] like every other accuracy.
//   SQuAD (Rajpurkar et al., the official evaluate-v2.0.py), on normalised text (lower case,
//   ASCII punctuation removed, the articles a/an/the removed as words, whitespace collapsed):
//     squad_exact   normalised prediction == normalised reference, max over references
//     squad_f1      token F1 of the normalised texts (bag-of-words overlap), max over
//                   references; when either side has no tokens, 1 if both have none, else 0
//   NQ-open / TriviaQA style (as "Lost in the Middle"'s best_subspan_em, lm-eval's
//   triviaqa/nq_open use exact match after regex extraction instead):
//     contains      some normalised reference is a substring of the normalised prediction
// Lower-casing is ASCII (Python's str.lower also folds non-ASCII letters; the references of the
// generated tasks are ASCII).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/runner.h"
#include "eval/scoring.h"
#include "eval/tasks/generation_task.h"

namespace mambalm::eval {

std::string ruler_postprocess(const std::string& pred);
double string_match_all(const std::string& pred, const std::vector<std::string>& refs);
double string_match_part(const std::string& pred, const std::vector<std::string>& refs);

std::string squad_normalize(const std::string& s);
double squad_exact(const std::string& pred, const std::vector<std::string>& refs);
double squad_f1(const std::string& pred, const std::vector<std::string>& refs);
double contains_match(const std::string& pred, const std::vector<std::string>& refs);

// A metric by name: string_match_all, string_match_part, squad_exact (reported as
// "exact_match"), squad_f1 ("f1"), contains. Unknown names throw listing the valid ones.
using GenerationMetric = double (*)(const std::string& pred, const std::vector<std::string>& refs);
GenerationMetric generation_metric(const std::string& name);

// Greedy generation scored with `metrics` (the first one drives the per-tag breakdown rows,
// "METRIC[length=4096]"). Each sample's references are GenerationSample::references (or its
// answer when empty). JSON as run_generation's: metrics {name, name_stderr, n}, breakdown by tag
// (cells {<first metric>, stderr, n, prompt_tokens}), memory by length, speed, examples.
nlohmann::json run_scored_generation(Scorer& scorer, const std::string& task, const std::vector<GenerationSample>& samples,
                                     const std::vector<std::string>& metrics, std::vector<MetricRow>& rows,
                                     const ProgressFn& progress = {});

// The `generate` task's file: one object per line with the prompt under "prompt", "context" or
// "question", the references under "answers" (a list of strings) or "answer" (a string), and
// optionally "until" (a string or list of strings) and "max_gen_toks". `until` and
// `max_gen_tokens` are the defaults for lines that give none.
std::vector<GenerationSample> read_generation_jsonl(const std::string& path, const std::vector<std::string>& until,
                                                    int64_t max_gen_tokens);

// "\n,." style stop lists from the command line: split at unescaped commas; \n, \t, \r, \\ and
// \, are unescaped. An empty string gives an empty list.
std::vector<std::string> parse_stop_list(const std::string& text);

}  // namespace mambalm::eval
