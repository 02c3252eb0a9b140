// Scores the requests of an lm-eval samples file (eval/lm_eval_samples.h) with mambalm and
// aggregates them with lm-eval's metric definitions (lm_eval/api/task.py process_results and
// lm_eval/api/metrics.py):
//   loglikelihood          acc = mean(is_greedy); perplexity = exp(-mean(ll))
//   multiple_choice        acc = argmax(ll) is gold; acc_norm = argmax(ll / len(choice)) with
//                          len in code points; acc_bytes = by UTF-8 bytes; exact_match =
//                          is_greedy of the gold choice; acc_mutual_info = argmax(ll - ll
//                          of the choice after an empty context) (the second half of requests)
//   loglikelihood_rolling  word_perplexity = exp(-sum ll / sum words); byte_perplexity =
//                          exp(-sum ll / sum bytes); bits_per_byte = -sum ll / sum bytes / ln 2
//   generate_until         exact_match = (generated text == target), greedy decoding up to
//                          the request's stop sequences and max_gen_toks; lm-eval's filters
//                          (regex answer extraction) and metric options are not applied
// Means carry lm-eval's standard error (sample stdev / sqrt(n)); perplexities carry none
// (lm-eval bootstraps those).
//
// What a samples line does not hold is recovered as follows:
//   the choices (for acc_norm): each continuation without the target delimiter (" " unless
//     given) in front; multiple-input tasks (WinoGrande: one context per option, the same
//     continuation) have no choice texts, so acc_norm is not computed for them;
//   the gold index: `target` as an integer index, else the one choice equal to `target`, and
//     where that is ambiguous or absent, the index consistent with the per-document acc /
//     acc_norm lm-eval recorded for the answers in filtered_resps (for two options a recorded
//     acc always decides it); a document left ambiguous is an error naming it;
//   words and bytes of a rolling document: the counts lm-eval recorded with word_perplexity
//     and byte_perplexity (so a task's own count_words is kept), else Python's rules.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/lm_eval_samples.h"
#include "eval/runner.h"
#include "eval/scoring.h"

namespace mambalm::eval {

struct LmEvalScoreOptions {
  std::string target_delimiter = " ";  // lm-eval's default target_delimiter
};

// The gold choice of a multiple-choice sample with n choices; `choice_texts` may be empty when
// unknown. `how` (optional) receives which rule decided. Throws naming the document when none does.
int64_t resolve_mc_gold(const LmEvalSample& s, size_t n_choices, const std::vector<std::string>& choice_texts, std::string* how = nullptr);

// JSON: task, output_type, metrics {name: value, name_stderr: ..., n}, notes, and per document
// the responses in lm-eval's resps shape ([[ll, is_greedy], ...], [ll] or [text]) with token counts.
nlohmann::json score_lm_eval_samples(Scorer& scorer, const LmEvalSamplesFile& file, const LmEvalScoreOptions& opts,
                                     std::vector<MetricRow>& rows, const ProgressFn& progress = {});

}  // namespace mambalm::eval
