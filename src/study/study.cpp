#include "study/study.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "study/data_phase.h"
#include "study/eval_phase.h"
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
  if (wanted("report")) run_report_phase(plan, chart_library_path);
}

}  // namespace mambalm::study
