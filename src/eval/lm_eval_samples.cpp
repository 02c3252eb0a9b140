#include "eval/lm_eval_samples.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"
#include "core/limits.h"
#include "eval/jsonl.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

namespace {

using nlohmann::json;

// The arguments of each request, in request order, from either layout lm-eval has written.
std::vector<json> request_arguments(const json& args, const std::string& where) {
  std::vector<json> out;
  if (args.is_array()) {
    for (const json& a : args) {
      check(a.is_array(), where, "each entry of \"arguments\" must be a list of arguments");
      out.push_back(a);
    }
    return out;
  }
  check(args.is_object(), where, "\"arguments\" must be an object {gen_args_i: {arg_j: ...}} or a list");
  // Keys sort as text (gen_args_10 before gen_args_2): order them by their number.
  std::map<int64_t, json> by_index;
  for (const auto& [key, value] : args.items()) {
    check(key.rfind("gen_args_", 0) == 0 && key.size() > 9 && key.size() < 18 && key.find_first_not_of("0123456789", 9) == std::string::npos, where,
          "unexpected key \"" + key + "\" in \"arguments\"", "expected gen_args_0, gen_args_1, ...");
    check(value.is_object(), where, "\"" + key + "\" must be an object {arg_0: ..., arg_1: ...}");
    std::map<int64_t, json> parts;
    for (const auto& [k, v] : value.items()) {
      check(k.rfind("arg_", 0) == 0 && k.size() > 4 && k.size() < 13 && k.find_first_not_of("0123456789", 4) == std::string::npos, where,
            "unexpected key \"" + k + "\" in \"" + key + "\"");
      parts[std::stoll(k.substr(4))] = v;
    }
    json list = json::array();
    for (auto& [i, v] : parts) {
      check(i == static_cast<int64_t>(list.size()), where, "\"" + key + "\" skips arg_" + std::to_string(list.size()));
      list.push_back(v);
    }
    by_index[std::stoll(key.substr(9))] = list;
  }
  for (auto& [i, v] : by_index) {
    check(i == static_cast<int64_t>(out.size()), where, "\"arguments\" skips gen_args_" + std::to_string(out.size()));
    out.push_back(v);
  }
  return out;
}

std::string checked_string(const json& v, const std::string& where, const std::string& what) {
  check(v.is_string(), where, what + " must be a string");
  return v.get<std::string>();
}

// lm-eval's generation kwargs: until (str or list), max_gen_toks and its aliases.
GenerateUntilOptions generation_options(const json& kw, const std::string& where, int64_t default_max) {
  GenerateUntilOptions g;
  g.max_gen_tokens = default_max;
  if (kw.contains("until") && !kw["until"].is_null()) {
    const json& u = kw["until"];
    if (u.is_string()) {
      g.until = {u.get<std::string>()};
    } else {
      check(u.is_array(), where, "\"until\" must be a string or a list of strings");
      for (const json& s : u) g.until.push_back(checked_string(s, where, "each stop sequence"));
    }
  }
  for (const char* key : {"max_completion_tokens", "max_tokens", "max_new_tokens", "max_gen_toks"}) {  // last wins: lm-eval's priority
    if (kw.contains(key) && !kw[key].is_null()) {
      // Bounded like any sequence length: a huge count would size the state and run for ever.
      const json& v = kw[key];
      const bool in_range = v.is_number_unsigned() && v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= uint64_t{limits::kMaxSequence};
      check(in_range, where, std::string("\"") + key + "\" must be an integer in [1, " + std::to_string(limits::kMaxSequence) + "], got " + v.dump());
      g.max_gen_tokens = v.get<int64_t>();
    }
  }
  return g;
}

SampleRequest parse_request(const json& a, const std::string& where, int64_t default_max) {
  SampleRequest r;
  check(!a.empty(), where, "a request has no arguments");
  r.context = checked_string(a[0], where, "the first argument");
  check_utf8(r.context, where);
  if (a.size() == 1) {
    r.kind = SampleRequestKind::Rolling;
  } else if (a[1].is_object()) {
    r.kind = SampleRequestKind::Generate;
    r.generation = generation_options(a[1], where, default_max);
  } else {
    r.kind = SampleRequestKind::Loglikelihood;
    r.continuation = checked_string(a[1], where, "the continuation (second argument)");
    check_utf8(r.continuation, where);
    check(!r.continuation.empty(), where, "a loglikelihood request has an empty continuation");
  }
  return r;
}

// A number lm-eval stringified ("-0.53"), or nothing.
std::optional<double> number_in(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

// The log-likelihood each filtered response holds ([ll, is_greedy] per request), if any.
std::vector<std::optional<double>> recorded_lls(const json& line, size_t n) {
  std::vector<std::optional<double>> out(n);
  if (!line.contains("filtered_resps") || !line["filtered_resps"].is_array() || line["filtered_resps"].size() != n) return out;
  for (size_t i = 0; i < n; ++i) {
    const json& r = line["filtered_resps"][i];
    out[i] = r.is_array() && !r.empty() ? number_in(r[0]) : number_in(r);
  }
  return out;
}

bool has_metric(const std::vector<std::string>& m, const char* name) { return std::find(m.begin(), m.end(), name) != m.end(); }

SampleTaskKind classify(const LmEvalSample& s, const std::string& where) {
  const SampleRequestKind k = s.requests[0].kind;
  for (const SampleRequest& r : s.requests)
    check(r.kind == k, where, "a document mixes request types", "each document of a task has requests of one type");
  if (k == SampleRequestKind::Rolling) return SampleTaskKind::Rolling;
  if (k == SampleRequestKind::Generate) return SampleTaskKind::Generate;
  bool mc_metric = false;
  for (const char* m : {"acc_norm", "acc_bytes", "acc_mutual_info", "brier_score", "likelihood", "f1", "mcc"})
    mc_metric = mc_metric || has_metric(s.metrics, m);
  return s.requests.size() > 1 || mc_metric ? SampleTaskKind::MultipleChoice : SampleTaskKind::Loglikelihood;
}

}  // namespace

const char* task_kind_name(SampleTaskKind k) {
  switch (k) {
    case SampleTaskKind::Loglikelihood: return "loglikelihood";
    case SampleTaskKind::MultipleChoice: return "multiple_choice";
    case SampleTaskKind::Rolling: return "loglikelihood_rolling";
    case SampleTaskKind::Generate: return "generate_until";
  }
  return "?";
}

std::string task_name_from_samples_path(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  if (stem.rfind("samples_", 0) != 0) return stem;
  stem = stem.substr(8);
  // The date lm-eval appends: _YYYY-MM-DDTHH-MM-SS.ffffff
  const size_t cut = stem.rfind('_');
  if (cut != std::string::npos && cut + 5 < stem.size() && std::isdigit(static_cast<unsigned char>(stem[cut + 1])) && stem[cut + 5] == '-')
    stem.resize(cut);
  return stem;
}

LmEvalSamplesFile read_lm_eval_samples(const std::string& path, const std::string& task_name, int64_t default_max) {
  LmEvalSamplesFile out;
  out.path = path;
  out.task = task_name.empty() ? task_name_from_samples_path(path) : task_name;
  std::set<int64_t> seen;
  auto each = [&](const json& j, const std::string& where, int64_t lineno) {
    check(j.contains("doc_id") && j["doc_id"].is_number_integer(), where, "missing integer field \"doc_id\"");
    check(j.contains("arguments"), where, "missing field \"arguments\"");
    LmEvalSample s;
    s.doc_id = j["doc_id"].get<int64_t>();
    s.line = lineno;
    if (!seen.insert(s.doc_id).second) {  // the same document under another filter
      ++out.skipped_filter_lines;
      return;
    }
    if (j.contains("target")) s.target = j["target"].is_string() ? j["target"].get<std::string>() : j["target"].dump();
    s.filter = j.value("filter", std::string("none"));
    if (j.contains("metrics") && j["metrics"].is_array())
      for (const json& m : j["metrics"])
        if (m.is_string()) s.metrics.push_back(m.get<std::string>());
    s.recorded = json::object();
    for (const std::string& m : s.metrics)
      if (j.contains(m)) s.recorded[m] = j[m];
    for (const json& a : request_arguments(j["arguments"], where)) s.requests.push_back(parse_request(a, where, default_max));
    check(!s.requests.empty(), where, "the document has no requests");
    s.recorded_lls = recorded_lls(j, s.requests.size());
    s.kind = classify(s, where);
    if (out.samples.empty()) out.kind = s.kind;
    check(s.kind == out.kind, where,
          std::string("a ") + task_kind_name(s.kind) + " document in a " + task_kind_name(out.kind) + " task",
          "give one task's samples file at a time");
    out.samples.push_back(std::move(s));
  };
  for_each_jsonl_object(path, each, "expected one lm-eval sample object per line (--log_samples)");
  check(!out.samples.empty(), path, "no samples");
  return out;
}

}  // namespace mambalm::eval
