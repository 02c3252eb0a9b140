// mambalm plot: the loss curves of one or more training runs, overlaid (tools/mambalm/run_curves.h).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "run_curves.h"
#include "study/study_plan.h"

namespace mambalm::cli {

int cmd_plot(int argc, char** argv) {
  Args args("plot", "RUN [RUN...] --out FILE.html|FILE.png [options]",
            {{"out", "FILE", ".html: a self-contained page (Chart.js inlined); .png: an image drawn by gnuplot"},
             {"labels", "A,B,...", "one label per run (default: each run directory's name)"},
             {"x", "step|tokens", "the horizontal axis (default step)"},
             {"title", "T", "the title (default: the runs' labels)"},
             {"charts", "FILE", "Chart.js UMD build to inline (default $MAMBALM_CACHE/study/chart.umd.min.js)"}});
  if (!args.parse(argc, argv)) return 0;
  const std::vector<std::string>& runs = args.positional();
  check(!runs.empty(), "plot", "no run given", "mambalm plot RUN [RUN...] --out FILE.html");
  const std::string out = args.required("out");
  const bool html = out.ends_with(".html") || out.ends_with(".htm"), png = out.ends_with(".png");
  check(html || png, "--out", "'" + out + "' is neither .html nor .png");
  const std::string x = args.str("x", "step");
  check(x == "step" || x == "tokens", "--x", "unknown axis '" + x + "'", "valid: step, tokens");
  std::vector<std::string> labels = args.has("labels") ? split_list(args.str("labels")) : std::vector<std::string>{};
  check(labels.empty() || labels.size() == runs.size(), "--labels",
        std::to_string(labels.size()) + " labels for " + std::to_string(runs.size()) + " runs");
  std::vector<RunCurves> curves;
  std::string title;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::filesystem::path p = std::filesystem::absolute(runs[i]).lexically_normal();
    if (!std::filesystem::is_directory(p)) p = p.parent_path();
    const std::string label = labels.empty() ? (p.filename().empty() ? runs[i] : p.filename().string()) : labels[i];
    curves.push_back(read_run_curves(runs[i], label, x == "tokens"));
    title += (i ? ", " : "") + label;
  }
  title = args.str("title", title);
  const std::string x_label = x == "tokens" ? "tokens" : "step";
  if (png) {
    curves_png(curves, title, x_label, out);
  } else {
    const std::string lib = args.str("charts", study::default_chart_library());
    std::ifstream in(lib);
    check(in.good(), lib, "the charting library is missing", "run scripts/fetch-study-data.sh (scripts/setup.sh does), or pass --charts FILE");
    std::stringstream source;
    source << in.rdbuf();
    std::ofstream f(out);
    check(f.good(), out, "cannot write the page");
    f << curves_html(curves, title, x_label, source.str());
    f.close();
    check(f.good(), out, "writing the page failed", "disk full?");
  }
  std::printf("wrote %s: %zu run%s\n", out.c_str(), curves.size(), curves.size() == 1 ? "" : "s");
  return 0;
}

}  // namespace mambalm::cli
