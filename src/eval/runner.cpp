#include "eval/runner.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/error.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

std::pair<double, double> mean_stderr(const std::vector<double>& xs) {
  if (xs.empty()) return {0, 0};
  double m = 0;
  for (double x : xs) m += x;
  m /= static_cast<double>(xs.size());
  if (xs.size() < 2) return {m, 0};
  double v = 0;
  for (double x : xs) v += (x - m) * (x - m);
  v /= static_cast<double>(xs.size() - 1);
  return {m, std::sqrt(v / static_cast<double>(xs.size()))};
}

bool TagValueLess::operator()(const std::string& a, const std::string& b) const {
  char *ea = nullptr, *eb = nullptr;
  const double x = std::strtod(a.c_str(), &ea), y = std::strtod(b.c_str(), &eb);
  const bool na = ea != a.c_str(), nb = eb != b.c_str();
  if (na != nb) return na;  // numbers first
  if (na && x != y) return x < y;
  if (na && std::string(ea) != std::string(eb)) return std::string(ea) < std::string(eb);
  return a < b;  // equal numbers written differently stay apart
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

nlohmann::json cell(const std::vector<double>& hits, const std::vector<double>& prompt_tokens) {
  auto [m, se] = mean_stderr(hits);
  double pt = 0;
  for (double t : prompt_tokens) pt += t;
  return {{"acc", m}, {"stderr", se}, {"n", hits.size()}, {"prompt_tokens", prompt_tokens.empty() ? 0.0 : pt / static_cast<double>(prompt_tokens.size())}};
}

}  // namespace

