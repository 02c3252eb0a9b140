#include "eval/tasks/multiple_choice.h"

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"

namespace mambalm::eval {

std::vector<McDoc> read_mc_jsonl(const std::string& path) {
  std::ifstream f(path);
  check(f.good(), path, "cannot open the task file");
  std::vector<McDoc> docs;
  std::string line;
  for (int64_t lineno = 1; std::getline(f, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, std::string("not valid JSON: ") + e.what());
    }
    check(j.is_object(), where, "each line must be a JSON object");
    McDoc d;
    const char* ctx_key = j.contains("context") ? "context" : j.contains("query") ? "query" : "question";
    check(j.contains(ctx_key) && j[ctx_key].is_string(), where, "missing string field \"context\" (or \"query\")");
    d.context = j[ctx_key].get<std::string>();
    check(j.contains("choices") && j["choices"].is_array() && j["choices"].size() >= 2, where,
          "\"choices\" must be an array of at least 2 strings");
    for (const auto& c : j["choices"]) {
      check(c.is_string(), where, "\"choices\" must hold strings");
      d.choices.push_back(c.get<std::string>());
    }
    check(j.contains("gold") && j["gold"].is_number_integer(), where, "\"gold\" must be an integer index into \"choices\"");
    d.gold = j["gold"].get<int64_t>();
    check(d.gold >= 0 && d.gold < static_cast<int64_t>(d.choices.size()), where,
          "\"gold\" " + std::to_string(d.gold) + " is not an index into " + std::to_string(d.choices.size()) + " choices");
    docs.push_back(std::move(d));
  }
  check(!docs.empty(), path, "no documents");
  return docs;
}

McFormat parse_mc_format(const std::string& name) {
  if (name == "cloze") return McFormat::Cloze;
  if (name == "letter") return McFormat::Letter;
  fail("--format", "unknown format '" + name + "'", "valid: cloze, letter");
}

namespace {

std::string letter(size_t i) { return std::string(1, static_cast<char>('A' + i)); }

// The document's question part and the text of each answer in this format.
std::pair<std::string, std::vector<std::string>> render(const McDoc& d, McFormat f) {
  if (f == McFormat::Cloze) return {d.context, d.choices};
  check(d.choices.size() <= 26, "letter format", "more than 26 choices");
  std::string q = d.context;
  std::vector<std::string> answers;
  for (size_t i = 0; i < d.choices.size(); ++i) {
    q += "\n" + letter(i) + ". " + d.choices[i];
    answers.push_back(letter(i));
  }
  return {q + "\nAnswer:", answers};
}

}  // namespace

McPrompt build_mc_prompt(const McDoc& doc, size_t doc_index, const std::vector<McDoc>& examples, const McOptions& opts) {
  McPrompt p;
  if (opts.shots > 0) {
    check(static_cast<int64_t>(examples.size()) >= opts.shots, "--shots",
          std::to_string(opts.shots) + " shots need at least as many examples; the example file has " + std::to_string(examples.size()));
    Rng rng = Rng(opts.seed).fork(doc_index + 1);
    std::vector<size_t> idx(examples.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    for (size_t i = 0; i < static_cast<size_t>(opts.shots); ++i) std::swap(idx[i], idx[i + rng.next_u64() % (idx.size() - i)]);
    for (int64_t k = 0; k < opts.shots; ++k) {
      const McDoc& e = examples[idx[static_cast<size_t>(k)]];
      auto [q, answers] = render(e, opts.format);
      p.context += q + " " + answers[static_cast<size_t>(e.gold)] + "\n\n";
    }
  }
  auto [q, answers] = render(doc, opts.format);
  p.context += q;
  for (const std::string& a : answers) p.continuations.push_back(" " + a);
  return p;
}

std::vector<McDocResult> score_multiple_choice(Scorer& scorer, const std::vector<McDoc>& docs, const std::vector<McDoc>& examples,
                                               const McOptions& opts, const std::function<void(int64_t)>& progress) {
  std::vector<McDocResult> out(docs.size());
  // Documents go to the scorer in groups, so the progress bar moves and memory stays bounded.
  const size_t group = 64;
  for (size_t begin = 0; begin < docs.size(); begin += group) {
    const size_t end = std::min(docs.size(), begin + group);
    std::vector<LoglikelihoodRequest> reqs;
    std::vector<size_t> first;
    for (size_t d = begin; d < end; ++d) {
      McPrompt p = build_mc_prompt(docs[d], d, examples, opts);
      first.push_back(reqs.size());
      for (const std::string& c : p.continuations) reqs.push_back({p.context, c});
    }
    std::vector<LoglikelihoodResult> res = scorer.loglikelihood(reqs);
    for (size_t d = begin; d < end; ++d) {
      McDocResult& r = out[d];
      const McDoc& doc = docs[d];
      double best = -1e300, best_norm = -1e300;
      for (size_t c = 0; c < doc.choices.size(); ++c) {
        const double lp = res[first[d - begin] + c].logprob;
        r.logprobs.push_back(lp);
        const double norm = lp / static_cast<double>(std::max<size_t>(1, doc.choices[c].size()));
        if (lp > best) best = lp, r.pred = static_cast<int64_t>(c);
        if (norm > best_norm) best_norm = norm, r.pred_norm = static_cast<int64_t>(c);
      }
      r.correct = r.pred == doc.gold;
      r.correct_norm = r.pred_norm == doc.gold;
    }
    if (progress) progress(static_cast<int64_t>(end));
  }
  return out;
}

}  // namespace mambalm::eval
