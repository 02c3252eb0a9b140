// Finding (d) at the study's own shape, on a GPU: the generation-speed sweep of `mambalm bench
// --device cuda` (bench/generation_sweep.h) for transformer-8b and hybrid-8b with random bf16
// weights, best batch per context (the largest batch that fits in device memory included), and
// the hybrid's throughput over the Transformer's. The trained small models say how the families
// compare at this scale; this says what the same code does at 8B, on the same GPU in the same run.
// Measured once per study directory, with the hybrid's speed phase (DIR/speed/8b/done.json);
// a CPU run records why it is absent.
#pragma once
#include <nlohmann/json.hpp>

#include "study/study_plan.h"

namespace mambalm::study {

// The marker's summary (measured now, or read from an earlier run), or {"measured": false,
// "reason": ...} when this run does not measure it.
nlohmann::json speed_at_8b_shape(const StudyPlan& plan, const std::string& fingerprint);

}  // namespace mambalm::study
