#include "run_curves.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace mambalm::cli {

namespace fs = std::filesystem;

RunCurves read_run_curves(const std::string& run, const std::string& label, bool x_tokens) {
  const std::string path = fs::is_directory(run) ? (fs::path(run) / "metrics.jsonl").string() : run;
  std::ifstream in(path);
  check(in.good(), path, "cannot read the run's metrics", "give a run directory of `mambalm train` or its metrics.jsonl");
  RunCurves c;
  c.label = label;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      fail(where, std::string("malformed metrics line: ") + e.what());
    }
    check(row.is_object() && row.contains("step") && row["step"].is_number(), where, "a metrics line needs a numeric \"step\"");
    const char* xkey = x_tokens ? "tokens" : "step";
    check(row.contains(xkey) && row[xkey].is_number(), where, std::string("no numeric \"") + xkey + "\"");
    const double x = row[xkey].get<double>();
    if (row.contains("loss") && row["loss"].is_number()) c.loss.emplace_back(x, row["loss"].get<double>());
    if (row.contains("val_loss") && row["val_loss"].is_number()) c.val_loss.emplace_back(x, row["val_loss"].get<double>());
  }
  check(!c.loss.empty(), path, "no training loss in the run's metrics");
  return c;
}

namespace {

std::string escape_html(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '<') out += "&lt;";
    else if (ch == '>') out += "&gt;";
    else if (ch == '&') out += "&amp;";
    else out += ch;
  }
  return out;
}

nlohmann::json points(const std::vector<std::pair<double, double>>& xy) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& [x, y] : xy) a.push_back({{"x", x}, {"y", y}});
  return a;
}

}  // namespace

std::string curves_html(const std::vector<RunCurves>& runs, const std::string& title, const std::string& x_label,
                        const std::string& chart_library_source) {
  nlohmann::json data = {{"x_label", x_label}, {"runs", nlohmann::json::array()}};
  for (const RunCurves& r : runs)
    data["runs"].push_back({{"label", r.label}, {"loss", points(r.loss)}, {"val_loss", points(r.val_loss)}});
  // The data travels as JSON in its own element; "</" is escaped so no value can close it.
  std::string json = data.dump();
  for (size_t p = 0; (p = json.find("</", p)) != std::string::npos; p += 3) json.replace(p, 2, "<\\/");
  std::ostringstream h;
  h << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" << escape_html(title) << "</title>\n"
    << "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}.c{height:380px;margin-bottom:2em}</style>\n"
    << "<script>" << chart_library_source << "</script></head><body>\n<h1>" << escape_html(title) << "</h1>\n"
    << "<div class=\"c\"><canvas id=\"loss\"></canvas></div>\n<div class=\"c\"><canvas id=\"val\"></canvas></div>\n"
    << "<script type=\"application/json\" id=\"curves\">" << json << "</script>\n"
    << "<script>\nconst d = JSON.parse(document.getElementById('curves').textContent);\n"
    << "const colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];\n"
    << "function draw(id, key, name) {\n"
    << "  const sets = d.runs.filter(r => r[key].length).map((r, i) => ({label: r.label, data: r[key], showLine: true,\n"
    << "    borderColor: colours[i % colours.length], backgroundColor: colours[i % colours.length], pointRadius: key === 'val_loss' ? 3 : 0,\n"
    << "    borderWidth: 1.5}));\n"
    << "  new Chart(document.getElementById(id), {type: 'scatter', data: {datasets: sets}, options: {animation: false,\n"
    << "    maintainAspectRatio: false, plugins: {title: {display: true, text: name}},\n"
    << "    scales: {x: {title: {display: true, text: d.x_label}}, y: {title: {display: true, text: 'loss (nats per token)'}}}}});\n"
    << "}\ndraw('loss', 'loss', 'training loss');\ndraw('val', 'val_loss', 'validation loss');\n</script>\n</body></html>\n";
  return h.str();
}

void curves_png(const std::vector<RunCurves>& runs, const std::string& title, const std::string& x_label,
                const std::string& png) {
  char tmpl[] = "/tmp/mambalm-plot-XXXXXX";
  check(::mkdtemp(tmpl) != nullptr, "plot", "cannot create a temporary directory");
  const fs::path tmp = tmpl;
  auto quote = [](std::string s) {  // a gnuplot string in double quotes
    std::string out = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    return out + "\"";
  };
  std::ostringstream script;
  script << "set terminal png size 1400,520\nset output " << quote(fs::absolute(png).string()) << "\n"
         << "set multiplot layout 1,2 title " << quote(title) << "\nset grid\nset key top right\n"
         << "set xlabel " << quote(x_label) << "\nset ylabel \"loss (nats per token)\"\n";
  for (const char* key : {"loss", "val_loss"}) {
    script << "set title " << quote(std::string(key) == "loss" ? "training loss" : "validation loss") << "\nplot ";
    bool any = false;
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto& xy = std::string(key) == "loss" ? runs[i].loss : runs[i].val_loss;
      if (xy.empty()) continue;
      const fs::path f = tmp / (std::string(key) + "-" + std::to_string(i) + ".dat");
      std::ofstream out(f);
      for (const auto& [x, y] : xy) out << x << " " << y << "\n";
      script << (any ? ", " : "") << quote(f.string()) << " using 1:2 with "
             << (std::string(key) == "loss" ? "lines" : "linespoints") << " title " << quote(runs[i].label);
      any = true;
    }
    if (!any) script << "NaN notitle";
    script << "\n";
  }
  script << "unset multiplot\n";
  const fs::path script_path = tmp / "plot.gp";
  std::ofstream(script_path) << script.str();
  const std::string cmd = "gnuplot " + quote(script_path.string()) + " 2>" + quote((tmp / "err.txt").string());
  const int rc = std::system(cmd.c_str());
  std::string err;
  if (std::ifstream e(tmp / "err.txt"); e) std::getline(e, err);
  fs::remove_all(tmp);
  check(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) != 127, "plot", "gnuplot is not installed",
        "install it (apt-get install gnuplot-nox; scripts/setup.sh does) or write an .html file");
  check(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "plot", "gnuplot failed" + (err.empty() ? std::string() : ": " + err));
}

}  // namespace mambalm::cli
