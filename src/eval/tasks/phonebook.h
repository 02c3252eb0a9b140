// Phonebook lookup (Jelassi et al. 2024, as used in the Mamba study): a book of
// "First Last: NNN-NNN-NNNN" lines with unique names and random numbers; the model must
// generate the number of one target entry. The target sits at a chosen depth (0 = first line,
// 1 = last), k few-shot lookups of other entries show the format, and two layouts exist:
//   standard: the book, a blank line, the k examples, then "Target Name:"
//   reversed: instructions, the k examples and the target name first, then the book, then
//             "Target Name:" again (so a recurrent model knows what to keep while reading).
// Books are sized in tokens (entries are added until the book reaches the target length).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks/generation_task.h"

namespace mambalm::eval {

struct NameLists {
  std::vector<std::string> first, last;
  std::string source;  // "random-name@0.1.2 (npm)" or "built-in"
};

// The lists scripts/fetch-eval-data.sh writes into $MAMBALM_CACHE/eval (default
// ~/.cache/mambalm/eval); the small built-in lists when those files are absent. `which`:
// "auto" (cache if present), "built-in", or a directory holding first-names.txt + surnames.txt.
NameLists load_name_lists(const std::string& which = "auto");
NameLists builtin_name_lists();

struct PhonebookOptions {
  std::vector<int64_t> book_tokens = {512, 1024, 2048};  // book lengths in tokens
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  int64_t samples_per_cell = 4;  // samples per (length, depth)
  int64_t shots = 1;             // few-shot lookups shown before the question
  bool reversed = false;
  uint64_t seed = 0;
};

// Samples in order: for each length, for each depth, samples_per_cell books. Tags: "length"
// (the target in tokens), "depth", "format".
std::vector<GenerationSample> make_phonebook(const PhonebookOptions& opts, const NameLists& names,
                                             const TokenCounter& count_tokens);

}  // namespace mambalm::eval
