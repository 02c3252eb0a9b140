#include "eval/tasks/ruler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "eval/tasks/length_fit.h"
#include "io/atomic_file.h"

namespace mambalm::eval {

const char* const kRulerNoise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

namespace {

// Written for this project: keys are "adjective-noun" pairs (64 x 64 = 4096 of them).
const char* const kAdjectives[] = {
    "ancient", "bitter", "brave", "bright", "broken", "calm", "careful", "cheerful", "clever", "cold", "crooked", "curious",
    "damp", "dark", "distant", "dusty", "eager", "early", "empty", "fancy", "fierce", "gentle", "giant", "golden",
    "green", "grumpy", "hidden", "hollow", "humble", "icy", "jolly", "kind", "lazy", "little", "lively", "lonely",
    "loud", "lucky", "marble", "mellow", "misty", "narrow", "noisy", "odd", "old", "pale", "plain", "polite",
    "proud", "quiet", "rapid", "rough", "rusty", "salty", "silent", "silver", "sleepy", "smooth", "steady", "sturdy",
    "sunny", "tiny", "velvet", "wild"};
const char* const kNouns[] = {
    "anchor", "apple", "badger", "basket", "beacon", "bridge", "bucket", "button", "candle", "canyon", "castle", "cedar",
    "cellar", "comet", "compass", "cottage", "crystal", "dolphin", "dragon", "falcon", "feather", "fiddle", "forest", "fountain",
    "garden", "glacier", "harbor", "helmet", "island", "jacket", "kettle", "ladder", "lantern", "meadow", "mirror", "mountain",
    "needle", "orchard", "otter", "paddle", "parrot", "pebble", "pepper", "pillow", "planet", "pocket", "puzzle", "rabbit",
    "ribbon", "river", "saddle", "shadow", "signal", "spoon", "statue", "teapot", "thunder", "tiger", "tower", "trumpet",
    "tunnel", "violin", "wagon", "window"};

// RULER's needle depths: 40 evenly spaced percentages 0..100, rounded.
std::vector<int> ruler_depths() {
  std::vector<int> d;
  for (int i = 0; i < 40; ++i) d.push_back(static_cast<int>(std::lround(100.0 * i / 39.0)));
  return d;
}

uint64_t below(Rng& rng, uint64_t n) { return rng.next_u64() % n; }

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(rng, i)]);
}

// k distinct indices of [0, n), in draw order.
std::vector<size_t> sample_indices(size_t n, size_t k, Rng& rng) {
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  for (size_t i = 0; i < k; ++i) std::swap(all[i], all[i + below(rng, n - i)]);
  all.resize(k);
  return all;
}

std::string random_value(RulerValue kind, Rng& rng) {
  switch (kind) {
    case RulerValue::Numbers:
      return std::to_string(1000000 + below(rng, 9000000));  // 7 digits, as RULER
    case RulerValue::Words:
      return std::string(kAdjectives[below(rng, std::size(kAdjectives))]) + "-" + kNouns[below(rng, std::size(kNouns))];
    case RulerValue::Uuids: {
      uint64_t hi = rng.next_u64(), lo = rng.next_u64();
      hi = (hi & ~0xf000ull) | 0x4000ull;                            // version 4
      lo = (lo & ~(3ull << 62)) | (2ull << 62);                        // RFC 4122 variant
      char buf[40];
      std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx", static_cast<unsigned long long>(hi >> 32),
                    static_cast<unsigned long long>((hi >> 16) & 0xffff), static_cast<unsigned long long>(hi & 0xffff),
                    static_cast<unsigned long long>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffull));
      return buf;
    }
  }
  return "";
}

const char* kind_word(RulerValue v, bool plural) {
  switch (v) {
    case RulerValue::Numbers: return plural ? "numbers" : "number";
    case RulerValue::Words: return plural ? "words" : "word";
    case RulerValue::Uuids: return plural ? "UUIDs" : "UUID";
  }
  return "";
}

// A pronounceable made-up word of 2 or 3 syllables (the common-words vocabulary).
std::string pseudo_word(Rng& rng) {
  static const char kConsonants[] = "bdfgklmnprstvz";
  static const char kVowels[] = "aeiou";
  const int syllables = 2 + static_cast<int>(below(rng, 2));
  std::string w;
  for (int i = 0; i < syllables; ++i) {
    w += kConsonants[below(rng, 14)];
    w += kVowels[below(rng, 5)];
  }
  return w;
}

