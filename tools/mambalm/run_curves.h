// The loss curves of training runs (their metrics.jsonl), for `mambalm plot`: read, then drawn
// as a self-contained HTML page (Chart.js inlined) or a PNG (through gnuplot).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mambalm::cli {

struct RunCurves {
  std::string label;
  std::vector<std::pair<double, double>> loss;      // (x, training loss) per logged step
  std::vector<std::pair<double, double>> val_loss;  // (x, validation loss) where validated
};

// RUN is a run directory (RUN/metrics.jsonl) or a metrics file; x is the step or, with
// `x_tokens`, the tokens seen. A missing file, a malformed line or a run without a loss is a
// one-line error naming the file (and line).
RunCurves read_run_curves(const std::string& run, const std::string& label, bool x_tokens);

// A page that draws the training and validation curves of every run, overlaid, with the
// charting library's source inlined (no network needed to view it).
std::string curves_html(const std::vector<RunCurves>& runs, const std::string& title, const std::string& x_label,
                        const std::string& chart_library_source);

// Writes `png` through gnuplot (training loss and validation loss side by side).
void curves_png(const std::vector<RunCurves>& runs, const std::string& title, const std::string& x_label,
                const std::string& png);

}  // namespace mambalm::cli
