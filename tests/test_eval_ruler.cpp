// The study's Phonebook, RULER's synthetic tasks and the generation metrics: prompt structure
// as the sources define it (eval/tasks/study_phonebook.h, eval/tasks/ruler.h), determinism by
// seed, prompts sized to their length in tokens, the scoring functions against hand-computed
// cases from RULER's and SQuAD's definitions, one-line errors for bad options, and the tasks
// end to end through `mambalm eval` on a random hybrid-tiny model.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "eval/generation_metrics.h"
#include "eval/tasks/ruler.h"
#include "eval/tasks/study_phonebook.h"
#include "io/indexed_dataset.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

int64_t bytes_count(const std::string& s) { return static_cast<int64_t>(s.size()); }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

std::vector<std::string> prompts(const std::vector<eval::GenerationSample>& s) {
  std::vector<std::string> p;
  for (const auto& x : s) p.push_back(x.prompt + "|" + x.answer);
  return p;
}

// ---- metrics -----------------------------------------------------------------------------

TEST(EvalGenerationMetrics, SquadNormalisationExactAndF1ByHand) {
  EXPECT_EQ(eval::squad_normalize("The  Cat, sat!"), "cat sat");
  EXPECT_EQ(eval::squad_normalize("An apple a day"), "apple day");
  EXPECT_EQ(eval::squad_normalize("theatre"), "theatre") << "articles only as whole words";
  // "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]: 2 common,
  // precision 2/2, recall 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8.
  EXPECT_DOUBLE_EQ(eval::squad_f1("the cat sat", {"a cat sat down"}), 0.8);
  // Repeated tokens count as many times as both sides have them: [cat cat] vs [cat]: 1 common,
  // precision 1/2, recall 1, F1 2/3.
  EXPECT_DOUBLE_EQ(eval::squad_f1("cat cat", {"cat"}), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(eval::squad_f1("dog", {"cat"}), 0.0);
  EXPECT_DOUBLE_EQ(eval::squad_f1("dog", {"cat", "the dog"}), 1.0) << "max over references";
  // Empty after normalisation (evaluate-v2.0.py): 1 if both are empty, else 0.
  EXPECT_DOUBLE_EQ(eval::squad_f1("the", {"a"}), 1.0);
  EXPECT_DOUBLE_EQ(eval::squad_f1("", {"cat"}), 0.0);
  EXPECT_DOUBLE_EQ(eval::squad_exact("The cat.", {"cat"}), 1.0);
  EXPECT_DOUBLE_EQ(eval::squad_exact("cats", {"cat"}), 0.0);
  EXPECT_DOUBLE_EQ(eval::contains_match("It was Paris, France.", {"paris"}), 1.0);
  EXPECT_DOUBLE_EQ(eval::contains_match("London", {"Paris", "Rome"}), 0.0);
  EXPECT_DOUBLE_EQ(eval::contains_match("anything", {"the"}), 0.0) << "a reference empty after normalisation matches nothing";
}

TEST(EvalGenerationMetrics, RulerStringMatchByHand) {
  // RULER: string_match_all = mean over references of [ref.lower() in pred.lower()];
  // string_match_part = max over references.
  EXPECT_DOUBLE_EQ(eval::string_match_all("The numbers are 1234567 and 7654321.", {"1234567", "7654321", "1111111"}), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(eval::string_match_part("The numbers are 1234567 and 7654321.", {"1234567", "7654321", "1111111"}), 1.0);
  EXPECT_DOUBLE_EQ(eval::string_match_part("nothing", {"1234567"}), 0.0);
  EXPECT_DOUBLE_EQ(eval::string_match_all(" JOLLY-Otter ", {"jolly-otter"}), 1.0) << "case-insensitive";
  // Post-processing: control characters become newlines, then strip.
  EXPECT_EQ(eval::ruler_postprocess("\t ab\x01" "cd \n"), "ab\ncd");
  EXPECT_DOUBLE_EQ(eval::string_match_all("ab\x01" "cd", {"ab\ncd"}), 1.0);
  EXPECT_DOUBLE_EQ(eval::string_match_all("ab\x01" "cd", {"abcd"}), 0.0);
  EXPECT_EQ(eval::parse_stop_list("\\n,\\,,a b"), (std::vector<std::string>{"\n", ",", "a b"}));
  EXPECT_TRUE(eval::parse_stop_list("").empty());
  EXPECT_THROW(eval::generation_metric("bleu"), std::exception);
}

namespace {
// Hand-written matchers (std::regex trips GCC 12's -Wmaybe-uninitialized in the sanitizer build).
bool all_of_chars(const std::string& s, bool (*ok)(char)) {
  for (char c : s)
    if (!ok(c)) return false;
  return !s.empty();
}
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
// "First Last: DDDDDDDDDD", the number's first digit 6-9.
bool is_phonebook_entry(const std::string& s) {
  const size_t colon = s.find(": "), space = s.find(' ');
  if (colon == std::string::npos || space >= colon) return false;
  const std::string number = s.substr(colon + 2);
  return all_of_chars(s.substr(0, space), is_alpha) && all_of_chars(s.substr(space + 1, colon - space - 1), is_alpha) &&
         number.size() == 10 && all_of_chars(number, is_digit) && number[0] >= '6';
}
// Seven digits, the first not 0.
bool is_number7(const std::string& s) { return s.size() == 7 && all_of_chars(s, is_digit) && s[0] != '0'; }
// A version-4 UUID in lower case: 8-4-4-4-12 hex digits, '4' at 14, one of 8 9 a b at 19.
bool is_uuid4(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i])) return false;
  }
  return s[14] == '4' && std::string("89ab").find(s[19]) != std::string::npos;
}
}  // namespace