std::vector<std::string> distinct_words(size_t n, Rng& rng, std::string (*make)(Rng&)) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  while (out.size() < n) {
    std::string w = make(rng);
    if (seen.insert(w).second) out.push_back(std::move(w));
  }
  return out;
}

std::string coded_word(Rng& rng) {
  std::string w(6, 'a');
  for (char& c : w) c = static_cast<char>('a' + below(rng, 26));
  return w;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// ---- the essay haystack -------------------------------------------------------------------

std::string cache_root() {
  const char* c = std::getenv("MAMBALM_CACHE");
  if (c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/mambalm";
}

// Whitespace collapsed, then split after ". ", "! " and "? ".
std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool space = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool ws = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
    if (ws) {
      space = !cur.empty();
      continue;
    }
    if (space) {
      const char last = cur.back();
      if (last == '.' || last == '!' || last == '?') {
        out.push_back(std::move(cur));
        cur.clear();
      } else {
        cur += ' ';
      }
      space = false;
    }
    cur += c;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

struct Essay {
  std::vector<std::string> sentences;
  std::string source;
};
const Essay kNoEssay;

const Essay& load_essay(const std::string& which) {
  static std::map<std::string, Essay> cache;
  if (auto it = cache.find(which); it != cache.end()) return it->second;
  namespace fs = std::filesystem;
  Essay e;
  std::string path = which == "auto" ? cache_root() + "/corpus/moby-dick" : which;
  if (which == "noise" || (which == "auto" && !fs::is_directory(path))) {
    e.sentences = {kRulerNoise};
    e.source = which == "noise" ? "noise" : "noise (no corpus at " + path + "; run scripts/fetch-corpus.sh)";
    return cache[which] = e;
  }
  check(fs::exists(path), path, "no such haystack file or directory", "--haystack auto|noise|FILE|DIR");
  std::vector<std::string> files;
  if (fs::is_directory(path)) {
    for (const auto& f : fs::directory_iterator(path))
      // The default corpus's Moby-Dick: its chapters only (contents.txt is a list of titles).
      if (f.is_regular_file() && f.path().extension() == ".txt" && (which != "auto" || f.path().stem().string().rfind("chapter_", 0) == 0))
        files.push_back(f.path().string());
    // Natural order for names that differ in a number's width (chapter_2 before chapter_10).
    std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
  } else {
    files.push_back(path);
  }
  check(!files.empty(), path, "holds no .txt files", "--haystack auto|noise|FILE|DIR");
  std::string text;
  for (const std::string& f : files) text += io::read_text_file(f) + "\n";
  e.sentences = split_sentences(text);
  check(e.sentences.size() >= 10, path, "holds fewer than 10 sentences", "--haystack auto|noise|FILE|DIR");
  e.source = path + " (" + std::to_string(files.size()) + " files, " + std::to_string(e.sentences.size()) + " sentences)";
  return cache[which] = e;
}

// ---- prompts ---------------------------------------------------------------------------------

struct Built {
  std::string prompt;
  std::vector<std::string> answers;
};

// `n` haystack units with the needles among them: noise and needle haystacks are lines, one
// needle per chosen line position; the essay's sentences get the needles at RULER's depths.
std::string place_needles(const std::vector<std::string>& units, const std::vector<std::string>& needles, bool essay, Rng& rng) {
  if (!essay) {
    std::vector<std::string> lines = units;
    std::vector<size_t> at = sample_indices(lines.size(), std::min(needles.size(), lines.size()), rng);
    std::sort(at.begin(), at.end(), std::greater<>());
    for (size_t i = 0; i < needles.size(); ++i) lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(i < at.size() ? at[i] : 0), needles[i]);
    return join(lines, "\n");
  }
  const std::vector<int> depths = ruler_depths();
  std::vector<size_t> positions;
  for (size_t d : sample_indices(depths.size(), std::min(needles.size(), depths.size()), rng))
    positions.push_back(static_cast<size_t>(static_cast<double>(units.size()) * depths[d] / 100.0));
  while (positions.size() < needles.size()) positions.push_back(below(rng, units.size() + 1));
  std::sort(positions.begin(), positions.end());
  std::vector<std::string> parts;
  size_t last = 0;
  for (size_t i = 0; i < needles.size(); ++i) {
    for (size_t k = last; k < positions[i]; ++k) parts.push_back(units[k]);
    parts.push_back(needles[i]);
    last = positions[i];
  }
  for (size_t k = last; k < units.size(); ++k) parts.push_back(units[k]);
  return join(parts, " ");
}

std::string needle_text(RulerValue value_kind, const std::string& key, const std::string& value) {
  return std::string("One special ") + kind_word(value_kind, false) + " for " + key + " is: " + value + ".";
}

Built build_niah(const RulerNiahConfig& c, const Essay& essay, int64_t n, Rng rng) {
  const int64_t n_keys = std::max(c.keys, c.queries);
  std::vector<std::string> keys, needles;
  std::vector<std::vector<std::string>> values;
  for (int64_t k = 0; k < n_keys; ++k) {
    keys.push_back(random_value(c.key, rng));
    values.emplace_back();
    for (int64_t v = 0; v < c.values; ++v) {
      values.back().push_back(random_value(c.value, rng));
      needles.push_back(needle_text(c.value, keys.back(), values.back().back()));
    }
  }
  shuffle(needles, rng);
  std::vector<std::string> units;
  const size_t count = static_cast<size_t>(n);
  if (c.haystack == RulerHaystack::Noise) {
    units.assign(count, kRulerNoise);
  } else if (c.haystack == RulerHaystack::Needle) {
    for (size_t i = 0; i < count; ++i) units.push_back(needle_text(c.value, random_value(c.key, rng), random_value(c.value, rng)));
  } else {
    for (size_t i = 0; i < count; ++i) units.push_back(essay.sentences[i % essay.sentences.size()]);
  }
  const std::string context = place_needles(units, needles, c.haystack == RulerHaystack::Essay, rng);
  std::vector<std::string> queries, answers;
  for (size_t i : sample_indices(keys.size(), static_cast<size_t>(c.queries), rng)) {
    queries.push_back(keys[i]);
    for (const std::string& v : values[i]) answers.push_back(v);
  }
  std::string query = queries.back();
  if (queries.size() > 1) query = join(std::vector<std::string>(queries.begin(), queries.end() - 1), ", ") + ", and " + queries.back();
  const bool plural = c.queries * c.values > 1;
  const std::string kind = kind_word(c.value, plural);
  std::string prompt = plural ? "Several special " + kind + " are hidden in the text below. Remember them; a question about them follows the text.\n"
                              : "A special " + kind + " is hidden in the text below. Remember it; a question about it follows the text.\n";
  prompt += context + "\n";
  prompt += "Which special " + kind + " does the text above give for " + query + "? The special " + kind +
            " given for " + query + " in the text above " + (plural ? "are" : "is");
  return {prompt, answers};
}

std::string random_variable(Rng& rng) {
  std::string v(5, 'A');
  for (char& c : v) c = static_cast<char>('A' + below(rng, 26));
  return v;
}

// One chain of `hops` assignments among n noise lines, its question and answer prefix.
Built build_vt_question(int64_t n, int64_t hops, Rng& rng) {
  std::vector<std::string> vars;
  std::set<std::string> seen;
  while (static_cast<int64_t>(vars.size()) < hops + 1) {
    std::string v = random_variable(rng);
    if (seen.insert(v).second) vars.push_back(v);
  }
  const std::string value = std::to_string(10000 + below(rng, 90000));
  std::vector<std::string> chain = {"VAR " + vars[0] + " = " + value};
  for (int64_t j = 0; j < hops; ++j) chain.push_back("VAR " + vars[static_cast<size_t>(j + 1)] + " = VAR " + vars[static_cast<size_t>(j)]);
  std::vector<std::string> lines(static_cast<size_t>(n), kRulerNoise);
  std::vector<size_t> at = sample_indices(lines.size(), std::min(chain.size(), lines.size()), rng);
  std::sort(at.begin(), at.end());
  for (size_t j = 0; j < chain.size(); ++j) {
    const size_t pos = j < at.size() ? at[j] + j : lines.size();  // RULER: the j-th sorted position, shifted by j
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(pos), chain[j]);
  }
  std::string prompt = "Track the chain of variable assignments hidden in the text below.\n\n" + join(lines, "\n") +
                       "\nQuestion: Which variables are assigned the value " + value + " in the text above? Answer: Following the "
                       "assignments in the text above, " + std::to_string(hops + 1) + " variables are assigned the value " + value + ": ";
  return {prompt, vars};
}

