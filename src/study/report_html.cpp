// report.html: report.md's text and tables turned into HTML (so both show the same numbers),
// then the charts, drawn in the browser by the inlined Chart.js from results.json, which the
// page carries in a <script type="application/json"> element.
#include <sstream>
#include <string>

#include "study/report.h"

namespace mambalm::study {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// **bold** and `code` inside an escaped line.
std::string inline_markup(const std::string& text) {
  std::string s = escape(text), out;
  bool bold = false, code = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "**") == 0) {
      out += bold ? "</strong>" : "<strong>";
      bold = !bold;
      ++i;
    } else if (s[i] == '`') {
      out += code ? "</code>" : "<code>";
      code = !code;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> table_cells(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 1;
  while (start < line.size()) {
    const size_t bar = line.find('|', start);
    if (bar == std::string::npos) break;
    std::string c = line.substr(start, bar - start);
    const size_t a = c.find_first_not_of(' '), b = c.find_last_not_of(' ');
    cells.push_back(a == std::string::npos ? "" : c.substr(a, b - a + 1));
    start = bar + 1;
  }
  return cells;
}

// The subset of Markdown render_markdown writes: headings, paragraphs, bullet lists, tables.
std::string markdown_to_html(const std::string& md) {
  std::istringstream in(md);
  std::string line, html;
  bool list = false, table = false, table_head = false;
  auto close = [&]() {
    if (list) html += "</ul>\n";
    if (table) html += "</tbody></table>\n";
    list = table = false;
  };
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) == 0) {
      if (!table) {
        close();
        html += "<table><thead>";
        table = table_head = true;
      }
      if (line.rfind("|---", 0) == 0) {
        html += "</thead><tbody>\n";
        table_head = false;
        continue;
      }
      html += "<tr>";
      for (const std::string& c : table_cells(line))
        html += (table_head ? "<th>" : "<td>") + inline_markup(c) + (table_head ? "</th>" : "</td>");
      html += "</tr>\n";
      continue;
    }
    if (line.rfind("- ", 0) == 0) {
      if (!list) {
        close();
        html += "<ul>\n";
        list = true;
      }
      html += "<li>" + inline_markup(line.substr(2)) + "</li>\n";
      continue;
    }
    close();
    if (line.empty()) continue;
    int level = 0;
    while (level < static_cast<int>(line.size()) && line[static_cast<size_t>(level)] == '#') ++level;
    if (level > 0) {
      const std::string tag = "h" + std::to_string(level);
      html += "<" + tag + ">" + inline_markup(line.substr(static_cast<size_t>(level) + 1)) + "</" + tag + ">\n";
    } else {
      html += "<p>" + inline_markup(line) + "</p>\n";
    }
  }
  close();
  return html;
}

// Draws every chart from the results element; runs in the browser after the library.
const char* const kChartScript = R"JS(
const R = JSON.parse(document.getElementById('results').textContent);
const COLORS = {transformer: '#1f77b4', mamba: '#ff7f0e', mamba2: '#2ca02c', hybrid: '#d62728'};
const byNumber = (a, b) => Number(a) - Number(b);
function chart(id, type, data, xTitle, yTitle, xType, yRange) {
  new Chart(document.getElementById(id), {type, data, options: {animation: false, responsive: true,
    scales: {x: {type: xType || (type === 'bar' ? 'category' : 'linear'), title: {display: true, text: xTitle}},
             y: Object.assign({title: {display: true, text: yTitle}}, yRange || {})}}});
}
function series(f, points, extra) {
  return Object.assign({label: f, data: points, borderColor: COLORS[f], backgroundColor: COLORS[f], pointRadius: 2}, extra || {});
}
chart('chart-loss', 'line', {datasets: R.families.flatMap(f => [
  series(f, R.loss_curves[f].map(p => ({x: p.step, y: p.loss}))),
  series(f + ' (held-out)', R.loss_curves[f].filter(p => p.val_loss !== undefined).map(p => ({x: p.step, y: p.val_loss})),
         {borderColor: COLORS[f], borderDash: [6, 3]})])}, 'step', 'loss (nats per token)');
chart('chart-bpb', 'bar', {labels: R.families, datasets: [{label: 'held-out bits per byte',
  data: R.families.map(f => R.lm[f].bits_per_byte), backgroundColor: R.families.map(f => COLORS[f])}]}, 'model', 'bits per byte');
