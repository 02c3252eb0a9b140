// `mambalm study`: the study's comparisons at a small scale in one resumable command. The
// phases run in order, each skipped when its done-marker matches (study/phase_marker.h):
//   data -> train -> eval -> speed -> report
// One phase can run alone (its earlier phases must be done). With plan.only_families
// (--families) the train, eval and speed phases run those families alone, each depending only
// on its own markers; the phases' markers and the report wait for all four. See docs/study.md.
#pragma once
#include <string>

#include "study/study_plan.h"

namespace mambalm::study {

// The phases in order.
const std::vector<std::string>& phases();

// Runs `phase` ("all" = every phase in order). Throws StudyInterrupted (study/train_phase.h)
// when training was stopped by a signal after saving a checkpoint.
void run_study(const StudyPlan& plan, const std::string& phase, const std::string& chart_library_path);

}  // namespace mambalm::study
