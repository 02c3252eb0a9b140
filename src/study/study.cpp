#include "study/study.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "study/data_phase.h"
#include "study/eval_phase.h"
#include "study/phase_marker.h"
#include "study/report.h"
#include "study/speed_phase.h"
#include "study/train_phase.h"

namespace mambalm::study {

const std::vector<std::string>& phases() {
  static const std::vector<std::string> p = {"data", "train", "eval", "speed", "report"};
  return p;
}

void run_study(const StudyPlan& plan, const std::string& phase, const std::string& chart_library_path) {
  bool known = phase == "all";
  for (const std::string& p : phases()) known = known || p == phase;
  check(known, "--phase", "unknown phase '" + phase + "'", "valid: all, data, train, eval, speed, report");
  std::filesystem::create_directories(plan.out_dir);
  const auto wanted = [&](const char* p) { return phase == "all" || phase == p; };
  if (wanted("data")) run_data_phase(plan);
  if (wanted("train")) run_train_phase(plan);
  if (wanted("eval")) run_eval_phase(plan);
  if (wanted("speed")) run_speed_phase(plan);
  if (wanted("report")) {
    // With --families the report waits until every family's results are here (merged from the
    // runs that made them, scripts/study-merge.sh): the phases' markers say so.
    bool all_done = true;
    for (const char* p : {"train", "eval", "speed"}) all_done = all_done && std::filesystem::exists(marker_path(plan.out_dir, p));
    if (phase == "all" && !plan.only_families.empty() && !all_done)
      std::printf("report: not yet: the other families' results are not here (merge them, then rerun without --families)\n");
    else
      run_report_phase(plan, chart_library_path);
  }
}

}  // namespace mambalm::study
