// The evaluation tasks by name: phonebook (the study's), phonebook_depth (mambalm's), mqar, selective_copy, passkey
// (synthetic tasks that generate prompts and score exact match), ruler_* (RULER's synthetic
// tasks, scored with string_match_all, eval/tasks/ruler.h), mc (multiple choice from JSON
// Lines), facts_mc (generated multiple choice, eval/tasks/facts_mc.h), loglikelihood
// (LAMBADA-style, JSON Lines), generate (generation from JSON Lines scored with SQuAD exact
// match and F1 and contains-match, eval/generation_metrics.h) and perplexity (text files or
// an indexed token dataset).
// `mambalm eval --task NAME` looks a task up here and prints its result; a server or a study
// driver runs the same tasks by name without the CLI.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/runner.h"
#include "eval/scoring.h"
#include "eval/tasks/generation_task.h"

namespace mambalm::eval {

// Every setting a task may read; each task reads its own and ignores the rest. An unset
// optional keeps the task's own default (for example shots: 2 for phonebook, 0 for mc).
struct TaskOptions {
  uint64_t seed = 0;   // task generation and few-shot draws
  int64_t limit = -1;  // at most this many samples / documents; -1 = all
  // Synthetic tasks.
  std::optional<std::vector<int64_t>> lengths;  // phonebook(_depth), passkey: tokens; mqar: pairs; selective_copy: items; facts_mc: facts
  std::optional<std::vector<double>> depths;    // phonebook_depth, passkey: where the target sits, in [0, 1]
  std::optional<int64_t> samples_per_cell;      // samples per (length, depth) cell, > 0; facts_mc: questions
  std::optional<int64_t> shots;                 // phonebook(_depth), mc and facts_mc: few-shot examples
  bool reversed = false;                        // phonebook(_depth): the question before the book
  std::string names = "auto";                   // phonebook name lists (see load_name_lists)
  std::optional<int64_t> queries;               // mqar: queries per prompt
  std::optional<int64_t> letters;               // selective_copy: letters to copy
  std::string haystack = "auto";                // ruler_* essay haystack: auto, noise, a file or a directory
  // The model's context in tokens (0 = unbounded): the default lengths of phonebook
  // (500 .. this) and ruler_* (4K .. 128K up to this). run_task sets it from the scorer.
  int64_t longest = 0;
  // generate: stop strings and the generation budget for lines that give none.
  std::optional<std::vector<std::string>> until;
  std::optional<int64_t> max_gen_tokens;
  // Multiple choice and loglikelihood.
  std::string file;              // task JSON Lines
  std::string examples;          // few-shot JSON Lines; empty = the task file
  std::string format = "cloze";  // cloze or letter
  // Perplexity: text files (one document each), or else a Megatron indexed dataset prefix.
  std::vector<std::string> text_files;
  std::string data;
};

struct TaskInfo {
  std::string name;
  std::string summary;
  bool synthetic = false;  // generates prompt/answer samples (and so can write training data)
};

// Every task, in the order `--help` and error messages list them.
const std::vector<TaskInfo>& tasks();
// The task called `name`; an unknown name throws naming it and the valid ones.
const TaskInfo& find_task(const std::string& name);

struct TaskResult {
  nlohmann::json json;          // the runner's metrics, breakdowns and memory, and "config"
  std::vector<MetricRow> rows;  // the table: task, metric, value, stderr, n
};

// Builds the task's inputs (generated samples or documents read from files), scores them with
// `scorer` and returns the metrics. "config" records the settings the task used, the seed and
// the scorer's batch and maximum length. With show_progress, a progress report on stderr.
TaskResult run_task(const std::string& name, Scorer& scorer, const TaskOptions& options, bool show_progress = true);

struct TrainingDataSummary {
  int64_t documents = 0, tokens = 0;
};
// A synthetic task's samples as training data: each prompt + " " + answer + "\n" one document
// of the indexed dataset PREFIX.bin/.idx, tokenized by `tokenizer`.
TrainingDataSummary write_task_training_data(const std::string& name, const TaskOptions& options, const Tokenizer& tokenizer,
                                             int64_t vocab_size, const std::string& prefix);

// What the results record about the model: its directory, type, pattern, parameters, the
// tokenizer, and the memory a sequence holds (state bytes, KV bytes per token).
nlohmann::json model_record(const Model& model, const Tokenizer& tokenizer, const std::string& dir);

}  // namespace mambalm::eval