constexpr int64_t kVtHops = 4;
constexpr int64_t kVtExampleLines = 5;  // the solved example's noise lines (RULER sizes it to 500 tokens)

Built build_vt(int64_t n, Rng rng) {
  Rng example_rng = rng.fork(11);
  const Built example = build_vt_question(kVtExampleLines, kVtHops, example_rng);
  Built q = build_vt_question(n, kVtHops, rng);
  q.prompt = example.prompt + join(example.answers, " ") + "\n" + q.prompt;
  return q;
}

std::string cwe_question(const std::string& list) {
  return "Below is a numbered list of words. Some words occur more often than the others; memorize those.\n" + list +
         "\nQuestion: Which are the 10 most common words in the list above? Answer: The 10 words that occur most often in the list above are:";
}

// A numbered list of n distinct words, the first 10 repeated `common` times, the rest `rare` times.
std::pair<std::string, std::vector<std::string>> cwe_list(int64_t n, int64_t common, int64_t rare, Rng& rng) {
  const std::vector<std::string> words = distinct_words(static_cast<size_t>(n), rng, pseudo_word);
  std::vector<std::string> items;
  for (size_t i = 0; i < words.size(); ++i)
    for (int64_t r = 0; r < (i < 10 ? common : rare); ++r) items.push_back(words[i]);
  shuffle(items, rng);
  std::string list;
  for (size_t i = 0; i < items.size(); ++i) list += (i ? " " : "") + std::to_string(i + 1) + ". " + items[i];
  return {list, std::vector<std::string>(words.begin(), words.begin() + 10)};
}

