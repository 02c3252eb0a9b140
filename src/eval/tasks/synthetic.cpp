#include "eval/tasks/synthetic.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace mambalm::eval {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool exact_match(const std::string& generated, const std::string& gold) { return trim(generated) == trim(gold); }

std::string tag_number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

namespace {

Rng sample_rng(uint64_t seed, uint64_t task, size_t cell, int64_t sample) {
  return Rng(seed ^ (task * 0x9e3779b97f4a7c15ull)).fork(cell * 1000003 + static_cast<uint64_t>(sample) + 1);
}

std::string random_key(Rng& rng) {
  std::string k(3, 'a');
  for (char& c : k) c = static_cast<char>('a' + rng.next_u64() % 26);
  return k;
}

std::string digits(Rng& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('0' + (i == 0 ? 1 + rng.next_u64() % 9 : rng.next_u64() % 10));
  return s;
}

}  // namespace

std::vector<GenerationSample> make_mqar(const MqarOptions& opts) {
  check(opts.queries > 0 && opts.samples_per_cell > 0, "mqar", "queries and samples must be positive");
  std::vector<GenerationSample> out;
  for (size_t li = 0; li < opts.pairs.size(); ++li) {
    const int64_t n = opts.pairs[li];
    check(n >= opts.queries, "mqar", "pairs (" + std::to_string(n) + ") must be >= queries (" + std::to_string(opts.queries) + ")");
    check(n <= 26 * 26 * 26, "mqar", "at most 17576 distinct keys");
    for (int64_t s = 0; s < opts.samples_per_cell; ++s) {
      Rng rng = sample_rng(opts.seed, 1, li, s);
      std::set<std::string> seen;
      std::vector<std::pair<std::string, std::string>> kv;
      while (static_cast<int64_t>(kv.size()) < n) {
        std::string k = random_key(rng);
        if (seen.insert(k).second) kv.emplace_back(k, digits(rng, 4));
      }
      // Distinct queried pairs, in random order.
      std::vector<size_t> idx(kv.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      for (size_t i = 0; i < static_cast<size_t>(opts.queries); ++i) std::swap(idx[i], idx[i + rng.next_u64() % (idx.size() - i)]);
      GenerationSample g;
      g.prompt = "Pairs:";
      for (const auto& [k, v] : kv) g.prompt += " " + k + "=" + v;
      g.prompt += "\nQueries:";
      for (int64_t q = 0; q + 1 < opts.queries; ++q) g.prompt += " " + kv[idx[static_cast<size_t>(q)]].first + "=" + kv[idx[static_cast<size_t>(q)]].second;
      const auto& asked = kv[idx[static_cast<size_t>(opts.queries - 1)]];
      g.prompt += " " + asked.first + "=";
      g.answer = asked.second;
      g.until = {" ", "\n"};
      g.max_gen_tokens = 8;
      g.tags = {{"length", std::to_string(n)}};
      out.push_back(std::move(g));
    }
  }
  return out;
}

std::vector<GenerationSample> make_selective_copy(const SelectiveCopyOptions& opts) {
  check(opts.letters > 0 && opts.samples_per_cell > 0, "selective_copy", "letters and samples must be positive");
  std::vector<GenerationSample> out;
  for (size_t li = 0; li < opts.lengths.size(); ++li) {
    const int64_t n = opts.lengths[li];
    check(n >= opts.letters, "selective_copy", "length " + std::to_string(n) + " is shorter than the letters to copy");
    for (int64_t s = 0; s < opts.samples_per_cell; ++s) {
      Rng rng = sample_rng(opts.seed, 2, li, s);
      std::vector<char> items(static_cast<size_t>(n), '.');
      std::vector<size_t> pos(items.size());
      for (size_t i = 0; i < pos.size(); ++i) pos[i] = i;
      for (size_t i = 0; i < static_cast<size_t>(opts.letters); ++i) std::swap(pos[i], pos[i + rng.next_u64() % (pos.size() - i)]);
      std::sort(pos.begin(), pos.begin() + opts.letters);
      GenerationSample g;
      for (int64_t i = 0; i < opts.letters; ++i) {
        char c = static_cast<char>('a' + rng.next_u64() % 26);
        items[pos[static_cast<size_t>(i)]] = c;
        g.answer += (i ? " " : "") + std::string(1, c);
      }
      g.prompt = "Copy the letters in order, skipping the dots.\nInput:";
      for (char c : items) g.prompt += std::string(" ") + c;
      g.prompt += "\nLetters:";
      g.until = {"\n"};
      g.max_gen_tokens = 2 * opts.letters + 4;
      g.tags = {{"length", std::to_string(n)}};
      out.push_back(std::move(g));
    }
  }
  return out;
}

std::vector<GenerationSample> make_passkey(const PasskeyOptions& opts, const TokenCounter& count_tokens) {
  check(opts.samples_per_cell > 0, "passkey", "samples must be positive");
  const std::string intro = "There is an important pass key hidden inside a lot of irrelevant text. Find it and memorize it.\n";
  const std::string filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
  const std::string question = "\nWhat is the pass key? The pass key is";
  const int64_t filler_tokens = std::max<int64_t>(1, count_tokens(filler));
  std::vector<GenerationSample> out;
  for (size_t li = 0; li < opts.lengths.size(); ++li) {
    const int64_t target = opts.lengths[li];
    for (size_t di = 0; di < opts.depths.size(); ++di) {
      const double depth = opts.depths[di];
      check(depth >= 0 && depth <= 1, "passkey", "depth " + tag_number(depth) + " is outside [0, 1]");
      for (int64_t s = 0; s < opts.samples_per_cell; ++s) {
        Rng rng = sample_rng(opts.seed, 3, li * 1000 + di, s);
        const std::string key = digits(rng, 5);
        const std::string needle = "The pass key is " + key + ". Remember it. " + key + " is the pass key. ";
        const int64_t fixed = count_tokens(intro) + count_tokens(needle) + count_tokens(question);
        const int64_t repeats = std::max<int64_t>(1, (target - fixed) / filler_tokens);
        const int64_t at = static_cast<int64_t>(depth * static_cast<double>(repeats) + 0.5);
        GenerationSample g;
        g.prompt = intro;
        for (int64_t r = 0; r <= repeats; ++r) {
          if (r == at) g.prompt += needle;
          if (r < repeats) g.prompt += filler;
        }
        g.prompt += question;
        g.answer = key;
        g.until = {".", "\n", " is"};
        g.max_gen_tokens = 12;
        g.tags = {{"length", std::to_string(target)}, {"depth", tag_number(depth)}};
        out.push_back(std::move(g));
      }
    }
  }
  return out;
}

}  // namespace mambalm::eval
