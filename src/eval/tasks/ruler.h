// RULER's synthetic long-context tasks (Hsieh et al. 2024, "RULER: What's the Real Context
// Size of Your Long-Context Language Models?", arXiv 2404.06654; github.com/NVIDIA/RULER,
// scripts/data/synthetic/{niah,variable_tracking,common_words_extraction,
// freq_words_extraction}.py and scripts/synthetic.yaml), generated here without external data.
// What follows RULER: the task configurations (haystack kind, key/value kinds and counts per
// task), the needle and distractor structure, the value formats (7-digit numbers, UUID v4
// strings, adjective-noun keys), variable-tracking chains (5-letter upper-case names, a 5-digit
// value, 1 chain of 4 hops, one solved example first), the common-words list (numbered, 10
// common words x30 among others x3; x6/x1 and a 20-word example below 4K) and the Zipf(2)
// coded-word text (6-letter words, vocabulary length/50, the most frequent word replaced by
// "...", the answer the next three), the answer prefix ending each prompt, the tokens to
// generate (128 / 30 / 120 / 50), the sizing (prompt + tokens to generate <= length, as long
// as that allows) and the scoring (string_match_all, eval/generation_metrics.h).
// What differs: the instruction sentences are this project's own wording of RULER's; the
// keys' adjectives and nouns and the common-words vocabulary are this project's lists
// (RULER's come from the wonderwords package); the "essay" haystack is local text (the
// default corpus's Moby-Dick chapters under $MAMBALM_CACHE/corpus, or --haystack PATH) in
// place of Paul Graham's essays, and sentences are split at ". ", "! ", "? " (RULER: nltk).
// Needles go at depths drawn from RULER's 40 evenly spaced depths.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks/generation_task.h"

namespace mambalm::eval {

enum class RulerHaystack { Noise, Essay, Needle };
enum class RulerValue { Numbers, Words, Uuids };

struct RulerNiahConfig {
  RulerHaystack haystack = RulerHaystack::Essay;
  RulerValue key = RulerValue::Words, value = RulerValue::Numbers;
  int64_t keys = 1, values = 1, queries = 1;
};

enum class RulerKind { Niah, VariableTracking, CommonWords, FrequentWords };

struct RulerTaskSpec {
  std::string name;  // mambalm's task name, "ruler_" + RULER's
  RulerKind kind = RulerKind::Niah;
  RulerNiahConfig niah;  // Niah only
  int64_t tokens_to_generate = 128;
};

// RULER's 11 synthetic tasks (niah_single_1..3, niah_multikey_1..3, niah_multivalue,
// niah_multiquery, vt, cwe, fwe) as "ruler_<name>".
const std::vector<RulerTaskSpec>& ruler_tasks();
const RulerTaskSpec* find_ruler_task(const std::string& name);

struct RulerOptions {
  std::vector<int64_t> lengths = {4096, 8192, 16384, 32768, 65536, 131072};  // tokens
  int64_t samples_per_cell = 4;
  uint64_t seed = 0;
  // Essay haystack: "auto" = $MAMBALM_CACHE/corpus/moby-dick (else the noise sentence, recorded
  // in haystack_source), "noise", or a text file or a directory of .txt files.
  std::string haystack = "auto";
};

struct RulerSamples {
  std::vector<GenerationSample> samples;  // per length, samples_per_cell; tags "length"
  std::string haystack_source;            // what the essay haystack was read from
};

// Samples in order: for each length, samples_per_cell prompts. Each sample's references are
// RULER's outputs; `answer` holds them joined by ", " (for --write-train).
RulerSamples make_ruler(const RulerTaskSpec& spec, const RulerOptions& opts, const TokenCounter& count_tokens);

// The default lengths: RULER's 4K..128K up to `longest` (the model's context; all when <= 0),
// `longest` alone when it is under 4K.
std::vector<int64_t> ruler_lengths(int64_t longest);

// The noise haystack's sentence, as RULER's (and the passkey task's) filler.
extern const char* const kRulerNoise;

}  // namespace mambalm::eval
