#include <cstdio>
#include <filesystem>

#include "io/atomic_file.h"
#include "study/phase_marker.h"
#include "study/report.h"
#include "study/results.h"

namespace mambalm::study {

namespace fs = std::filesystem;

nlohmann::json run_report_phase(const StudyPlan& plan, const std::string& chart_library_path) {
  const bool have_charts = !chart_library_path.empty() && fs::exists(chart_library_path);
  nlohmann::json inputs = {{"charts", have_charts}};
  for (const char* phase : {"data", "train", "eval", "speed"}) inputs[phase] = done_fingerprint(plan.out_dir, phase);
  const std::string fp = fingerprint_of(inputs);
  const fs::path out(plan.out_dir);
  if (phase_done(plan.out_dir, "report", fp) && fs::exists(out / "results.json") && fs::exists(out / "report.html")) {
    std::printf("report: done (%s)\n", (out / "report.html").c_str());
    return nlohmann::json::parse(io::read_text_file((out / "results.json").string()));
  }
  const nlohmann::json results = assemble_results(plan, done_summary(plan.out_dir, "data"), done_summary(plan.out_dir, "train"),
                                                  done_summary(plan.out_dir, "eval"), done_summary(plan.out_dir, "speed"));
  std::string library;
  if (have_charts) {
    library = io::read_text_file(chart_library_path);
  } else {
    std::fprintf(stderr, "mambalm: warning: no charting library at %s: report.html has tables only (run scripts/fetch-study-data.sh)\n",
                 chart_library_path.c_str());
  }
  io::write_file_atomically((out / "results.json").string(), results.dump(2) + "\n");
  io::write_file_atomically((out / "report.md").string(), render_markdown(results));
  io::write_file_atomically((out / "report.html").string(), render_html(results, library));
  mark_done(plan.out_dir, "report", fp, {{"charts", have_charts}});
  std::printf("report: %s, %s, %s\n", (out / "results.json").c_str(), (out / "report.md").c_str(), (out / "report.html").c_str());
  for (const nlohmann::json& f : results["findings"])
    std::printf("  (%s) %s: %s\n", f["id"].get<std::string>().c_str(), f["verdict"].get<std::string>().c_str(),
                f["detail"].get<std::string>().c_str());
  return results;
}

}  // namespace mambalm::study
