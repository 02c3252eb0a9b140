// A synthetic multiple-choice task whose knowledge a small model can learn from the study's
// training mix, for the study's cloze-vs-letter comparison (the 8B study: 5-shot MMLU in the
// letter format is hard for pure SSMs, the cloze format is not):
//   passage: `facts` sentences "<Name>'s <object> is <colour>." (distinct names, colours)
//   question: "What colour is <Name>'s <object>?"; choices: the passage's colours in a random
//   order; gold: the asked one (the distractors are in the passage, so neither a colour prior
//   nor the last sentence gives the answer).
// Documents are McDocs scored by run_multiple_choice (lm-eval's acc / acc_norm), in either
// format: cloze context ends "Question: ...\nAnswer:" and each choice's text is scored;
// letter context ends "Question: ..." and build_mc_prompt lists "A. red" ... then "Answer:"
// and scores " A" .. " D". Both formats need the passage's fact; the letter format needs a
// second binding, colour -> letter, an associative recall over the listed choices.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks/multiple_choice.h"

namespace mambalm {
class Tokenizer;
}

namespace mambalm::eval {

struct FactsMcOptions {
  int64_t documents = 64;  // questions
  int64_t facts = 4;       // sentences per passage = choices per question (2..8)
  uint64_t seed = 0;
};

// The documents of one format (a pure function of the options).
std::vector<McDoc> make_facts_mc(const FactsMcOptions& opts, McFormat format);

struct FactsMcTrainingSummary {
  int64_t documents = 0, tokens = 0;
};
// Training documents in the evaluation's own shape: each is `shots` solved questions and one
// more (build_mc_prompt's k-shot context + " " + gold answer + "\n"), cloze and letter format
// alternating by document, until about `target_tokens` tokens are written to PREFIX.bin/.idx.
FactsMcTrainingSummary write_facts_mc_training_data(const FactsMcOptions& opts, int64_t shots, int64_t target_tokens,
                                                    const Tokenizer& tokenizer, int64_t vocab_size, const std::string& prefix);

}  // namespace mambalm::eval