Built build_cwe(int64_t n, bool short_context, Rng rng) {
  auto [example_list, example_answer] = short_context ? cwe_list(20, 3, 1, rng) : cwe_list(40, 10, 3, rng);
  std::string example_out;
  for (size_t i = 0; i < example_answer.size(); ++i) example_out += (i ? " " : "") + std::to_string(i + 1) + ". " + example_answer[i];
  auto [list, answer] = short_context ? cwe_list(n, 6, 1, rng) : cwe_list(n, 30, 3, rng);
  return {cwe_question(example_list) + " " + example_out + "\n" + cwe_question(list), answer};
}

Built build_fwe(int64_t n, int64_t vocab_size, Rng rng) {
  std::vector<std::string> vocab = distinct_words(static_cast<size_t>(vocab_size), rng, coded_word);
  vocab[0] = "...";  // the most frequent "word" is noise, as RULER
  const double zeta2 = 1.6449340668482264;  // zeta(2) = pi^2 / 6
  std::vector<std::string> words;
  for (size_t k = 0; k < vocab.size(); ++k) {
    const auto count = static_cast<int64_t>(static_cast<double>(n) * std::pow(static_cast<double>(k + 1), -2.0) / zeta2);
    for (int64_t i = 0; i < count; ++i) words.push_back(vocab[k]);
  }
  shuffle(words, rng);
  std::string prompt = "Read the coded text below and keep count of how often each coded word appears. Find the three coded words that "
                       "appear most often. " + join(words, " ") +
                       "\nQuestion: Give no explanation and ignore the dots '....'. Which three coded words appear most often in the "
                       "coded text above? Answer: The three coded words that appear most often in the coded text above are:";
  return {prompt, {vocab[1], vocab[2], vocab[3]}};
}

}  // namespace

const std::vector<RulerTaskSpec>& ruler_tasks() {
  using H = RulerHaystack;
  using V = RulerValue;
  static const std::vector<RulerTaskSpec> specs = {
      {"ruler_niah_single_1", RulerKind::Niah, {H::Noise, V::Words, V::Numbers, 1, 1, 1}, 128},
      {"ruler_niah_single_2", RulerKind::Niah, {H::Essay, V::Words, V::Numbers, 1, 1, 1}, 128},
      {"ruler_niah_single_3", RulerKind::Niah, {H::Essay, V::Words, V::Uuids, 1, 1, 1}, 128},
      {"ruler_niah_multikey_1", RulerKind::Niah, {H::Essay, V::Words, V::Numbers, 4, 1, 1}, 128},
      {"ruler_niah_multikey_2", RulerKind::Niah, {H::Needle, V::Words, V::Numbers, 1, 1, 1}, 128},
      {"ruler_niah_multikey_3", RulerKind::Niah, {H::Needle, V::Uuids, V::Uuids, 1, 1, 1}, 128},
      {"ruler_niah_multivalue", RulerKind::Niah, {H::Essay, V::Words, V::Numbers, 1, 4, 1}, 128},
      {"ruler_niah_multiquery", RulerKind::Niah, {H::Essay, V::Words, V::Numbers, 1, 1, 4}, 128},
      {"ruler_vt", RulerKind::VariableTracking, {}, 30},
      {"ruler_cwe", RulerKind::CommonWords, {}, 120},
      {"ruler_fwe", RulerKind::FrequentWords, {}, 50},
  };
  return specs;
}