// ---- the study's Phonebook -----------------------------------------------------------------

TEST(EvalStudyPhonebook, JelassiFormatStandardAndReversed) {
  const eval::NameLists names = eval::builtin_name_lists();
  for (bool reversed : {false, true}) {
    for (int64_t shots : {0, 2}) {
      eval::StudyPhonebookOptions o;
      o.lengths = {500, 2000};
      o.samples_per_cell = 3;
      o.shots = shots;
      o.reversed = reversed;
      o.seed = 5;
      for (const eval::GenerationSample& s : eval::make_study_phonebook(o, names, bytes_count)) {
        std::vector<std::string> l = lines_of(s.prompt);
        size_t i = 0;
        if (reversed) {
          ASSERT_EQ(l[0].rfind("Lookup: ", 0), 0u) << s.prompt.substr(0, 80);
          EXPECT_EQ(l[0].substr(8) + ":", l.back()) << "the question names the target before the book";
          EXPECT_EQ(l[1], "");
          i = 2;
        }
        std::set<std::string> book;
        for (; i < l.size() && !l[i].empty(); ++i) {
          EXPECT_TRUE(is_phonebook_entry(l[i])) << l[i];
          book.insert(l[i]);
        }
        ASSERT_EQ(l[i++], "");
        for (int64_t k = 0; k < shots; ++k, ++i) EXPECT_TRUE(book.count(l[i])) << "an example lookup is a book entry: " << l[i];
        if (shots > 0) { ASSERT_EQ(l[i++], ""); }
        ASSERT_EQ(i + 1, l.size()) << "the question is the last line";
        EXPECT_TRUE(book.count(l[i] + " " + s.answer)) << "the answer is the target's number: " << l[i];
        EXPECT_EQ(s.answer.size(), 10u);
        EXPECT_EQ(s.tags.at("format"), reversed ? "reversed" : "standard");
        // Sized to the length: prompt + answer budget fits, within a few entries (~30 bytes each) of it.
        const int64_t length = std::stoll(s.tags.at("length"));
        const int64_t used = bytes_count(s.prompt) + eval::kStudyPhonebookAnswerTokens;
        EXPECT_LE(used, length);
        EXPECT_GE(used, length - 80) << "length " << length;  // a few entries: names differ in length
      }
    }
  }
  EXPECT_EQ(eval::study_phonebook_lengths(4096), (std::vector<int64_t>{500, 1000, 2000, 4000, 4096}));
  EXPECT_EQ(eval::study_phonebook_lengths(0), (std::vector<int64_t>{500, 1000, 2000, 4000, 8000}));
}

