#include "eval/generation_metrics.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <functional>
#include <map>
#include <sstream>

#include "core/error.h"
#include "eval/jsonl.h"

namespace mambalm::eval {

namespace {

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Python's str.split(): runs of whitespace separate, none at either end.
std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (is_space(c)) {
      if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

double max_over(const std::vector<std::string>& refs, const std::function<double(const std::string&)>& f) {
  double best = 0;
  for (const std::string& r : refs) best = std::max(best, f(r));
  return best;
}

}  // namespace

std::string ruler_postprocess(const std::string& pred) {
  std::string s = trim(pred);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '\n';
  return trim(s);
}

double string_match_all(const std::string& pred, const std::vector<std::string>& refs) {
  if (refs.empty()) return 0;
  const std::string p = ascii_lower(ruler_postprocess(pred));
  double hits = 0;
  for (const std::string& r : refs) hits += p.find(ascii_lower(r)) != std::string::npos ? 1.0 : 0.0;
  return hits / static_cast<double>(refs.size());
}

double string_match_part(const std::string& pred, const std::vector<std::string>& refs) {
  const std::string p = ascii_lower(ruler_postprocess(pred));
  return max_over(refs, [&](const std::string& r) { return p.find(ascii_lower(r)) != std::string::npos ? 1.0 : 0.0; });
}

std::string squad_normalize(const std::string& s) {
  // Lower case, then ASCII punctuation (Python's string.punctuation) removed.
  std::string t;
  for (char c : ascii_lower(s))
    if (!(c >= 33 && c <= 126 && !std::isalnum(static_cast<unsigned char>(c)))) t += c;
  // Articles removed as whole words (regex \b(a|an|the)\b, then whitespace collapsed: after the
  // punctuation is gone, word boundaries around a letter run are whitespace or the ends).
  std::string out;
  for (const std::string& w : split_words(t)) {
    if (w == "a" || w == "an" || w == "the") continue;
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

double squad_exact(const std::string& pred, const std::vector<std::string>& refs) {
  const std::string p = squad_normalize(pred);
  return max_over(refs, [&](const std::string& r) { return squad_normalize(r) == p ? 1.0 : 0.0; });
}

double squad_f1(const std::string& pred, const std::vector<std::string>& refs) {
  const std::vector<std::string> p = split_words(squad_normalize(pred));
  return max_over(refs, [&](const std::string& r) {
    const std::vector<std::string> g = split_words(squad_normalize(r));
    if (p.empty() || g.empty()) return p.empty() && g.empty() ? 1.0 : 0.0;
    std::map<std::string, int64_t> counts;
    for (const std::string& w : g) ++counts[w];
    int64_t same = 0;
    for (const std::string& w : p) {
      auto it = counts.find(w);
      if (it != counts.end() && it->second > 0) --it->second, ++same;
    }
    if (same == 0) return 0.0;
    const double precision = static_cast<double>(same) / static_cast<double>(p.size());
    const double recall = static_cast<double>(same) / static_cast<double>(g.size());
    return 2 * precision * recall / (precision + recall);
  });
}

double contains_match(const std::string& pred, const std::vector<std::string>& refs) {
  const std::string p = squad_normalize(pred);
  return max_over(refs, [&](const std::string& r) {
    const std::string n = squad_normalize(r);
    return !n.empty() && p.find(n) != std::string::npos ? 1.0 : 0.0;
  });
}

GenerationMetric generation_metric(const std::string& name) {
  if (name == "string_match_all") return string_match_all;
  if (name == "string_match_part") return string_match_part;
  if (name == "exact_match") return squad_exact;
  if (name == "f1") return squad_f1;
  if (name == "contains") return contains_match;
  fail("metric", "unknown generation metric '" + name + "'", "valid: string_match_all, string_match_part, exact_match, f1, contains");
}

nlohmann::json run_scored_generation(Scorer& scorer, const std::string& task, const std::vector<GenerationSample>& samples,
                                     const std::vector<std::string>& metrics, std::vector<MetricRow>& rows,
                                     const ProgressFn& progress) {
  check(!samples.empty(), task, "no samples to evaluate");
  check(!metrics.empty(), task, "no metrics to score with");
  std::vector<GenerationMetric> fns;
  for (const std::string& m : metrics) fns.push_back(generation_metric(m));
  const auto start = std::chrono::steady_clock::now();
  const int64_t processed0 = scorer.tokens_processed();
  std::vector<std::vector<double>> scores(metrics.size());
  // tag -> value -> (first metric's scores, prompt tokens)
  std::map<std::string, std::map<std::string, std::pair<std::vector<double>, std::vector<double>>, TagValueLess>> groups;
  std::map<std::string, nlohmann::json> memory_by_length;
  int64_t max_state = 0, max_kv = 0;
  nlohmann::json examples = nlohmann::json::array();
  for (size_t i = 0; i < samples.size(); ++i) {
    const GenerationSample& s = samples[i];
    const std::vector<std::string> refs = s.references.empty() ? std::vector<std::string>{s.answer} : s.references;
    GenerateUntilResult r = scorer.generate_until(s.prompt, {.until = s.until, .max_gen_tokens = s.max_gen_tokens});
    for (size_t m = 0; m < fns.size(); ++m) scores[m].push_back(fns[m](r.text, refs));
    max_state = std::max(max_state, r.ssm_state_bytes);
    max_kv = std::max(max_kv, r.kv_cache_bytes);
    for (const auto& [k, v] : s.tags) {
      auto& g = groups[k][v];
      g.first.push_back(scores[0].back());
      g.second.push_back(static_cast<double>(r.prompt_tokens));
    }
    if (s.tags.count("length")) {
      nlohmann::json& mem = memory_by_length[s.tags.at("length")];
      if (mem.is_null()) mem = nlohmann::json::object();
      mem["prompt_tokens"] = std::max<int64_t>(mem.value("prompt_tokens", int64_t{0}), r.prompt_tokens);
      mem["ssm_state_bytes"] = std::max<int64_t>(mem.value("ssm_state_bytes", int64_t{0}), r.ssm_state_bytes);
      mem["kv_cache_bytes"] = std::max<int64_t>(mem.value("kv_cache_bytes", int64_t{0}), r.kv_cache_bytes);
    }
    if (examples.size() < 3)
      examples.push_back({{"references", refs}, {"generated", r.text}, {metrics[0], scores[0].back()}, {"tags", s.tags}});
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json j;
  const int64_t n = static_cast<int64_t>(samples.size());
  j["metrics"]["n"] = n;
  for (size_t m = 0; m < metrics.size(); ++m) {
    auto [mean, se] = mean_stderr(scores[m]);
    j["metrics"][metrics[m]] = mean;
    j["metrics"][metrics[m] + "_stderr"] = se;
    rows.push_back({task, metrics[m], mean, se, n});
  }
  for (const auto& [k, values] : groups) {
    for (const auto& [v, g] : values) {
      auto [mean, se] = mean_stderr(g.first);
      double pt = 0;
      for (double t : g.second) pt += t;
      j["breakdown"][k][v] = {{metrics[0], mean}, {"stderr", se}, {"n", g.first.size()}, {"prompt_tokens", pt / static_cast<double>(g.second.size())}};
      if (k != "format") rows.push_back({task, metrics[0] + "[" + k + "=" + v + "]", mean, se, static_cast<int64_t>(g.first.size())});
    }
  }
  j["memory"] = {{"ssm_state_bytes", max_state}, {"kv_cache_bytes", max_kv}, {"by_length", memory_by_length}};
  const int64_t processed = scorer.tokens_processed() - processed0;
  j["speed"] = {{"seconds", secs}, {"tokens_processed", processed}, {"tokens_per_second", secs > 0 ? processed / secs : 0.0}};
  j["examples"] = examples;
  return j;
}

std::vector<GenerationSample> read_generation_jsonl(const std::string& path, const std::vector<std::string>& until,
                                                    int64_t max_gen_tokens) {
  const std::string hint = "{\"prompt\": str, \"answers\": [str, ...]} per line (or \"answer\": str; optional \"until\", \"max_gen_toks\")";
  std::vector<GenerationSample> out;
  for_each_jsonl_object(
      path,
      [&](const nlohmann::json& o, const std::string& where, int64_t) {
        GenerationSample g;
        const char* prompt_key = o.contains("prompt") ? "prompt" : o.contains("context") ? "context" : "question";
        check(o.contains(prompt_key) && o[prompt_key].is_string(), where, "no prompt", hint);
        g.prompt = o[prompt_key].get<std::string>();
        if (o.contains("answers")) {
          check(o["answers"].is_array() && !o["answers"].empty(), where, "\"answers\" must be a non-empty list of strings", hint);
          for (const auto& a : o["answers"]) {
            check(a.is_string(), where, "\"answers\" must be a non-empty list of strings", hint);
            g.references.push_back(a.get<std::string>());
          }
        } else {
          check(o.contains("answer") && o["answer"].is_string(), where, "no \"answers\" or \"answer\"", hint);
          g.references.push_back(o["answer"].get<std::string>());
        }
        g.answer = g.references.front();
        g.until = until;
        if (o.contains("until")) {
          g.until.clear();
          if (o["until"].is_string()) {
            g.until.push_back(o["until"].get<std::string>());
          } else {
            check(o["until"].is_array(), where, "\"until\" must be a string or a list of strings", hint);
            for (const auto& u : o["until"]) {
              check(u.is_string(), where, "\"until\" must be a string or a list of strings", hint);
              g.until.push_back(u.get<std::string>());
            }
          }
        }
        g.max_gen_tokens = max_gen_tokens;
        if (o.contains("max_gen_toks")) {
          check(o["max_gen_toks"].is_number_integer() && o["max_gen_toks"].get<int64_t>() > 0, where, "\"max_gen_toks\" must be a positive integer");
          g.max_gen_tokens = o["max_gen_toks"].get<int64_t>();
        }
        out.push_back(std::move(g));
      },
      hint);
  check(!out.empty(), path, "no samples in the file", hint);
  return out;
}

std::vector<std::string> parse_stop_list(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      const char e = text[++i];
      cur += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
    } else if (c == ',') {
      out.push_back(std::move(cur)), cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(std::move(cur));
  for (const std::string& s : out) check(!s.empty(), "--until", "an empty stop string in '" + text + "'", "write \\, for a comma");
  return out;
}

}  // namespace mambalm::eval
