// Issue 20, point 1, flag by flag: every numeric option of generate, bench, eval and serve (and
// the ids that tokenize and grad read) is range-checked where it enters. Each bad value below must end
// in one line on stderr naming the option and exit code 1, never a crash, a hang or a run with
// a wrapped number. The table is the specification: a new numeric flag gets a row.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_reliability_util.h"

using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

// Values no integer option accepts: not numbers, trailing junk, past int64, blanks, fractions.
const std::vector<std::string> kNotIntegers = {"abc", "12abc", "''", "' 12'", "1.5", "0x10", "nan",
                                               "99999999999999999999", "-99999999999999999999"};
// Values no real option accepts: NaN, infinities, overflow, junk.
const std::vector<std::string> kNotReals = {"nan", "NaN", "inf", "-inf", "1e999", "-1e999", "abc", "0.5x", "''", "' 1'"};
const std::string k2p62 = "4611686018427387904", k2p32 = "4294967296";

struct FlagCase {
  std::string command;  // the command line before the flag; the numbers are read before any file
  std::string flag;     // without dashes
  bool real;            // a real-valued option (else an integer)
  std::vector<std::string> out_of_range;  // well-formed numbers the option refuses
};

// A model directory that does not exist: every case must fail on the number, not on the model.
const std::string kNoModel = "/nonexistent/mambalm-model";

std::vector<FlagCase> flag_cases() {
  const std::string gen = "generate --model " + kNoModel + " --prompt '1 2'";
  const std::string bench = "bench --preset mamba2-tiny";
  const std::string train = "bench --train --preset mamba2-tiny";
  const std::string eval = "eval --model " + kNoModel + " --task mqar";
  const std::string serve = "serve --model " + kNoModel;  // numbers are read before the model loads
  const std::string init = "init --arch mamba2 --preset mamba2-tiny --out /nonexistent/mambalm-init";
  const std::string trainer = "train --model " + kNoModel + " --data /nonexistent/data --out /nonexistent/run";
  return {
      {gen, "max-tokens", false, {"-1", "16777217", k2p32, k2p62}},
      {gen, "temperature", true, {"-0.5", "-1e-300", "1e7", "1e300"}},
      {gen, "top-k", false, {"-1", "16777217", k2p32, k2p62}},
      {gen, "top-p", true, {"0", "-0.1", "1.0001", "4294967296"}},
      {gen, "seed", false, {"-1", "-9223372036854775808"}},
      {gen, "min-p", true, {"-0.1", "1.5", "4294967296"}},
      {gen, "repeat-penalty", true, {"0", "-1", "1e7"}},
      {gen, "repeat-last-n", false, {"-2", "16777217", k2p32, k2p62}},
      {gen, "presence-penalty", true, {"1e7", "-1e7"}},
      {gen, "frequency-penalty", true, {"1e7", "-1e300"}},
      {gen, "logprobs", false, {"-1", "101", k2p32}},
      {bench, "prompt-len", false, {"0", "-1", "16777217", k2p32, k2p62}},
      {bench, "gen-len", false, {"0", "-3", "16777217", k2p32, k2p62}},
      {bench, "seed", false, {"-1"}},
      {bench, "contexts", false, {"0", "-1", "1K,0", "16385K", k2p32, k2p62, "9007199254740992K"}},
      {bench, "batches", false, {"0", "-8", "1,16777217", k2p32, k2p62}},
      {train, "seq-len", false, {"0", "-1", "16777217", k2p32, k2p62}},
      {train, "micro-batch", false, {"0", "-1", "16777217", k2p32, k2p62}},
      {train, "steps", false, {"0", "-1", "1073741825", k2p62}},
      {train, "warmup", false, {"-1", "1001", k2p32}},
      {init, "seed", false, {"-1", "-9223372036854775808"}},
      {trainer, "seed", false, {"-1", "-9223372036854775808"}},
      {eval, "seed", false, {"-1"}},
      {eval, "limit", false, {"0", "-1", "-2"}},
      {eval, "lengths", false, {"0", "-5", "16777217", "1,16385K", k2p32, k2p62}},
      {eval, "depths", true, {"-0.1", "1.5", "0.5,2", "4294967296"}},
      {eval, "samples", false, {"0", "-1", "1048577", k2p32, k2p62}},
      {eval, "shots", false, {"-1", "1025", k2p32, k2p62}},
      {eval, "queries", false, {"0", "-1", "17577", k2p32, k2p62}},
      {eval, "letters", false, {"0", "-1", "16777217", k2p32, k2p62}},
      {eval, "batch", false, {"0", "-1", "1048577", k2p32, k2p62}},
      {eval, "max-length", false, {"-1", "16777217", k2p32, k2p62}},
      {eval, "prefix-token", false, {"-2", "16777216", k2p32, k2p62}},
      {serve, "max-batch", false, {"0", "-1", "4097", k2p32, k2p62}},
      {serve, "max-context", false, {"1", "-1", "1073741825", k2p62}},
      {serve, "prefill-chunk", false, {"0", "1048577", k2p62}},
      {serve, "max-queue", false, {"0", "16777217", k2p62}},
      {serve, "prompt-cache-mb", false, {"-1", "16777217", k2p62}},
      {serve, "snapshot-interval", false, {"0", "1073741825", k2p62}},
      {serve, "port", false, {"-1", "65536", k2p32}},
      {serve, "max-body", false, {"1023", "4294967297", k2p62}},
      {serve, "threads", false, {"-1", "4097", k2p62}},
  };
}

