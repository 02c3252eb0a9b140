// The study's speed phase: for each family (its trained model) and each context length, a
// random prompt of that length is prefilled and greedy decoding is timed, one sequence, on the
// CPU; the memory a sequence holds (SSM state + KV cache) is read from its SequenceState.
// This is the study's finding (d) at this scale: an attention layer's KV cache grows with the
// context, a Mamba layer's state does not. On a GPU it also runs the 8B-shape comparison of
// `mambalm bench --device cuda` (study/speed_8b_shape.h).
// Each family's rows go to DIR/speed/<family>/done.json (it needs train/<family>/done.json
// only), all four to DIR/speed/done.json once every family's marker matches (--families).
#pragma once
#include <nlohmann/json.hpp>

#include "study/study_plan.h"

namespace mambalm::study {

nlohmann::json run_speed_phase(const StudyPlan& plan);

}  // namespace mambalm::study