for (const task of ['phonebook', 'phonebook_reversed', 'mqar', 'selective_copy']) {
  const lengths = Object.keys(R.retrieval[R.families[0]][task].by_length).sort(byNumber);
  chart('chart-' + task, 'line', {labels: lengths, datasets: R.families.map(f =>
    series(f, lengths.map(l => R.retrieval[f][task].by_length[l])))}, 'length', 'accuracy', 'category', {min: 0, max: 1});
}
if (R.multiple_choice) {
  const formats = ['cloze', 'letter'];
  new Chart(document.getElementById('chart-mc'), {type: 'bar', data: {labels: R.families.filter(f => R.multiple_choice[f]),
    datasets: formats.map((fmt, i) => ({label: fmt + ' acc', data: R.families.filter(f => R.multiple_choice[f]).map(f => R.multiple_choice[f][fmt].acc),
      backgroundColor: i ? '#9467bd' : '#17becf'})).concat([{type: 'line', label: 'chance',
      data: R.families.filter(f => R.multiple_choice[f]).map(() => R.multiple_choice_settings.chance), borderColor: '#888',
      borderDash: [4, 4], pointRadius: 0}])},
    options: {animation: false, responsive: true, scales: {x: {title: {display: true, text: 'model'}},
      y: {min: 0, max: 1, title: {display: true, text: 'accuracy'}}}}});
}
const contexts = R.speed[R.families[0]].map(c => String(c.context));
chart('chart-decode', 'line', {labels: contexts, datasets: R.families.map(f =>
  series(f, R.speed[f].map(c => c.decode_tokens_per_s)))}, 'context (tokens)', 'decode tokens/s', 'category', {min: 0});
chart('chart-memory', 'line', {labels: contexts, datasets: R.families.map(f =>
  series(f, R.speed[f].map(c => c.memory_per_sequence_bytes / 1024)))}, 'context (tokens)', 'KiB per sequence', 'category');
)JS";

const char* const kCharts[][2] = {
    {"chart-loss", "Training loss (solid) and held-out loss (dashed)"},
    {"chart-bpb", "Held-out bits per byte (lower is better)"},
    {"chart-phonebook", "Phonebook accuracy by book length (standard format)"},
    {"chart-phonebook_reversed", "Phonebook accuracy by book length (reversed: question first)"},
    {"chart-mqar", "Associative recall accuracy by key-value pairs"},
    {"chart-selective_copy", "Selective copy accuracy by sequence length (items)"},
    {"chart-mc", "Multiple choice accuracy: cloze vs letter format"},
    {"chart-decode", "Decode throughput by context length"},
    {"chart-memory", "Memory per sequence by context length"},
};

}  // namespace

std::string render_html(const nlohmann::json& results, const std::string& chart_library) {
  std::string json_text = results.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (size_t at = json_text.find("</"); at != std::string::npos; at = json_text.find("</", at + 3)) json_text.replace(at, 2, "<\\/");
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>mambalm study: " +
                  escape(results["study"]["scale"].get<std::string>()) + "</title>\n<style>\n"
                  "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\n"
                  "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\n"
                  "td:first-child,th:first-child{text-align:left}code{font-size:90%}\n"
                  ".charts{display:grid;grid-template-columns:1fr 1fr;gap:1.5em}.charts figure{margin:0}\n"
                  "figcaption{font-weight:600;margin-bottom:.3em}.note{background:#fff3cd;padding:.5em 1em}\n"
                  "</style></head><body>\n";
  h += "<section id=\"report\">\n" + markdown_to_html(render_markdown(results)) + "</section>\n";
  h += "<section id=\"charts\"><h2>Charts</h2>\n";
  if (chart_library.empty()) {
    h += "<p class=\"note\">Charts need Chart.js: run scripts/fetch-study-data.sh, then mambalm study --phase report.</p>\n";
  } else {
    h += "<div class=\"charts\">\n";
    for (const auto& c : kCharts)
      h += std::string("<figure><figcaption>") + c[1] + "</figcaption><canvas id=\"" + c[0] + "\"></canvas></figure>\n";
    h += "</div>\n";
  }
  h += "</section>\n<script type=\"application/json\" id=\"results\">\n" + json_text + "\n</script>\n";
  if (!chart_library.empty()) {
    h += "<script>\n" + chart_library + "\n</script>\n<script>\n" + kChartScript + "</script>\n";
  }
  return h + "</body></html>\n";
}

}  // namespace mambalm::study
