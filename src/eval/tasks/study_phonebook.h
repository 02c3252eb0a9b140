// The Mamba study's Phonebook lookup (Waleffe et al. 2024, arXiv 2406.07887, which follows
// Jelassi et al. 2024, "Repeat After Me", arXiv 2402.01032). The study's own prompt text was
// not found in the reference material at hand, so the format is that of Jelassi et al.'s code
// (github.com/sjelassi/transformers_ssm_copy, pretrained_exps/data_utils.py, PhoneBookDataset):
//   a book of "First Last: DDDDDDDDDD" lines (10 digits, the first one 6-9), unique names,
//   joined by "\n"; then "\n\n"; then K example lookups (other entries of the same book, the
//   same "Name: number" lines, joined by "\n"); then "\n\n"; then "Target Name:".
//   The model generates the number (" 6123456789\n"; compared after trimming).
// Jelassi et al. show two example lookups (the default here); --shots 0 leaves out the examples
// and the blank line after them.
// Reversed (the study's question-first variant, so that a recurrent model knows which entry to
// keep while reading the book): the line "Lookup: Target Name" and a blank line come first,
// then the same prompt as the standard format. That first line is this project's wording.
// Lengths: the prompt plus the answer's token budget fits in the target length in tokens and
// the book is as long as that allows (RULER's rule, eval/tasks/length_fit.h); the target entry
// is drawn uniformly from the book.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/tasks/generation_task.h"
#include "eval/tasks/phonebook.h"

namespace mambalm::eval {

struct StudyPhonebookOptions {
  std::vector<int64_t> lengths = {500, 1000, 2000, 4000, 8000};  // prompt + answer budget, tokens
  int64_t samples_per_cell = 4;                                  // books per length
  int64_t shots = 2;                                             // example lookups
  bool reversed = false;
  uint64_t seed = 0;
};

constexpr int64_t kStudyPhonebookAnswerTokens = 16;  // generation budget (10 digits and a newline)

// Samples in order: for each length, samples_per_cell books. Tags: "length", "format".
std::vector<GenerationSample> make_study_phonebook(const StudyPhonebookOptions& opts, const NameLists& names,
                                                   const TokenCounter& count_tokens);

// The default lengths: 500 tokens doubling up to `longest` (the model's context), `longest`
// itself last; 500 .. 8000 when the context is unbounded (longest <= 0).
std::vector<int64_t> study_phonebook_lengths(int64_t longest);

}  // namespace mambalm::eval
