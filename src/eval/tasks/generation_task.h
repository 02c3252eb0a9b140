// What the synthetic generation tasks (phonebook, MQAR, selective copying, passkey) produce:
// prompts whose gold answer the model must generate, scored by exact match, with tags (length,
// depth, ...) for the per-bucket breakdowns. Generators are pure functions of their options and
// a seed: the same seed gives the same samples on every machine (core/rng.h).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mambalm::eval {

struct GenerationSample {
  std::string prompt;
  std::string answer;                      // gold text; compared after trimming whitespace
  std::vector<std::string> references;     // run_scored_generation's references (empty: {answer})
  std::vector<std::string> until = {"\n"};  // stop strings for generate_until
  int64_t max_gen_tokens = 32;
  std::map<std::string, std::string> tags;  // breakdown keys, e.g. {"length", "1024"}, {"depth", "0.5"}
};

// Counts the tokens of a text (the model's tokenizer): generators use it to reach lengths
// given in tokens.
using TokenCounter = std::function<int64_t(const std::string&)>;

// Exact match after trimming ASCII whitespace at both ends.
bool exact_match(const std::string& generated, const std::string& gold);
std::string trim(const std::string& s);

// "0.25" style text for tags (shortest round-trip, no trailing zeros).
std::string tag_number(double v);

}  // namespace mambalm::eval
