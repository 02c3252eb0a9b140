// The study's evaluation phase, per family on its final checkpoint, on the CPU:
//   perplexity        held-out texts (none trained on), lm-eval's rolling windows of the
//                     training sequence length for every family: token perplexity, bits per byte
//   phonebook         accuracy by book length (tokens) and depth, standard and reversed
//                     (question-first) formats, one few-shot example (eval/tasks/phonebook.h)
//   mqar              multi-query associative recall accuracy by number of pairs
//   selective_copy    selective-copy accuracy by sequence length (items)
// Lengths run past the training sequence length to show extrapolation. Task seeds differ
// from the synthetic training data's seed. Results: each family's in its marker,
// DIR/eval/<family>/done.json (it needs train/<family>/done.json only), all four in
// DIR/eval/done.json once every family's marker matches (--families: study/train_phase.h).
#pragma once
#include <nlohmann/json.hpp>

#include "study/study_plan.h"

namespace mambalm::study {

nlohmann::json run_eval_phase(const StudyPlan& plan);

}  // namespace mambalm::study
