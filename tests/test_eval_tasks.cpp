// Task generation and task runners: the same seed gives the same task and another seed a
// different one; the gold answer sits in the prompt where the task says; multiple-choice
// metrics on a file whose gold answers are forced from the model's own (independently
// computed) preferences; `mambalm eval` reports constant SSM state and a bounded KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "eval/runner.h"
#include "eval/tasks/phonebook.h"
#include "eval/tasks/synthetic.h"
#include "io/indexed_dataset.h"
#include "tokenizer/tokenizer.h"
#include "model/model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

int64_t bytes_count(const std::string& s) { return static_cast<int64_t>(s.size()); }

std::vector<std::string> prompts(const std::vector<eval::GenerationSample>& s) {
  std::vector<std::string> p;
  for (const auto& x : s) p.push_back(x.prompt + "|" + x.answer);
  return p;
}

TEST(EvalTasks, SameSeedSameTaskOtherSeedDifferent) {
  const eval::NameLists names = eval::builtin_name_lists();
  auto pb = [&](uint64_t seed, bool rev) {
    eval::PhonebookOptions o;
    o.book_tokens = {300, 900};
    o.seed = seed;
    o.reversed = rev;
    return prompts(eval::make_phonebook(o, names, bytes_count));
  };
  auto mq = [](uint64_t seed) { eval::MqarOptions o; o.seed = seed; return prompts(eval::make_mqar(o)); };
  auto sc = [](uint64_t seed) { eval::SelectiveCopyOptions o; o.seed = seed; return prompts(eval::make_selective_copy(o)); };
  auto pk = [](uint64_t seed) { eval::PasskeyOptions o; o.lengths = {1024, 4096}; o.seed = seed; return prompts(eval::make_passkey(o, bytes_count)); };
  EXPECT_EQ(pb(7, false), pb(7, false));
  EXPECT_NE(pb(7, false), pb(8, false));
  EXPECT_EQ(pb(7, true), pb(7, true));
  EXPECT_EQ(mq(7), mq(7));
  EXPECT_NE(mq(7), mq(8));
  EXPECT_EQ(sc(7), sc(7));
  EXPECT_NE(sc(7), sc(8));
  EXPECT_EQ(pk(7), pk(7));
  EXPECT_NE(pk(7), pk(8));
  // Samples within one task differ from each other too.
  std::vector<std::string> p = pb(7, false);
  EXPECT_EQ(std::set<std::string>(p.begin(), p.end()).size(), p.size());
}

TEST(EvalTasks, PhonebookGoldIsInTheBookAtItsDepth) {
  eval::PhonebookOptions o;
  o.book_tokens = {2000};
  o.depths = {0.0, 0.5, 1.0};
  o.shots = 2;
  o.samples_per_cell = 3;
  o.seed = test_seed();
  for (bool reversed : {false, true}) {
    o.reversed = reversed;
    for (const eval::GenerationSample& s : eval::make_phonebook(o, eval::builtin_name_lists(), bytes_count)) {
      // The question is the last line: "First Last:"
      const std::string name = s.prompt.substr(s.prompt.rfind('\n') + 1, s.prompt.size() - s.prompt.rfind('\n') - 2);
      const std::string line = name + ": " + s.answer + "\n";
      const size_t book_begin = reversed ? s.prompt.find("Phonebook:\n") + 11 : 0;
      const size_t book_end = s.prompt.find("\n\n", book_begin) + 1;
      const std::string book = s.prompt.substr(book_begin, book_end - book_begin);
      ASSERT_GE(static_cast<int64_t>(book.size()), 2000);
      const size_t at = book.find(line);
      ASSERT_NE(at, std::string::npos) << "gold line missing: " << line;
      EXPECT_EQ(book.find(line, at + 1), std::string::npos) << "gold line twice";
      EXPECT_EQ(std::count(book.begin(), book.end(), '\n') - 1 >= 10, true);
      const double depth = std::stod(s.tags.at("depth"));
      if (depth == 0.0) {
        EXPECT_EQ(at, 0u);
      }
      if (depth == 1.0) {
        EXPECT_EQ(at + line.size(), book.size());
      }
      if (depth == 0.5) {
        EXPECT_NEAR(static_cast<double>(at) / static_cast<double>(book.size()), 0.5, 0.05);
      }
      EXPECT_EQ(s.answer.size(), 12u);
      EXPECT_EQ(s.answer[3], '-');
      if (reversed) {
        EXPECT_LT(s.prompt.find("The person to find: " + name + "\n"), book_begin);
      }
      // The shots are other book entries, before the question.
      const size_t shots_at = reversed ? s.prompt.find("Examples:\n") + 10 : book_end + 1;
      const std::string shot = s.prompt.substr(shots_at, s.prompt.find('\n', shots_at) - shots_at + 1);
      EXPECT_NE(book.find(shot), std::string::npos) << shot;
      EXPECT_NE(shot, line);
    }
  }
}

