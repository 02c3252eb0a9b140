// The study's findings, judged on this run's numbers with stated thresholds:
//   (a) pure SSMs roughly match the Transformer on language modelling: Mamba's and Mamba-2's
//       held-out bits per byte at most 5% above the Transformer's (lower counts as matching);
//   (b) pure SSMs fall behind on copying and in-context retrieval: their mean accuracy over
//       phonebook, MQAR and selective copy below the Transformer's (with, as sub-results,
//       whether the gap grows with length and whether the question-first phonebook helps them);
//   (c) the hybrid matches or beats the Transformer everywhere: bits per byte at most 2% above and
//       retrieval mean accuracy no more than 0.02 below;
//   (d) the hybrid generates faster at long context: decode tokens/s above the Transformer's
//       at the longest context measured, with less memory per sequence;
//   (e) multiple choice in the letter format is hard for pure SSMs, the cloze format is not (the
//       study's 5-shot MMLU): on generated questions about a short passage (eval/tasks/facts_mc.h),
//       the Transformer's lead over each SSM is larger in letter-format accuracy than in cloze;
//       inconclusive unless the Transformer answers the letter format above chance.
// Each finding is "reproduced", "not reproduced", or "inconclusive" (for example when no model
// scored above zero on retrieval, there is nothing to compare).
#pragma once
#include <nlohmann/json.hpp>

namespace mambalm::study {

// `results` holds lm, retrieval and speed (results.h); returns [{id, claim, verdict, numbers, detail}].
nlohmann::json judge_findings(const nlohmann::json& results);

}  // namespace mambalm::study
