// Multiple choice from JSON Lines, scored as lm-evaluation-harness scores it:
//   each line {"context": str, "choices": [str...], "gold": int}
//   or lm-eval style {"query": str, "choices": [...], "gold": int} ("question" also read).
// Formats:
//   cloze:  context = shots + doc context; each continuation is " " + choice text
//   letter: context = shots + doc context + "\nA. c0\nB. c1 ...\nAnswer:"; continuations " A", " B", ...
// k-shot examples come from a separate file (or the task file), drawn without replacement with
// a seed per document, never the document itself (as lm-eval), each written as its own context
// + " " + gold answer, joined by "\n\n" (lm-eval's defaults).
// lm-eval's metrics: acc: the choice with the highest log-likelihood is gold; acc_norm: the
// same after dividing each log-likelihood by the length of the choice in characters (Unicode
// code points, Python's len); acc_bytes: by its UTF-8 bytes; exact_match: the gold
// continuation is what greedy decoding produces. The "choice" is what the format scores: the
// choice text in cloze, the letter in letter format (there acc_norm equals acc).
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
  bool operator==(const McDoc&) const = default;
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
  std::vector<std::string> continuations;  // " " + choice_texts[i]
  std::vector<std::string> choice_texts;   // what acc_norm measures: choice texts (cloze) or letters
};
McPrompt build_mc_prompt(const McDoc& doc, size_t doc_index, const std::vector<McDoc>& examples, const McOptions& opts);

// np.argmax (first maximum) of lls, of lls / len(choice) in code points, and of lls / bytes.
struct McDecision {
  int64_t pred = 0, pred_norm = 0, pred_bytes = 0;
};
McDecision decide_mc(const std::vector<double>& lls, const std::vector<std::string>& choice_texts);

struct McDocResult {
  std::vector<double> logprobs;  // per choice
  std::vector<bool> is_greedy;   // per choice: every continuation token is the argmax
  int64_t pred = 0, pred_norm = 0, pred_bytes = 0;
  bool correct = false, correct_norm = false, correct_bytes = false, exact_match = false;
};

// Scores every document (all choices of all docs batched together); calls progress(done) with
// the number of documents finished.
std::vector<McDocResult> score_multiple_choice(Scorer& scorer, const std::vector<McDoc>& docs, const std::vector<McDoc>& examples,
                                               const McOptions& opts, const std::function<void(int64_t)>& progress = {});

}  // namespace mambalm::eval
