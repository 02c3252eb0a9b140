#include "eval/lm_eval_scoring.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/limits.h"
#include "eval/tasks/multiple_choice.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

namespace {

using nlohmann::json;

// Words or bytes lm-eval recorded for one document: far above any real one, and small enough
// that the sums over a file cannot overflow before the checked additions refuse them.
constexpr uint64_t kMaxRecordedCount = uint64_t{1} << 40;

std::string doc_where(const LmEvalSample& s) { return "doc_id " + std::to_string(s.doc_id) + " (line " + std::to_string(s.line) + ")"; }

bool wants(const LmEvalSample& s, const char* metric, bool by_default) {
  if (s.metrics.empty()) return by_default;
  return std::find(s.metrics.begin(), s.metrics.end(), metric) != s.metrics.end();
}

// The per-document value lm-eval recorded for `metric` (0 or 1 for accuracies), if any.
std::optional<double> recorded_value(const LmEvalSample& s, const char* metric) {
  if (!s.recorded.contains(metric) || !s.recorded[metric].is_number()) return std::nullopt;
  return s.recorded[metric].get<double>();
}

// Indices in [0, n) that agree with what lm-eval recorded for the dummy (or any) answers.
std::vector<int64_t> consistent_with_record(const LmEvalSample& s, size_t n, const std::vector<std::string>& choice_texts) {
  std::vector<double> lls;
  for (size_t i = 0; i < n; ++i) {
    if (i >= s.recorded_lls.size() || !s.recorded_lls[i]) return {};
    lls.push_back(*s.recorded_lls[i]);
  }
  std::vector<std::pair<int64_t, double>> facts;  // (predicted index, recorded 0/1)
  const McDecision d = decide_mc(lls, choice_texts.empty() ? std::vector<std::string>(n, "x") : choice_texts);
  if (auto a = recorded_value(s, "acc")) facts.emplace_back(d.pred, *a);
  if (!choice_texts.empty()) {
    if (auto a = recorded_value(s, "acc_norm")) facts.emplace_back(d.pred_norm, *a);
    if (auto a = recorded_value(s, "acc_bytes")) facts.emplace_back(d.pred_bytes, *a);
  }
  if (facts.empty()) return {};
  std::vector<int64_t> out;
  for (int64_t g = 0; g < static_cast<int64_t>(n); ++g) {
    bool ok = true;
    for (const auto& [pred, value] : facts) ok = ok && ((pred == g) == (value > 0.5));
    if (ok) out.push_back(g);
  }
  return out;
}

std::optional<int64_t> as_index(const std::string& t, size_t n) {
  if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const int64_t v = std::stoll(t);
  if (v >= static_cast<int64_t>(n)) return std::nullopt;
  return v;
}

json stat(const std::vector<double>& xs) {
  auto [m, se] = mean_stderr(xs);
  return {m, se};
}

}  // namespace

int64_t resolve_mc_gold(const LmEvalSample& s, size_t n, const std::vector<std::string>& choice_texts, std::string* how) {
  std::vector<int64_t> from_target;
  if (auto i = as_index(s.target, n)) from_target.push_back(*i);
  for (size_t c = 0; c < choice_texts.size(); ++c)
    if (choice_texts[c] == s.target && std::find(from_target.begin(), from_target.end(), static_cast<int64_t>(c)) == from_target.end())
      from_target.push_back(static_cast<int64_t>(c));
  const std::vector<int64_t> recorded = consistent_with_record(s, n, choice_texts);
  const auto set_how = [&](const char* h) {
    if (how) *how = h;
  };
  if (from_target.size() == 1 && (recorded.empty() || std::count(recorded.begin(), recorded.end(), from_target[0]))) {
    set_how(as_index(s.target, n) ? "target index" : "target choice text");
    return from_target[0];
  }
  std::vector<int64_t> both;
  for (int64_t g : from_target)
    if (std::count(recorded.begin(), recorded.end(), g)) both.push_back(g);
  if (both.size() == 1) {
    set_how("target, disambiguated by recorded metrics");
    return both[0];
  }
  if (from_target.empty() && recorded.size() == 1) {
    set_how("recorded metrics");
    return recorded[0];
  }
  if (from_target.size() > 1 && recorded.empty() && as_index(s.target, n)) {
    set_how("target index");  // an integer target is lm-eval's usual gold (doc_to_target -> int)
    return *as_index(s.target, n);
  }
  fail(doc_where(s), "cannot tell which of " + std::to_string(n) + " choices is gold from target '" + s.target.substr(0, 60) + "'",
       "the line needs an integer target, a target equal to one choice, or lm-eval's recorded acc");
}

