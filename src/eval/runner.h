// Task runners: turn samples into metrics with standard errors, per-bucket breakdowns and the
// memory the model's SequenceState held, as JSON (the shape `mambalm eval --output` writes)
// and as table rows (task, metric, value, stderr, n).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/scoring.h"
#include "eval/tasks/generation_task.h"
#include "eval/tasks/loglikelihood_task.h"
#include "eval/tasks/multiple_choice.h"

namespace mambalm::eval {

struct MetricRow {
  std::string task, metric;
  double value = 0, stderr_ = 0;
  int64_t n = 0;
};

// Mean and lm-eval's standard error of the mean (sample stdev / sqrt(n)).
std::pair<double, double> mean_stderr(const std::vector<double>& xs);

using ProgressFn = std::function<void(int64_t done)>;

// Orders breakdown values ("500", "1000", "300 x 0.5") by their leading number, then as text,
// so tables list lengths from short to long.
struct TagValueLess {
  bool operator()(const std::string& a, const std::string& b) const;
};

// Greedy generation with exact match. JSON: metrics {exact_match}, breakdown[tag][value] and
// breakdown["length x depth"] cells {acc, stderr, n, prompt_tokens}, memory {ssm_state_bytes,
// kv_cache_bytes (max over samples), per length}, and tokens/s.
nlohmann::json run_generation(Scorer& scorer, const std::string& task, const std::vector<GenerationSample>& samples,
                              std::vector<MetricRow>& rows, const ProgressFn& progress = {});

nlohmann::json run_multiple_choice(Scorer& scorer, const std::string& task, const std::vector<McDoc>& docs,
                                   const std::vector<McDoc>& examples, const McOptions& opts, std::vector<MetricRow>& rows,
                                   const ProgressFn& progress = {});

// lm-eval's loglikelihood task: acc (all continuation tokens greedy) and perplexity
// (exp of minus the mean log-likelihood per document); predictions hold each document's
// log-likelihood, is_greedy and token count.
nlohmann::json run_loglikelihood(Scorer& scorer, const std::string& task, const std::vector<LoglikelihoodDoc>& docs,
                                 std::vector<MetricRow>& rows, const ProgressFn& progress = {});

// Perplexity over documents (texts, or token lists when `texts` is empty): token perplexity,
// and with texts also word perplexity, byte perplexity and bits per byte (lm-eval's definitions:
// words counted as len(re.split(r"\s+", doc)), bytes as UTF-8 bytes).
nlohmann::json run_perplexity(Scorer& scorer, const std::string& task, const std::vector<std::string>& texts,
                              const std::vector<std::vector<int32_t>>& token_docs, std::vector<MetricRow>& rows,
                              const ProgressFn& progress = {});

// The table printed on stdout.
std::string format_table(const std::vector<MetricRow>& rows);

}  // namespace mambalm::eval