TEST(ReliabilityFlags, EveryBadNumberIsOneLineNamingTheFlag) {
  int checked = 0;
  for (const FlagCase& c : flag_cases()) {
    std::vector<std::string> bad = c.out_of_range;
    const std::vector<std::string>& malformed = c.real ? kNotReals : kNotIntegers;
    bad.insert(bad.end(), malformed.begin(), malformed.end());
    for (const std::string& value : bad) {
      SCOPED_TRACE(c.command + " --" + c.flag + "=" + value);
      // "--flag=VALUE" keeps values that start with '-' (and empty ones) attached to the flag.
      expect_one_line_error(run_cli(c.command + " --" + c.flag + "=" + value), {"--" + c.flag});
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

// Products of values that are each in range: refused before anything is sized by them.
TEST(ReliabilityFlags, OverflowingProductsAreRefused) {
  expect_one_line_error(run_cli("bench --train --preset mamba2-tiny --seq-len 16777216 --micro-batch 16777216"),
                        {"--micro-batch", "tokens per step"});
  expect_one_line_error(run_cli("bench --preset mamba2-tiny --contexts 16384K --batches 16777216"), {"--batches", "tokens of a batch"});
  expect_one_line_error(run_cli("bench --preset mamba2-tiny --prompt-len 16777216 --gen-len 16777216"),
                        {"--prompt-len", "prompt + generated tokens"});
  expect_one_line_error(run_cli("eval --model " + kNoModel + " --task mqar --batch 1048576 --max-length 16777216"),
                        {"--batch", "tokens of a batch"});
}

// --gemm-algos takes timed, heuristic or an existing gemm_choices.txt; anything else is refused
// before any model or data is read.
TEST(ReliabilityFlags, GemmAlgosIsTimedHeuristicOrAFile) {
  expect_one_line_error(run_cli("bench --train --preset mamba2-tiny --gemm-algos fastest"), {"--gemm-algos", "fastest"});
  expect_one_line_error(run_cli("train --model " + kNoModel + " --data /nonexistent/d --out /nonexistent/r --gemm-algos /nonexistent/gemm_choices.txt"),
                        {"--gemm-algos", "gemm_choices.txt"});
}

// With a real model: a prompt plus --max-tokens past the longest sequence, and token ids in
// files (generate --tokens, grad --tokens) and on stdin (tokenize --decode) that are no ids.
TEST(ReliabilityFlags, TokenIdsAndSequenceLengthsWithAModel) {
  const std::string dir = temp_dir("rel-flags");
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --out " + dir + "/model").exit_code, 0);
  const std::string model = dir + "/model";
  expect_one_line_error(run_cli("generate --model " + model + " --prompt '1 2 3' --max-tokens 16777215"),
                        {"--max-tokens", "prompt + generated tokens"});
  for (const std::string& ids : std::vector<std::string>{"12abc", "-1", k2p32, k2p62, "1e3", "nan", "259"}) {
    SCOPED_TRACE(ids);
    write_file(dir + "/ids.txt", "5 " + ids + " 7\n");
    expect_one_line_error(run_cli("generate --model " + model + " --tokens " + dir + "/ids.txt"), {dir + "/ids.txt"});
    expect_one_line_error(run_cli("grad --model " + model + " --tokens " + dir + "/ids.txt --out " + dir + "/g.safetensors"),
                          {dir + "/ids.txt"});
    expect_one_line_error(run_command(std::string(MAMBALM_CLI) + " tokenize --tokenizer bytes --decode < " + dir + "/ids.txt"),
                          {"stdin", "not an id"});
  }
  EXPECT_FALSE(fs::exists(dir + "/g.safetensors"));
  fs::remove_all(dir);
}

}  // namespace