nlohmann::json score_lm_eval_samples(Scorer& scorer, const LmEvalSamplesFile& file, const LmEvalScoreOptions& opts,
                                     std::vector<MetricRow>& rows, const ProgressFn& progress) {
  const std::vector<LmEvalSample>& samples = file.samples;
  std::map<std::string, std::vector<double>> per_doc;  // mean-type metrics
  std::map<std::string, int64_t> gold_from;
  std::set<std::string> notes;
  json docs = json::array();
  double sum_ll = 0;
  int64_t sum_words = 0, sum_bytes = 0;
  const SampleTaskKind kind = file.kind;

  if (kind == SampleTaskKind::Loglikelihood || kind == SampleTaskKind::MultipleChoice) {
    // Documents go to the scorer in groups (all their requests batched together).
    const size_t group = 128;
    for (size_t begin = 0; begin < samples.size(); begin += group) {
      const size_t end = std::min(samples.size(), begin + group);
      std::vector<LoglikelihoodRequest> reqs;
      for (size_t d = begin; d < end; ++d)
        for (const SampleRequest& r : samples[d].requests) reqs.push_back({r.context, r.continuation});
      const std::vector<LoglikelihoodResult> res = scorer.loglikelihood(reqs);
      size_t at = 0;
      for (size_t d = begin; d < end; ++d) {
        const LmEvalSample& s = samples[d];
        const size_t n = s.requests.size();
        std::vector<double> lls;
        std::vector<bool> greedy;
        json resps = json::array(), tokens = json::array();
        for (size_t i = 0; i < n; ++i, ++at) {
          lls.push_back(res[at].logprob);
          greedy.push_back(res[at].is_greedy);
          resps.push_back({res[at].logprob, res[at].is_greedy});
          tokens.push_back(res[at].tokens);
        }
        docs.push_back({{"doc_id", s.doc_id}, {"resps", resps}, {"continuation_tokens", tokens}});
        if (kind == SampleTaskKind::Loglikelihood) {
          per_doc["acc"].push_back(greedy[0] ? 1.0 : 0.0);
          sum_ll += lls[0];
          continue;
        }
        // Mutual information: the second half holds the choices after an empty context.
        size_t nc = n;
        const bool mutual = wants(s, "acc_mutual_info", false);
        if (mutual) {
          check(n % 2 == 0, doc_where(s), "acc_mutual_info needs as many unconditional requests as choices");
          nc = n / 2;
          for (size_t i = nc; i < n; ++i) check(s.requests[i].context.empty(), doc_where(s), "acc_mutual_info: the second half of the requests must have empty contexts");
        }
        bool same_cont = nc > 1, same_ctx = true;
        for (size_t i = 1; i < nc; ++i) {
          same_cont = same_cont && s.requests[i].continuation == s.requests[0].continuation;
          same_ctx = same_ctx && s.requests[i].context == s.requests[0].context;
        }
        const bool multiple_input = same_cont && !same_ctx;
        std::vector<std::string> choices;
        if (!multiple_input) {
          for (size_t i = 0; i < nc; ++i) {
            const std::string& c = s.requests[i].continuation;
            const std::string& dl = opts.target_delimiter;
            choices.push_back(c.compare(0, dl.size(), dl) == 0 ? c.substr(dl.size()) : c);
          }
        }
        std::string how;
        const int64_t gold = resolve_mc_gold(s, nc, choices, &how);
        ++gold_from[how];
        const std::vector<double> cond(lls.begin(), lls.begin() + static_cast<std::ptrdiff_t>(nc));
        const McDecision pick = decide_mc(cond, choices.empty() ? std::vector<std::string>(nc, "x") : choices);
        if (wants(s, "acc", true)) per_doc["acc"].push_back(pick.pred == gold ? 1.0 : 0.0);
        if (!choices.empty()) {
          if (wants(s, "acc_norm", true)) per_doc["acc_norm"].push_back(pick.pred_norm == gold ? 1.0 : 0.0);
          if (wants(s, "acc_bytes", false)) per_doc["acc_bytes"].push_back(pick.pred_bytes == gold ? 1.0 : 0.0);
        } else if (wants(s, "acc_norm", false) || wants(s, "acc_bytes", false)) {
          notes.insert("acc_norm/acc_bytes not computed: a multiple-input task has no choice texts in its samples");
        }
        if (wants(s, "exact_match", false)) per_doc["exact_match"].push_back(greedy[static_cast<size_t>(gold)] ? 1.0 : 0.0);
        if (mutual) {
          std::vector<double> mi;
          for (size_t i = 0; i < nc; ++i) mi.push_back(lls[i] - lls[nc + i]);
          per_doc["acc_mutual_info"].push_back(decide_mc(mi, std::vector<std::string>(nc, "x")).pred == gold ? 1.0 : 0.0);
        }
        docs.back()["gold"] = gold;
        docs.back()["pred"] = pick.pred;
        for (const std::string& m : s.metrics)
          if (m != "acc" && m != "acc_norm" && m != "acc_bytes" && m != "exact_match" && m != "acc_mutual_info")
            notes.insert("metric '" + m + "' is not computed");
      }
      if (progress) progress(static_cast<int64_t>(end));
    }
  } else if (kind == SampleTaskKind::Rolling) {
    for (size_t d = 0; d < samples.size(); ++d) {
      const LmEvalSample& s = samples[d];
      const std::string& text = s.requests[0].context;
      const RollingResult r = scorer.loglikelihood_rolling(text);
      // The counts lm-eval recorded next to its log-likelihood keep a task's own count_words.
      const auto recorded_count = [&](const char* metric) -> std::optional<int64_t> {
        if (!s.recorded.contains(metric) || !s.recorded[metric].is_array() || s.recorded[metric].size() != 2) return std::nullopt;
        const json& c = s.recorded[metric][1];
        if (!c.is_number_integer()) return std::nullopt;
        // A count from the file divides the log-likelihood: a negative or huge one is an error,
        // never a wrong perplexity or a wrapped sum.
        // (JSON reads a non-negative integer as unsigned, a negative one as signed.)
        check(c.is_number_unsigned() && c.get<uint64_t>() <= kMaxRecordedCount, doc_where(s),
              std::string("the recorded ") + metric + " count " + c.dump() + " is outside [0, 2^40]");
        return c.get<int64_t>();
      };
      const std::optional<int64_t> rw = recorded_count("word_perplexity");
      std::optional<int64_t> rb = recorded_count("byte_perplexity");
      if (!rb) rb = recorded_count("bits_per_byte");
      const int64_t words = rw ? *rw : lm_eval_word_count(text, doc_where(s));
      const int64_t bytes = rb ? *rb : static_cast<int64_t>(text.size());
      sum_ll += r.logprob;
      sum_words = limits::checked_add(sum_words, words, file.path, "the total word count");
      sum_bytes = limits::checked_add(sum_bytes, bytes, file.path, "the total byte count");
      docs.push_back({{"doc_id", s.doc_id}, {"resps", {r.logprob}}, {"tokens", r.tokens}, {"words", words}, {"bytes", bytes}});
      if (progress) progress(static_cast<int64_t>(d + 1));
    }
  } else {
    notes.insert("exact_match compares the raw generation with target: lm-eval filters and metric options are not applied");
    for (size_t d = 0; d < samples.size(); ++d) {
      const LmEvalSample& s = samples[d];
      const SampleRequest& r = s.requests[0];
      check(s.requests.size() == 1, doc_where(s), "a generate_until document must have one request");
      const GenerateUntilResult g = scorer.generate_until(r.context, r.generation);
      per_doc["exact_match"].push_back(g.text == s.target ? 1.0 : 0.0);
      docs.push_back({{"doc_id", s.doc_id}, {"resps", {g.text}}, {"generated_tokens", g.tokens.size()}, {"prompt_tokens", g.prompt_tokens}});
      if (progress) progress(static_cast<int64_t>(d + 1));
    }
  }

  const int64_t n = static_cast<int64_t>(samples.size());
  json metrics = json::object();
  for (const auto& [name, xs] : per_doc) {
    const json v = stat(xs);
    metrics[name] = v[0];
    metrics[name + "_stderr"] = v[1];
    rows.push_back({file.task, name, v[0].get<double>(), v[1].get<double>(), static_cast<int64_t>(xs.size())});
  }
  if (kind == SampleTaskKind::Loglikelihood) {
    const double ppl = std::exp(-sum_ll / static_cast<double>(n));
    metrics["perplexity"] = ppl;
    rows.push_back({file.task, "perplexity", ppl, 0, n});
  }
  if (kind == SampleTaskKind::Rolling) {
    check(sum_words > 0 && sum_bytes > 0, file.path, "the documents hold no words or bytes to normalise by");
    const double wp = std::exp(-sum_ll / static_cast<double>(sum_words)), bp = std::exp(-sum_ll / static_cast<double>(sum_bytes));
    const double bpb = -sum_ll / static_cast<double>(sum_bytes) / std::log(2.0);
    metrics.update({{"word_perplexity", wp}, {"byte_perplexity", bp}, {"bits_per_byte", bpb}, {"loglikelihood", sum_ll},
                    {"words", sum_words}, {"bytes", sum_bytes}});
    rows.push_back({file.task, "word_perplexity", wp, 0, n});
    rows.push_back({file.task, "byte_perplexity", bp, 0, n});
    rows.push_back({file.task, "bits_per_byte", bpb, 0, n});
  }
  metrics["n"] = n;
  json j;
  j["task"] = file.task;
  j["file"] = file.path;
  j["output_type"] = task_kind_name(kind);
  j["metrics"] = metrics;
  if (!gold_from.empty()) j["gold_from"] = gold_from;
  if (file.skipped_filter_lines > 0) notes.insert(std::to_string(file.skipped_filter_lines) + " lines repeating a doc_id (other filters) skipped");
  j["notes"] = notes;
  j["samples"] = docs;
  return j;
}

}  // namespace mambalm::eval
