// Synthetic recall tasks, each a pure function of its options and a seed:
//   MQAR (multi-query associative recall, Arora et al. 2023): key-value pairs, then queries of
//     keys seen before; the first queries are answered in the prompt, the last is asked.
//   Selective copying (Gu & Dao 2023): letters scattered among filler dots; the model must
//     repeat the letters in order, without the dots.
//   Passkey / needle in a haystack (Mohtashami & Jaggi 2023): a number hidden at a chosen depth
//     in repeated filler text of a given length in tokens (1K .. 128K); the model must repeat it.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/tasks/generation_task.h"

namespace mambalm::eval {

struct MqarOptions {
  std::vector<int64_t> pairs = {8, 32, 128};  // key-value pairs per prompt (the "length" tag)
  int64_t queries = 4;                        // queries per prompt, the last one asked
  int64_t samples_per_cell = 8;
  uint64_t seed = 0;
};
std::vector<GenerationSample> make_mqar(const MqarOptions& opts);

struct SelectiveCopyOptions {
  std::vector<int64_t> lengths = {32, 128, 512};  // items (letters + dots) per prompt
  int64_t letters = 8;                            // letters to copy
  int64_t samples_per_cell = 8;
  uint64_t seed = 0;
};
std::vector<GenerationSample> make_selective_copy(const SelectiveCopyOptions& opts);

struct PasskeyOptions {
  std::vector<int64_t> lengths = {1024, 4096, 16384};  // prompt lengths in tokens
  std::vector<double> depths = {0.0, 0.5, 1.0};
  int64_t samples_per_cell = 2;
  uint64_t seed = 0;
};
std::vector<GenerationSample> make_passkey(const PasskeyOptions& opts, const TokenCounter& count_tokens);

}  // namespace mambalm::eval