TEST(EvalStudyPhonebook, SameSeedSameBooksOtherSeedDifferent) {
  const eval::NameLists names = eval::builtin_name_lists();
  auto pb = [&](uint64_t seed) {
    eval::StudyPhonebookOptions o;
    o.lengths = {600, 1200};
    o.seed = seed;
    return prompts(eval::make_study_phonebook(o, names, bytes_count));
  };
  EXPECT_EQ(pb(3), pb(3));
  EXPECT_NE(pb(3), pb(4));
  const std::vector<std::string> p = pb(3);
  EXPECT_EQ(std::set<std::string>(p.begin(), p.end()).size(), p.size());
}

// ---- RULER -------------------------------------------------------------------------------

const eval::RulerTaskSpec& spec(const std::string& name) {
  const eval::RulerTaskSpec* s = eval::find_ruler_task(name);
  EXPECT_NE(s, nullptr) << name;
  return *s;
}

std::vector<eval::GenerationSample> ruler(const std::string& name, std::vector<int64_t> lengths, uint64_t seed = 1,
                                          const std::string& haystack = "noise", int64_t samples = 2) {
  eval::RulerOptions o;
  o.lengths = std::move(lengths);
  o.seed = seed;
  o.haystack = haystack;
  o.samples_per_cell = samples;
  return eval::make_ruler(spec(name), o, bytes_count).samples;
}

TEST(EvalRuler, ElevenTasksWithRulersBudgets) {
  ASSERT_EQ(eval::ruler_tasks().size(), 11u);
  EXPECT_EQ(spec("ruler_niah_single_1").tokens_to_generate, 128);
  EXPECT_EQ(spec("ruler_vt").tokens_to_generate, 30);
  EXPECT_EQ(spec("ruler_cwe").tokens_to_generate, 120);
  EXPECT_EQ(spec("ruler_fwe").tokens_to_generate, 50);
  EXPECT_EQ(eval::ruler_lengths(0), (std::vector<int64_t>{4096, 8192, 16384, 32768, 65536, 131072}));
  EXPECT_EQ(eval::ruler_lengths(20000), (std::vector<int64_t>{4096, 8192, 16384}));
  EXPECT_EQ(eval::ruler_lengths(2048), (std::vector<int64_t>{2048}));
}

TEST(EvalRuler, NeedlesKeysAndValuesAsConfigured) {
  struct Case {
    std::string task;
    size_t references, needles;  // answers; needle sentences of the asked and distractor keys
  };
  for (const Case& c : std::vector<Case>{{"ruler_niah_single_1", 1, 1}, {"ruler_niah_single_2", 1, 1}, {"ruler_niah_single_3", 1, 1},
                                         {"ruler_niah_multikey_1", 1, 4}, {"ruler_niah_multivalue", 4, 4}, {"ruler_niah_multiquery", 4, 4}}) {
    for (const eval::GenerationSample& s : ruler(c.task, {4096})) {
      ASSERT_EQ(s.references.size(), c.references) << c.task;
      EXPECT_EQ(count_of(s.prompt, "One special "), c.needles) << c.task;
      for (const std::string& r : s.references) {
        EXPECT_TRUE(c.task == "ruler_niah_single_3" ? is_uuid4(r) : is_number7(r)) << c.task << ": " << r;
        EXPECT_EQ(count_of(s.prompt, " is: " + r + "."), 1u) << c.task << ": the value sits in its needle once";
      }
      EXPECT_EQ(s.prompt.substr(s.prompt.size() - 3), c.references > 1 ? "are" : " is") << c.task;
      if (c.task == "ruler_niah_single_1") { EXPECT_GT(count_of(s.prompt, eval::kRulerNoise), 30u); }
    }
  }
  // multikey_2 / 3: the haystack is needles with other keys; only the asked key's value answers.
  for (const char* task : {"ruler_niah_multikey_2", "ruler_niah_multikey_3"}) {
    for (const eval::GenerationSample& s : ruler(task, {4096})) {
      EXPECT_GT(count_of(s.prompt, "One special "), 20u) << task;
      ASSERT_EQ(s.references.size(), 1u);
      EXPECT_EQ(count_of(s.prompt, s.references[0]), 1u) << task;
    }
  }
}