const RulerTaskSpec* find_ruler_task(const std::string& name) {
  for (const RulerTaskSpec& s : ruler_tasks())
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<int64_t> ruler_lengths(int64_t longest) {
  std::vector<int64_t> out;
  for (int64_t l = 4096; l <= 131072; l *= 2)
    if (longest <= 0 || l <= longest) out.push_back(l);
  if (out.empty()) out.push_back(longest);
  return out;
}

RulerSamples make_ruler(const RulerTaskSpec& spec, const RulerOptions& opts, const TokenCounter& count_tokens) {
  check(opts.samples_per_cell > 0, spec.name, "samples per cell must be positive");
  check(!opts.lengths.empty(), spec.name, "no lengths given");
  RulerSamples out;
  const bool uses_essay = spec.kind == RulerKind::Niah && spec.niah.haystack == RulerHaystack::Essay;
  const Essay* essay = uses_essay ? &load_essay(opts.haystack) : nullptr;
  out.haystack_source = uses_essay ? essay->source : spec.kind == RulerKind::Niah && spec.niah.haystack == RulerHaystack::Needle ? "needles" : spec.kind == RulerKind::Niah || spec.kind == RulerKind::VariableTracking ? "noise" : "none";
  uint64_t task_salt = 1469598103934665603ull;  // FNV-1a of the name: the same streams on every platform
  for (char c : spec.name) task_salt = (task_salt ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  for (size_t li = 0; li < opts.lengths.size(); ++li) {
    const int64_t length = opts.lengths[li];
    check(length > spec.tokens_to_generate, spec.name, "length " + std::to_string(length) + " leaves no room for the prompt",
          "lengths must exceed the tokens to generate (" + std::to_string(spec.tokens_to_generate) + ")");
    const int64_t budget = length - spec.tokens_to_generate;
    const int64_t fwe_vocab = std::max<int64_t>(8, budget / 50);
    int64_t minimum = 1;
    if (spec.kind == RulerKind::CommonWords) minimum = 11;
    if (spec.kind == RulerKind::FrequentWords) minimum = 30;
    int64_t fitted = 0;
    for (int64_t s = 0; s < opts.samples_per_cell; ++s) {
      const Rng rng = Rng(opts.seed ^ (task_salt * 0x9e3779b97f4a7c15ull)).fork(li * 1000003 + static_cast<uint64_t>(s) + 1);
      auto build = [&](int64_t n) -> Built {
        switch (spec.kind) {
          case RulerKind::Niah: return build_niah(spec.niah, essay ? *essay : kNoEssay, n, rng);
          case RulerKind::VariableTracking: return build_vt(n, rng);
          case RulerKind::CommonWords: return build_cwe(n, length < 4096, rng);
          case RulerKind::FrequentWords: return build_fwe(n, fwe_vocab, rng);
        }
        return {};
      };
      auto fits = [&](int64_t n) { return count_tokens(build(n).prompt) <= budget; };
      const std::string what = spec.name + " length " + std::to_string(length);
      if (s == 0) {
        const int64_t probe = minimum + 200;
        const int64_t per_unit = std::max<int64_t>(1, count_tokens(build(probe).prompt) / probe);
        int64_t hi = std::max(minimum, 3 * budget / per_unit + 16);
        while (fits(hi)) hi *= 2;
        fitted = largest_fitting(minimum, hi, fits);
        check(fitted >= minimum, what, "too short for the task's fixed text", "give longer --lengths");
      }
      const int64_t n = fit_near(fitted, minimum, fits, what);
      Built b = build(n);
      GenerationSample g;
      g.prompt = std::move(b.prompt);
      g.references = b.answers;
      g.answer = join(b.answers, ", ");
      g.until = {};
      g.max_gen_tokens = spec.tokens_to_generate;
      g.tags = {{"length", std::to_string(length)}};
      out.samples.push_back(std::move(g));
    }
  }
  return out;
}

}  // namespace mambalm::eval
