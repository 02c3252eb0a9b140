// `mambalm tokenizer train` and model directories that carry their tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

// A few thousand lines of English-like text made from a word list, so the trainer has data.
std::string write_text(const std::string& dir) {
  const char* words[] = {"the", "whale", "ship", "captain", "sea", "white", "harpoon", "crew", "deck", "voyage",
                         "storm", "sailor", "ocean", "wind", "night", "morning", "island", "boat", "rope", "sail"};
  Rng rng(test_seed());
  std::string path = dir + "/text.txt";
  std::ofstream f(path);
  for (int line = 0; line < 3000; ++line) {
    for (int w = 0; w < 12; ++w) f << (w ? " " : "") << words[rng.next_u64() % 20];
    f << ".\n";
  }
  return path;
}

TEST(TokenizerTrain, BpeAndUnigramRoundTripAndCarryIntoModelDirectory) {
  std::string dir = temp_dir("sptrain");
  std::string text = write_text(dir);
  for (const char* type : {"bpe", "unigram"}) {
    std::string out = dir + "/sp-" + type;
    CommandResult r = run_cli(std::string("tokenizer train --input ") + text + " --vocab-size 310 --type " + type + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(fs::exists(out + ".model"));
    auto tok = open_tokenizer(out + ".model");
    EXPECT_EQ(tok->vocab_size(), 310);
    std::string sample = "the white whale and the captain's boat, 1851 — Ishmael";
    EXPECT_EQ(tok->decode(tok->encode(sample)), sample);  // byte fallback: nothing is unknown
  }
  // A model directory carries the tokenizer; the vocabulary is padded to a multiple of 64.
  std::string model = dir + "/model";
  CommandResult r = run_cli("init --preset mamba2-tiny --tokenizer " + dir + "/sp-bpe.model --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(model + "/tokenizer.model"));
  auto info = nlohmann::json::parse(run_cli("info " + model + " --json").out);
  EXPECT_EQ(info["vocab_size"], 320);
  r = run_cli("generate --model " + model + " --prompt 'the white whale' --max-tokens 6 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  r = run_cli("generate --model " + model + " --prompt 'the white whale' --max-tokens 6 --ignore-eos --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream ids(r.out);
  int n = 0;
  for (int id; ids >> id; ++n) EXPECT_LT(id, 310);  // never a padding row
  EXPECT_EQ(n, 6);

  // Training keeps the tokenizer with every checkpoint, so each is a complete model directory.
  r = run_cli("prepare --tokenizer " + model + " --input " + text + " --split-paragraphs --out " + dir + "/data --valid-fraction 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("train --model " + model + " --data " + dir + "/data --out " + dir + "/run --steps 2 --seq-len 32 --micro-batch 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoints/step-00000002/tokenizer.model"));
  r = run_cli("generate --model " + dir + "/run/checkpoints/step-00000002 --prompt 'the sea' --max-tokens 3 --ignore-eos");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(TokenizerTrain, BadArgumentsAreClearErrors) {
  std::string dir = temp_dir("spbad");
  std::string text = write_text(dir);
  CommandResult r = run_cli("tokenizer train --input " + text + " --vocab-size 400 --type wordpiece --out " + dir + "/x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("wordpiece"), std::string::npos) << r.err;
  r = run_cli("tokenizer train --input /nonexistent.txt --vocab-size 400 --out " + dir + "/x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.txt"), std::string::npos) << r.err;
  r = run_cli("tokenizer frobnicate");
  EXPECT_EQ(r.exit_code, 1);
  r = run_cli("init --preset mamba2-tiny --tokenizer " + dir + "/missing.model --out " + dir + "/m");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.model"), std::string::npos) << r.err;
}

}  // namespace

// JSON Lines inputs train on their records' text, not on the raw JSON: the same text as a plain
// file and as {"id": .., "text": ..} records gives the same vocabulary; a bad record is a
// one-line error naming its line.
TEST(TokenizerTrain, JsonLinesInputsTrainOnTheRecordsText) {
  const std::string dir = temp_dir("sptrain-jsonl");
  const std::string text = write_text(dir);
  std::ifstream in(text);
  std::ofstream jl(dir + "/text.jsonl");
  std::string line;
  for (int id = 0; std::getline(in, line); ++id) jl << nlohmann::json{{"id", id}, {"body", line}}.dump() << "\n";
  jl.close();
  CommandResult a = run_cli("tokenizer train --input " + text + " --vocab-size 310 --threads 1 --out " + dir + "/plain");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  CommandResult b = run_cli("tokenizer train --input " + dir + "/text.jsonl --json-key body --vocab-size 310 --threads 1 --out " + dir + "/jl");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(read_file(dir + "/plain.vocab"), read_file(dir + "/jl.vocab"));
  EXPECT_EQ(read_file(dir + "/jl.vocab").find("body"), std::string::npos);

  std::ofstream bad(dir + "/bad.jsonl");
  bad << "{\"body\": \"fine\"}\n{\"body\": 3}\n";
  bad.close();
  CommandResult c = run_cli("tokenizer train --input " + dir + "/bad.jsonl --json-key body --vocab-size 310 --out " + dir + "/bad");
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.err.find("bad.jsonl:2"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("not a string"), std::string::npos) << c.err;
}