TEST(EvalRuler, VariableTrackingChainCommonAndFrequentWords) {
  for (const eval::GenerationSample& s : ruler("ruler_vt", {4096})) {
    ASSERT_EQ(s.references.size(), 5u);
    // The asked question comes after the solved example; its chain is in it, in order.
    const std::string q = s.prompt.substr(s.prompt.rfind("Track the chain"));
    const std::string value = q.substr(q.rfind("the value ") + 10, 5);
    size_t at = q.find("VAR " + s.references[0] + " = " + value + "\n");
    ASSERT_NE(at, std::string::npos) << q.substr(q.size() - 300);
    for (size_t j = 1; j < 5; ++j) {
      const size_t next = q.find("VAR " + s.references[j] + " = VAR " + s.references[j - 1] + "\n");
      ASSERT_NE(next, std::string::npos);
      EXPECT_GT(next, at) << "hop " << j << " after hop " << j - 1;
      at = next;
    }
    EXPECT_EQ(count_of(s.prompt, "Track the chain"), 2u) << "one solved example, then the question";
  }
  // Bytes as tokens: 4096 bytes hold fewer list items than RULER's 4096 tokens do.
  for (const eval::GenerationSample& s : ruler("ruler_cwe", {12000})) {
    ASSERT_EQ(s.references.size(), 10u);
    const std::string list = s.prompt.substr(s.prompt.rfind("memorize those.\n"));
    std::map<std::string, int> counts;
    std::stringstream in(list.substr(16, list.find("\nQuestion") - 16));
    for (std::string num, word; in >> num >> word;) ++counts[word];
    for (const std::string& r : s.references) EXPECT_EQ(counts[r], 30) << r;
    for (const auto& [w, n] : counts)
      if (std::find(s.references.begin(), s.references.end(), w) == s.references.end()) { EXPECT_EQ(n, 3) << w; }
  }
  for (const eval::GenerationSample& s : ruler("ruler_fwe", {4096})) {
    ASSERT_EQ(s.references.size(), 3u);
    const std::string text = s.prompt.substr(0, s.prompt.find("\nQuestion"));
    std::map<std::string, int> counts;
    std::stringstream in(text.substr(text.find("most often. ") + 12));
    for (std::string w; in >> w;) ++counts[w];
    EXPECT_GT(counts["..."], counts[s.references[0]]);
    EXPECT_GT(counts[s.references[0]], counts[s.references[1]]);
    EXPECT_GT(counts[s.references[1]], counts[s.references[2]]);
    for (const auto& [w, n] : counts)
      if (w != "..." && std::find(s.references.begin(), s.references.end(), w) == s.references.end()) { EXPECT_LT(n, counts[s.references[2]]) << w; }
  }
}

TEST(EvalRuler, SizedToTheLengthAndDeterministicBySeed) {
  for (const eval::RulerTaskSpec& t : eval::ruler_tasks()) {
    const bool cwe = t.name == "ruler_cwe";  // bytes as tokens: its fixed text needs more than 4096
    for (const eval::GenerationSample& s : ruler(t.name, cwe ? std::vector<int64_t>{12000, 16384} : std::vector<int64_t>{4096, 8192}, 7)) {
      const int64_t length = std::stoll(s.tags.at("length"));
      const int64_t used = bytes_count(s.prompt) + t.tokens_to_generate;
      EXPECT_LE(used, length) << t.name;
      EXPECT_GE(used, length * 97 / 100) << t.name << " length " << length;
      EXPECT_EQ(s.max_gen_tokens, t.tokens_to_generate);
    }
    const int64_t l = cwe ? 12000 : 4096;
    EXPECT_EQ(prompts(ruler(t.name, {l}, 7)), prompts(ruler(t.name, {l}, 7))) << t.name;
    EXPECT_NE(prompts(ruler(t.name, {l}, 7)), prompts(ruler(t.name, {l}, 8))) << t.name;
  }
}