TEST(EvalTasks, SyntheticGoldWhereItMustBe) {
  eval::MqarOptions mo;
  mo.seed = test_seed();
  for (const auto& s : eval::make_mqar(mo)) {
    const std::string key = s.prompt.substr(s.prompt.size() - 4, 3);
    const size_t queries = s.prompt.find("\nQueries:");
    EXPECT_NE(s.prompt.substr(0, queries).find(" " + key + "=" + s.answer), std::string::npos);
    EXPECT_EQ(s.prompt.substr(0, queries).find(" " + key + "=", s.prompt.find(" " + key + "=") + 1), std::string::npos);
  }
  eval::SelectiveCopyOptions so;
  so.seed = test_seed();
  for (const auto& s : eval::make_selective_copy(so)) {
    std::string letters;
    for (char c : s.prompt.substr(s.prompt.find("Input:") + 6, s.prompt.find("\nLetters:") - s.prompt.find("Input:") - 6))
      if (c >= 'a' && c <= 'z') letters += letters.empty() ? std::string(1, c) : std::string(" ") + c;
    EXPECT_EQ(letters, s.answer);
  }
  eval::PasskeyOptions po;
  po.lengths = {1024, 8192};
  po.seed = test_seed();
  for (const auto& s : eval::make_passkey(po, bytes_count)) {
    const size_t at = s.prompt.find("The pass key is " + s.answer + ".");
    ASSERT_NE(at, std::string::npos);
    const double len = static_cast<double>(std::stoll(s.tags.at("length")));
    EXPECT_NEAR(static_cast<double>(s.prompt.size()), len, 0.05 * len);
    // Depth is the needle's place in the filler between the intro line and the question.
    const size_t intro = s.prompt.find('\n') + 1, question = std::string("\nWhat is the pass key? The pass key is").size();
    const size_t needle = std::string("The pass key is " + s.answer + ". Remember it. " + s.answer + " is the pass key. ").size();
    const double rel = static_cast<double>(at - intro) / static_cast<double>(s.prompt.size() - intro - question - needle);
    // The needle goes between whole filler sentences (88 bytes): rounding to one of them.
    EXPECT_NEAR(rel, std::stod(s.tags.at("depth")), 0.6 * 88.0 / static_cast<double>(s.prompt.size() - intro - question - needle));
  }
}

