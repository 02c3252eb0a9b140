// Multiple choice from JSON Lines, scored as lm-evaluation-harness scores it:
//   each line {"context": str, "choices": [str...], "gold": int}
//   or lm-eval style {"query": str, "choices": [...], "gold": int} ("question" also read).
// Formats:
//   cloze:  context = shots + doc context; each continuation is " " + choice text
//   letter: context = shots + doc context + "\nA. c0\nB. c1 ...\nAnswer:"; continuations " A", " B", ...
// k-shot examples come from a separate file, drawn without replacement with a seed per document,
// each written as its own context + " " + gold answer, joined by "\n\n" (lm-eval's defaults).
// acc: the choice with the highest log-likelihood is gold; acc_norm: the same after dividing
// each log-likelihood by the byte length of the choice text (lm-eval's acc_norm).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/scoring.h"

namespace mambalm::eval {

struct McDoc {
  std::string context;
  std::vector<std::string> choices;
  int64_t gold = 0;
};

// Throws naming the file, line and field at fault.
std::vector<McDoc> read_mc_jsonl(const std::string& path);

enum class McFormat { Cloze, Letter };
McFormat parse_mc_format(const std::string& name);  // "cloze" or "letter"

struct McOptions {
  McFormat format = McFormat::Cloze;
  int64_t shots = 0;
  uint64_t seed = 0;
};

// The prompt (with shots) and the continuations of one document. `examples` may be empty when
// shots == 0; a document never serves as its own example when the files are the same.
struct McPrompt {
  std::string context;
  std::vector<std::string> continuations;
};
McPrompt build_mc_prompt(const McDoc& doc, size_t doc_index, const std::vector<McDoc>& examples, const McOptions& opts);

struct McDocResult {
  std::vector<double> logprobs;  // per choice
  int64_t pred = 0, pred_norm = 0;
  bool correct = false, correct_norm = false;
};

// Scores every document (all choices of all docs batched together); calls progress(done) with
// the number of documents finished.
std::vector<McDocResult> score_multiple_choice(Scorer& scorer, const std::vector<McDoc>& docs, const std::vector<McDoc>& examples,
                                               const McOptions& opts, const std::function<void(int64_t)>& progress = {});

}  // namespace mambalm::eval
