// The study's report phase: DIR/results.json (study/results.h), DIR/report.md (tables and the
// findings) and DIR/report.html, one self-contained page: the same tables, and charts drawn by
// Chart.js, whose minified build scripts/fetch-study-data.sh fetches from npm and which is
// inlined into the page (no network access when it is opened). Without the library the page
// keeps its tables and says how to get the charts. All three files are written atomically.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "study/study_plan.h"

namespace mambalm::study {

// Markdown: settings, data, models, language modelling, retrieval by length, speed, findings.
std::string render_markdown(const nlohmann::json& results);

// The HTML page; `chart_library` is the Chart.js UMD build's text ("" = no charts).
std::string render_html(const nlohmann::json& results, const std::string& chart_library);

// Gathers every phase's summary, writes the three files; returns results.json's content.
nlohmann::json run_report_phase(const StudyPlan& plan, const std::string& chart_library_path);

}  // namespace mambalm::study