// The model's preference is computed independently (one forward per prompt + choice, log
// softmax by hand); gold is then forced to the preferred choice in even documents and to the
// least preferred in odd ones, so acc must be exactly 1/2, and acc_norm matches the
// length-normalised preference.
TEST(EvalTasks, MultipleChoiceAccuracyOnForcedGold) {
  const std::string dir = temp_dir("eval-mc");
  ASSERT_EQ(run_cli("init --arch mamba2 --seed 3 --out " + dir + "/m").exit_code, 0);
  Model model = Model::load(dir + "/m");
  Rng noise(test_seed());
  for (ParamRef& p : model.params())
    for (int64_t i = 0; i < p.tensor->numel(); ++i) p.tensor->f32()[i] += static_cast<float>(0.15 * noise.uniform(-1, 1));
  auto tok = open_tokenizer("bytes");
  const int64_t V = model.config().vocab_size;
  auto reference = [&](const std::string& ctx, const std::string& cont) {
    std::string whole = ctx + cont;
    Tensor ids = Tensor::empty({1, static_cast<int64_t>(whole.size())}, DType::I32);  // [1, T]
    for (size_t i = 0; i < whole.size(); ++i) ids.data<int32_t>()[i] = static_cast<unsigned char>(whole[i]);
    Tensor logits = model.forward(ids);  // [1, T, V]
    double s = 0;
    for (size_t i = ctx.size(); i < whole.size(); ++i) {
      const float* row = logits.f32() + static_cast<int64_t>(i - 1) * V;
      double mx = *std::max_element(row, row + V), z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      s += row[static_cast<unsigned char>(whole[i])] - mx - std::log(z);
    }
    return s;
  };
  const std::vector<std::string> words = {"red", "green apples", "blue", "a tall yellow house", "cat", "dogs", "seven", "x"};
  std::vector<eval::McDoc> docs;
  int64_t expect_norm = 0;
  for (int d = 0; d < 8; ++d) {
    eval::McDoc doc;
    doc.context = "Question " + std::to_string(d) + ": which one?";
    for (int c = 0; c < 4; ++c) doc.choices.push_back(words[static_cast<size_t>((d + 3 * c) % 8)]);
    std::vector<double> lp, norm;
    for (const auto& c : doc.choices) {
      lp.push_back(reference(doc.context, " " + c));
      norm.push_back(lp.back() / static_cast<double>(c.size()));
    }
    doc.gold = d % 2 == 0 ? std::max_element(lp.begin(), lp.end()) - lp.begin() : std::min_element(lp.begin(), lp.end()) - lp.begin();
    expect_norm += (std::max_element(norm.begin(), norm.end()) - norm.begin()) == doc.gold;
    docs.push_back(doc);
  }
  eval::Scorer scorer(model, tok.get(), {.batch = 5});
  std::vector<eval::MetricRow> rows;
  nlohmann::json j = eval::run_multiple_choice(scorer, "mc", docs, {}, {}, rows);
  EXPECT_DOUBLE_EQ(j["metrics"]["acc"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["metrics"]["acc_norm"].get<double>(), static_cast<double>(expect_norm) / 8.0);
  EXPECT_NEAR(j["metrics"]["acc_stderr"].get<double>(), std::sqrt(0.25 * 8 / 7 / 8), 1e-12);
  // Letter format: the prompt lists the options and the continuations are letters.
  eval::McPrompt p = eval::build_mc_prompt(docs[0], 0, docs, {.format = eval::McFormat::Letter, .shots = 2, .seed = 1});
  EXPECT_EQ(p.continuations, (std::vector<std::string>{" A", " B", " C", " D"}));
  EXPECT_NE(p.context.find("\nA. " + docs[0].choices[0] + "\nB. "), std::string::npos);
  EXPECT_EQ(std::count(p.context.begin(), p.context.end(), '?'), 3) << "two shots and the question";
  EXPECT_EQ(p.context, eval::build_mc_prompt(docs[0], 0, docs, {.format = eval::McFormat::Letter, .shots = 2, .seed = 1}).context);
}

// A phonebook through the CLI on a pure Mamba-2 model and a Transformer: the SSM state is the
// same at every length (and equals the config's state size), the KV cache grows with the
// prompt and stays within max_position_embeddings tokens.
TEST(EvalTasks, CliPhonebookStateIsConstantKvCacheIsBounded) {
  const std::string dir = temp_dir("eval-cli");
  for (const char* arch : {"mamba2", "transformer"}) {
    const std::string m = dir + "/" + arch;
    ASSERT_EQ(run_cli(std::string("init --arch ") + arch + " --out " + m).exit_code, 0);
    CommandResult r = run_cli("eval --model " + m + " --tokenizer bytes --task phonebook_depth --names built-in --lengths 300,1500,6000 --depths 0,1 "
                              "--samples 1 --seed 4 --output " + dir + "/r.json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("exact_match[length=6000]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("exact_match[depth=1]"), std::string::npos) << r.out;
    nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/r.json"));
    const auto& by = j["memory"]["by_length"];
    const int64_t state = j["model"]["state_bytes_per_sequence"], per_tok = j["model"]["kv_bytes_per_token"];
    EXPECT_EQ(j["config"]["seed"], 4);
    EXPECT_EQ(j["config"]["names"], "built-in");
    for (const char* len : {"300", "1500", "6000"}) {
      const int64_t kv = by[len]["kv_cache_bytes"], ssm = by[len]["ssm_state_bytes"], prompt = by[len]["prompt_tokens"];
      std::printf("[mem] %s length %s: prompt %lld tokens, state %lld B, KV %lld B\n", arch, len, static_cast<long long>(prompt),
                  static_cast<long long>(ssm), static_cast<long long>(kv));
      EXPECT_EQ(ssm, state);
      if (std::string(arch) == "mamba2") {
        EXPECT_EQ(kv, 0);
        EXPECT_GE(prompt, std::stoll(len));
      } else {
        EXPECT_GE(kv, prompt * per_tok);
        EXPECT_LE(kv, j["config"]["max_length"].get<int64_t>() * per_tok);
      }
    }
  }
  // Training data from the same generator.
  ASSERT_EQ(run_cli("eval --model " + dir + "/mamba2 --tokenizer bytes --task mqar --lengths 8 --samples 5 --write-train " + dir + "/tr").exit_code, 0);
  io::IndexedDataset ds(dir + "/tr");
  EXPECT_EQ(ds.document_count(), 5);
  std::vector<int32_t> doc = ds.document_tokens(0);
  EXPECT_EQ(std::string(doc.begin(), doc.begin() + 6), "Pairs:");
  // Every document ends with the end-of-document token where the vocabulary has one (the model
  // learns to stop after the answer; a SentencePiece tokenizer cannot write the "\n" the
  // evaluation also stops at). The byte tokenizer's EOS (256) is past a 256-entry vocabulary:
  // with a 320-entry model it is written.
  EXPECT_EQ(ds.document_tokens(0).back(), '\n');
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --vocab 320 --out " + dir + "/m320").exit_code, 0);
  ASSERT_EQ(run_cli("eval --model " + dir + "/m320 --tokenizer bytes --task mqar --lengths 8 --samples 5 --write-train " + dir + "/tr2").exit_code, 0);
  io::IndexedDataset ds2(dir + "/tr2");
  const int32_t eos = open_tokenizer("bytes")->eos_id();
  for (int64_t d = 0; d < ds2.document_count(); ++d) EXPECT_EQ(ds2.document_tokens(d).back(), eos) << d;
  // Unknown tasks are one-line errors.
  CommandResult bad = run_cli("eval --model " + dir + "/mamba2 --tokenizer bytes --task nope");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("valid: phonebook"), std::string::npos) << bad.err;
}

}  // namespace