nlohmann::json run_generation(Scorer& scorer, const std::string& task, const std::vector<GenerationSample>& samples,
                              std::vector<MetricRow>& rows, const ProgressFn& progress) {
  check(!samples.empty(), task, "no samples to evaluate");
  const auto start = std::chrono::steady_clock::now();
  const int64_t processed0 = scorer.tokens_processed();
  std::vector<double> hits, prompt_tokens;
  // tag -> value -> (hits, prompt tokens); "length x depth" cells when both tags exist.
  std::map<std::string, std::map<std::string, std::pair<std::vector<double>, std::vector<double>>, TagValueLess>> groups;
  std::map<std::string, nlohmann::json> memory_by_length;
  int64_t max_state = 0, max_kv = 0;
  nlohmann::json examples = nlohmann::json::array();
  for (size_t i = 0; i < samples.size(); ++i) {
    const GenerationSample& s = samples[i];
    GenerateUntilResult r = scorer.generate_until(s.prompt, {.until = s.until, .max_gen_tokens = s.max_gen_tokens});
    const double hit = exact_match(r.text, s.answer) ? 1.0 : 0.0;
    hits.push_back(hit);
    prompt_tokens.push_back(static_cast<double>(r.prompt_tokens));
    max_state = std::max(max_state, r.ssm_state_bytes);
    max_kv = std::max(max_kv, r.kv_cache_bytes);
    std::vector<std::pair<std::string, std::string>> keys(s.tags.begin(), s.tags.end());
    if (s.tags.count("length") && s.tags.count("depth")) keys.emplace_back("length x depth", s.tags.at("length") + " x " + s.tags.at("depth"));
    for (const auto& [k, v] : keys) {
      auto& g = groups[k][v];
      g.first.push_back(hit);
      g.second.push_back(static_cast<double>(r.prompt_tokens));
    }
    if (s.tags.count("length")) {
      nlohmann::json& m = memory_by_length[s.tags.at("length")];
      if (m.is_null()) m = nlohmann::json::object();
      m["prompt_tokens"] = std::max<int64_t>(m.value("prompt_tokens", int64_t{0}), r.prompt_tokens);
      m["ssm_state_bytes"] = std::max<int64_t>(m.value("ssm_state_bytes", int64_t{0}), r.ssm_state_bytes);
      m["kv_cache_bytes"] = std::max<int64_t>(m.value("kv_cache_bytes", int64_t{0}), r.kv_cache_bytes);
    }
    if (examples.size() < 3) examples.push_back({{"answer", s.answer}, {"generated", r.text}, {"tags", s.tags}});
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  const double secs = seconds_since(start);
  auto [acc, se] = mean_stderr(hits);
  rows.push_back({task, "exact_match", acc, se, static_cast<int64_t>(hits.size())});
  nlohmann::json j;
  j["metrics"] = {{"exact_match", acc}, {"exact_match_stderr", se}, {"n", hits.size()}};
  for (const auto& [k, values] : groups) {
    for (const auto& [v, g] : values) {
      j["breakdown"][k][v] = cell(g.first, g.second);
      if (k != "format") {
        auto [m, e] = mean_stderr(g.first);
        rows.push_back({task, "exact_match[" + k + "=" + v + "]", m, e, static_cast<int64_t>(g.first.size())});
      }
    }
  }
  j["memory"] = {{"ssm_state_bytes", max_state}, {"kv_cache_bytes", max_kv}, {"by_length", memory_by_length}};
  const int64_t processed = scorer.tokens_processed() - processed0;
  j["speed"] = {{"seconds", secs}, {"tokens_processed", processed}, {"tokens_per_second", secs > 0 ? processed / secs : 0.0}};
  j["examples"] = examples;
  return j;
}

nlohmann::json run_multiple_choice(Scorer& scorer, const std::string& task, const std::vector<McDoc>& docs,
                                   const std::vector<McDoc>& examples, const McOptions& opts, std::vector<MetricRow>& rows,
                                   const ProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t scored0 = scorer.tokens_scored(), processed0 = scorer.tokens_processed();
  std::vector<McDocResult> res = score_multiple_choice(scorer, docs, examples, opts, progress);
  std::vector<double> acc, acc_norm, acc_bytes, exact;
  for (const McDocResult& r : res) {
    acc.push_back(r.correct ? 1.0 : 0.0);
    acc_norm.push_back(r.correct_norm ? 1.0 : 0.0);
    acc_bytes.push_back(r.correct_bytes ? 1.0 : 0.0);
    exact.push_back(r.exact_match ? 1.0 : 0.0);
  }
  const double secs = seconds_since(start);
  auto [a, ae] = mean_stderr(acc);
  auto [an, ane] = mean_stderr(acc_norm);
  auto [ab, abe] = mean_stderr(acc_bytes);
  auto [em, eme] = mean_stderr(exact);
  const int64_t n = static_cast<int64_t>(docs.size());
  rows.push_back({task, "acc", a, ae, n});
  rows.push_back({task, "acc_norm", an, ane, n});
  nlohmann::json j;
  j["metrics"] = {{"acc", a},         {"acc_stderr", ae},        {"acc_norm", an},        {"acc_norm_stderr", ane},
                  {"acc_bytes", ab},  {"acc_bytes_stderr", abe}, {"exact_match", em},     {"exact_match_stderr", eme},
                  {"n", n}};
  const int64_t scored = scorer.tokens_scored() - scored0, processed = scorer.tokens_processed() - processed0;
  j["speed"] = {{"seconds", secs},
                {"tokens_scored", scored},
                {"tokens_processed", processed},
                {"tokens_per_second", secs > 0 ? processed / secs : 0.0}};
  nlohmann::json preds = nlohmann::json::array();
  for (size_t i = 0; i < res.size() && i < 1000; ++i)
    preds.push_back({{"pred", res[i].pred},
                     {"pred_norm", res[i].pred_norm},
                     {"pred_bytes", res[i].pred_bytes},
                     {"gold", docs[i].gold},
                     {"logprobs", res[i].logprobs},
                     {"is_greedy", res[i].is_greedy}});
  j["predictions"] = preds;
  return j;
}

nlohmann::json run_loglikelihood(Scorer& scorer, const std::string& task, const std::vector<LoglikelihoodDoc>& docs,
                                 std::vector<MetricRow>& rows, const ProgressFn& progress) {
  check(!docs.empty(), task, "no documents to score");
  const auto start = std::chrono::steady_clock::now();
  std::vector<LoglikelihoodRequest> reqs;
  for (const LoglikelihoodDoc& d : docs) reqs.push_back({d.context, d.continuation});
  const std::vector<LoglikelihoodResult> res = scorer.loglikelihood(reqs);
  if (progress) progress(static_cast<int64_t>(docs.size()));
  std::vector<double> greedy;
  double sum_ll = 0;
  nlohmann::json preds = nlohmann::json::array();
  for (size_t i = 0; i < res.size(); ++i) {
    greedy.push_back(res[i].is_greedy ? 1.0 : 0.0);
    sum_ll += res[i].logprob;
    if (i < 1000) preds.push_back({{"logprob", res[i].logprob}, {"is_greedy", res[i].is_greedy}, {"tokens", res[i].tokens}});
  }
  auto [acc, se] = mean_stderr(greedy);
  const int64_t n = static_cast<int64_t>(docs.size());
  const double ppl = std::exp(-sum_ll / static_cast<double>(n));
  rows.push_back({task, "acc", acc, se, n});
  rows.push_back({task, "perplexity", ppl, 0, n});
  nlohmann::json j;
  j["metrics"] = {{"acc", acc}, {"acc_stderr", se}, {"perplexity", ppl}, {"loglikelihood", sum_ll}, {"n", n}};
  j["speed"] = {{"seconds", seconds_since(start)}};
  j["predictions"] = preds;
  return j;
}

nlohmann::json run_perplexity(Scorer& scorer, const std::string& task, const std::vector<std::string>& texts,
                              const std::vector<std::vector<int32_t>>& token_docs, std::vector<MetricRow>& rows,
                              const ProgressFn& progress) {
  const auto start = std::chrono::steady_clock::now();
  double logprob = 0;
  int64_t tokens = 0, bytes = 0, words = 0;
  const size_t n = texts.empty() ? token_docs.size() : texts.size();
  check(n > 0, task, "no documents to score");
  for (size_t i = 0; i < n; ++i) {
    RollingResult r;
    if (!texts.empty()) {
      r = scorer.loglikelihood_rolling(texts[i]);
      words += lm_eval_word_count(texts[i], task + " document " + std::to_string(i));
    } else {
      r = scorer.loglikelihood_rolling_tokens(token_docs[i]);
    }
    logprob += r.logprob;
    tokens += r.tokens;
    bytes += r.bytes;
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  const double secs = seconds_since(start);
  nlohmann::json j;
  nlohmann::json m = {{"token_perplexity", std::exp(-logprob / static_cast<double>(std::max<int64_t>(1, tokens)))},
                      {"loglikelihood", logprob},
                      {"tokens", tokens},
                      {"documents", n}};
  rows.push_back({task, "token_perplexity", m["token_perplexity"], 0, static_cast<int64_t>(n)});
  if (bytes > 0) {
    m["bytes"] = bytes;
    m["words"] = words;
    m["word_perplexity"] = std::exp(-logprob / static_cast<double>(std::max<int64_t>(1, words)));
    m["byte_perplexity"] = std::exp(-logprob / static_cast<double>(bytes));
    m["bits_per_byte"] = -logprob / static_cast<double>(bytes) / std::log(2.0);
    rows.push_back({task, "word_perplexity", m["word_perplexity"], 0, static_cast<int64_t>(n)});
    rows.push_back({task, "bits_per_byte", m["bits_per_byte"], 0, static_cast<int64_t>(n)});
  }
  j["metrics"] = m;
  j["memory"] = {{"ssm_state_bytes", scorer.peak_ssm_state_bytes()}, {"kv_cache_bytes", scorer.peak_kv_cache_bytes()}};
  j["speed"] = {{"seconds", secs}, {"tokens_per_second", secs > 0 ? tokens / secs : 0.0}};
  return j;
}

std::string format_table(const std::vector<MetricRow>& rows) {
  size_t wt = 4, wm = 6;
  for (const MetricRow& r : rows) wt = std::max(wt, r.task.size()), wm = std::max(wm, r.metric.size());
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-*s  %-*s  %12s  %10s  %6s\n", static_cast<int>(wt), "task", static_cast<int>(wm), "metric", "value",
                "stderr", "n");
  out += buf;
  for (const MetricRow& r : rows) {
    std::snprintf(buf, sizeof buf, "%-*s  %-*s  %12.4f  %10.4f  %6lld\n", static_cast<int>(wt), r.task.c_str(), static_cast<int>(wm),
                  r.metric.c_str(), r.value, r.stderr_, static_cast<long long>(r.n));
    out += buf;
  }
  return out;
}

}  // namespace mambalm::eval
