// A small training corpus with a known floor (a Markov chain over 48 symbols) and readers of a
// run's metrics.jsonl: shared by the training tests.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "io/indexed_dataset.h"

namespace mambalm::testing {

constexpr int kSymbols = 48;  // tokens used out of the byte vocabulary

// Documents from a first-order Markov chain: the next token is perm[previous] with probability
// 0.9, else uniform. The unigram distribution is near uniform (entropy ~ ln 48 = 3.87 nats)
// while the conditional entropy is ~0.8 nats: a model that learns anything beats the unigram.
struct Corpus {
  std::string prefix;
  double unigram_entropy = 0;
};

inline Corpus make_corpus(const std::string& dir, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> perm(kSymbols);
  for (int i = 0; i < kSymbols; ++i) perm[static_cast<size_t>(i)] = i;
  for (int i = kSymbols - 1; i > 0; --i) std::swap(perm[static_cast<size_t>(i)], perm[rng.next_u64() % static_cast<uint64_t>(i + 1)]);
  Corpus c{dir + "/markov", 0};
  std::vector<double> counts(kSymbols, 0);
  double total = 0;
  for (const char* split : {"_train", "_valid"}) {
    io::IndexedDatasetWriter w(c.prefix + split, 256);
    int docs = std::string(split) == "_train" ? 300 : 30;
    for (int d = 0; d < docs; ++d) {
      std::vector<int32_t> doc(static_cast<size_t>(50 + rng.next_u64() % 150));
      int32_t prev = static_cast<int32_t>(rng.next_u64() % kSymbols);
      for (int32_t& t : doc) {
        t = rng.uniform() < 0.9 ? perm[static_cast<size_t>(prev)] : static_cast<int32_t>(rng.next_u64() % kSymbols);
        prev = t;
        if (std::string(split) == "_train") {
          counts[static_cast<size_t>(t)] += 1;
          total += 1;
        }
      }
      w.add_document(doc);
    }
    w.finish();
  }
  for (double n : counts)
    if (n > 0) c.unigram_entropy -= n / total * std::log(n / total);
  return c;
}

// step -> loss, the last row for each step (a killed run may have logged steps it repeats).
inline std::map<int64_t, double> losses(const std::string& run) {
  std::map<int64_t, double> out;
  std::ifstream f(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

inline double last_val_loss(const std::string& run) {
  std::ifstream f(run + "/metrics.jsonl");
  std::string line;
  double v = NAN;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("val_loss")) v = j["val_loss"].get<double>();
  }
  return v;
}

}  // namespace mambalm::testing