TEST(EvalRuler, EssayHaystackFromAGivenText) {
  const std::string dir = temp_dir("ruler-essay");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Sentence number " + std::to_string(i) + " is here.\n";
  write_file(dir + "/essay/a.txt", text);
  eval::RulerOptions o;
  o.lengths = {4096};
  o.haystack = dir + "/essay";
  o.samples_per_cell = 1;
  eval::RulerSamples r = eval::make_ruler(spec("ruler_niah_single_2"), o, bytes_count);
  EXPECT_NE(r.haystack_source.find("1 files, 200 sentences"), std::string::npos) << r.haystack_source;
  EXPECT_NE(r.samples[0].prompt.find("Sentence number 0 is here. Sentence number 1 is here."), std::string::npos);
  EXPECT_EQ(r.samples[0].prompt.find(eval::kRulerNoise), std::string::npos);
  o.haystack = dir + "/missing";
  EXPECT_THROW(eval::make_ruler(spec("ruler_niah_single_2"), o, bytes_count), std::exception);
}

// ---- through the CLI ----------------------------------------------------------------------

TEST(EvalRulerCli, TablesByLengthOnHybridTinyAndOneLineErrors) {
  const std::string dir = temp_dir("ruler-cli");
  const std::string m = dir + "/hybrid";
  ASSERT_EQ(run_cli("init --preset hybrid-tiny --out " + m).exit_code, 0);
  const std::string base = "eval --model " + m + " --tokenizer bytes ";
  CommandResult pb = run_cli(base + "--task phonebook --names built-in --lengths 300,600 --samples 2 --reversed --output " + dir + "/pb.json");
  ASSERT_EQ(pb.exit_code, 0) << pb.err;
  std::printf("%s", pb.out.c_str());
  EXPECT_NE(pb.out.find("exact_match[length=600]"), std::string::npos) << pb.out;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/pb.json"));
  EXPECT_EQ(j["config"]["format"], "reversed");
  EXPECT_EQ(j["config"]["shots"], 2);
  EXPECT_LE(j["memory"]["by_length"]["600"]["prompt_tokens"].get<int64_t>(), 600);

  for (const char* task : {"ruler_niah_single_1", "ruler_vt", "ruler_cwe", "ruler_fwe", "ruler_niah_multiquery"}) {
    CommandResult r = run_cli(base + "--task " + task + " --lengths 1800,2400 --samples 1 --haystack noise --output " + dir + "/r.json");
    ASSERT_EQ(r.exit_code, 0) << task << ": " << r.err;
    std::printf("%s", r.out.c_str());
    EXPECT_NE(r.out.find("string_match_all[length=2400]"), std::string::npos) << r.out;
    nlohmann::json rj = nlohmann::json::parse(std::ifstream(dir + "/r.json"));
    const double score = rj["metrics"]["string_match_all"];
    EXPECT_GE(score, 0.0);
    EXPECT_LE(score, 1.0);
    EXPECT_EQ(rj["config"]["metric"], "string_match_all");
  }

  // generate: user JSONL, stop strings, SQuAD F1 / exact match / contains.
  write_file(dir + "/qa.jsonl",
             "{\"prompt\": \"Q: What colour is the sky?\\nA:\", \"answers\": [\"blue\", \"light blue\"]}\n"
             "{\"question\": \"Q: Capital of France?\\nA:\", \"answer\": \"Paris\", \"until\": [\".\"], \"max_gen_toks\": 5}\n");
  CommandResult g = run_cli(base + "--task generate --file " + dir + "/qa.jsonl --until '\\n,\\,' --max-gen-tokens 8 --output " + dir + "/g.json");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  std::printf("%s", g.out.c_str());
  for (const char* metric : {" exact_match ", " f1 ", " contains "}) EXPECT_NE(g.out.find(metric), std::string::npos) << g.out;
  nlohmann::json gj = nlohmann::json::parse(std::ifstream(dir + "/g.json"));
  EXPECT_EQ(gj["config"]["until"], (std::vector<std::string>{"\n", ","}));
  EXPECT_EQ(gj["metrics"]["n"], 2);
  // The model's own greedy answers as the references: exact match and F1 must be 1 (the same
  // prompts decode the same way), whatever the random model writes. Through the library: the
  // results JSON replaces the random model's invalid UTF-8, so its text cannot round-trip.
  {
    Model model = Model::load(m);
    std::unique_ptr<Tokenizer> tok = open_tokenizer("bytes");
    eval::Scorer scorer(model, tok.get());
    std::vector<eval::GenerationSample> own(2);
    own[0].prompt = "Q: What colour is the sky?\nA:";
    own[1].prompt = "Q: Capital of France?\nA:";
    for (eval::GenerationSample& s : own) {
      s.until = {"\n", ","};
      s.max_gen_tokens = 8;
      s.references = {scorer.generate_until(s.prompt, {.until = s.until, .max_gen_tokens = 8}).text, "something else"};
    }
    std::vector<eval::MetricRow> rows;
    nlohmann::json r = eval::run_scored_generation(scorer, "own", own, {"exact_match", "f1", "string_match_part"}, rows);
    EXPECT_EQ(r["metrics"]["exact_match"], 1.0);
    EXPECT_EQ(r["metrics"]["f1"], 1.0);
    EXPECT_EQ(rows.size(), 3u);
  }

  // Training data from RULER's generator.
  ASSERT_EQ(run_cli(base + "--task ruler_niah_single_1 --lengths 600 --samples 3 --write-train " + dir + "/tr").exit_code, 0);
  io::IndexedDataset ds(dir + "/tr");
  EXPECT_EQ(ds.document_count(), 3);

  // Bad options: one line on stderr, non-zero exit.
  for (const std::string& bad : {base + "--task ruler_niah_single_1 --lengths 100",
                                 base + "--task phonebook --names built-in --lengths 20",
                                 base + "--task ruler_niah_single_2 --lengths 4096 --haystack " + dir + "/nowhere",
                                 base + "--task generate",
                                 base + "--task generate --file " + dir + "/qa.jsonl --until 'a,,b'",
                                 base + "--task phonebook --write-train " + dir + "/x --shots -1"}) {
    CommandResult r = run_cli(bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << bad << "\n" << r.err;
  }
}

// One prompt of each task at a short length, printed for docs/eval.md.
TEST(EvalRuler, PrintOnePromptOfEach) {
  const eval::NameLists names = eval::builtin_name_lists();
  for (bool reversed : {false, true}) {
    eval::StudyPhonebookOptions o;
    o.lengths = {200};
    o.samples_per_cell = 1;
    o.reversed = reversed;
    const eval::GenerationSample s = eval::make_study_phonebook(o, names, bytes_count)[0];
    std::printf("=== phonebook_study%s\n%s[answer: %s]\n", reversed ? " --reversed" : "", s.prompt.c_str(), s.answer.c_str());
  }
  for (const eval::RulerTaskSpec& t : eval::ruler_tasks()) {
    const eval::GenerationSample s = ruler(t.name, {t.name == "ruler_cwe" ? 2000 : t.name == "ruler_vt" ? 1500 : 900}, 1, "noise", 1)[0];
    std::printf("=== %s\n%s[references: %s]\n", t.name.c_str(), s.prompt.c_str(), s.answer.c_str());
  }
}

}  // namespace
