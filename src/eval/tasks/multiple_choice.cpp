#include "eval/tasks/multiple_choice.h"

#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "eval/jsonl.h"
#include "eval/text_rules.h"

namespace mambalm::eval {

// read_mc_jsonl is in multiple_choice_file.cpp: the file reader alone, which the fuzz target links.

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

McDecision decide_mc(const std::vector<double>& lls, const std::vector<std::string>& choice_texts) {
  check(!lls.empty() && lls.size() == choice_texts.size(), "multiple choice", "one log-likelihood per choice is needed");
  McDecision d;
  double best = 0, best_norm = 0, best_bytes = 0;
  for (size_t c = 0; c < lls.size(); ++c) {
    // np.argmax keeps the first of equal values: only a strictly larger value moves the choice.
    const double norm = lls[c] / static_cast<double>(std::max<int64_t>(1, python_len(choice_texts[c], "choice")));
    const double by_bytes = lls[c] / static_cast<double>(std::max<size_t>(1, choice_texts[c].size()));
    const int64_t i = static_cast<int64_t>(c);
    if (c == 0 || lls[c] > best) best = lls[c], d.pred = i;
    if (c == 0 || norm > best_norm) best_norm = norm, d.pred_norm = i;
    if (c == 0 || by_bytes > best_bytes) best_bytes = by_bytes, d.pred_bytes = i;
  }
  return d;
}

McPrompt build_mc_prompt(const McDoc& doc, size_t doc_index, const std::vector<McDoc>& examples, const McOptions& opts) {
  McPrompt p;
  if (opts.shots > 0) {
    // lm-eval drops the document itself from its few-shot draw: only other documents may serve.
    std::vector<size_t> idx;
    for (size_t i = 0; i < examples.size(); ++i)
      if (!(examples[i] == doc)) idx.push_back(i);
    check(static_cast<int64_t>(idx.size()) >= opts.shots, "--shots",
          std::to_string(opts.shots) + " shots need at least as many examples other than the document; there are " +
              std::to_string(idx.size()));
    Rng rng = Rng(opts.seed).fork(doc_index + 1);
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
  p.choice_texts = std::move(answers);
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
    std::vector<std::vector<std::string>> choice_texts;
    for (size_t d = begin; d < end; ++d) {
      McPrompt p = build_mc_prompt(docs[d], d, examples, opts);
      first.push_back(reqs.size());
      for (const std::string& c : p.continuations) reqs.push_back({p.context, c});
      choice_texts.push_back(std::move(p.choice_texts));
    }
    std::vector<LoglikelihoodResult> res = scorer.loglikelihood(reqs);
    for (size_t d = begin; d < end; ++d) {
      McDocResult& r = out[d];
      const McDoc& doc = docs[d];
      for (size_t c = 0; c < doc.choices.size(); ++c) {
        r.logprobs.push_back(res[first[d - begin] + c].logprob);
        r.is_greedy.push_back(res[first[d - begin] + c].is_greedy);
      }
      const McDecision pick = decide_mc(r.logprobs, choice_texts[d - begin]);
      r.pred = pick.pred, r.pred_norm = pick.pred_norm, r.pred_bytes = pick.pred_bytes;
      r.correct = r.pred == doc.gold;
      r.correct_norm = r.pred_norm == doc.gold;
      r.correct_bytes = r.pred_bytes == doc.gold;
      r.exact_match = r.is_greedy[static_cast<size_t>(doc.gold)];
    }
    if (progress) progress(static_cast<int64_t>(end));
  }
  return out;
}

}  // namespace mambalm::eval
