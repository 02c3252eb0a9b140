// `mambalm generate`'s controls end to end on a tiny hybrid with the byte tokenizer (one token
// per byte, so every stop string of two bytes or more spans tokens): stop strings, penalties,
// min-p, --logprobs, --prompts-file, --interactive and the timing summary.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

using namespace mambalm::testing;
using nlohmann::json;

namespace {

std::string g_dir, g_model;

class GenerateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_dir = temp_dir("generate-cli");
    g_model = g_dir + "/m";
    const CommandResult r = run_cli("init --preset hybrid-tiny --tokenizer bytes --seed 3 --out " + g_model);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static CommandResult gen(const std::string& options) {
    return run_cli("generate --model " + g_model + " --no-timing " + options);
  }
  static void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }
  static std::vector<json> json_lines(const std::string& out) {
    std::vector<json> lines;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }
  static std::vector<int> ids(const std::string& out) {
    std::istringstream in(out);
    std::vector<int> v;
    for (int id; in >> id;) v.push_back(id);
    return v;
  }
};

TEST_F(GenerateCli, StopStringSpanningTokensEndsTheTextUnprinted) {
  CommandResult free = gen("--prompt ab --max-tokens 24 --ignore-eos");
  ASSERT_EQ(free.exit_code, 0) << free.err;
  ASSERT_FALSE(free.out.empty());
  const std::string text = free.out.substr(0, free.out.size() - 1);  // the final newline
  // Two bytes from the middle of the text: two tokens of the byte tokenizer.
  size_t at = 3;
  while (at + 1 < text.size() && (text[at] == '\0' || text[at + 1] == '\0' || text[at + 1] == '\n')) ++at;
  ASSERT_LT(at + 1, text.size()) << "no usable stop string in the generated text";
  const std::string stop = text.substr(at, 2);
  write(g_dir + "/stop", stop);
  const size_t first = text.find(stop);
  CommandResult r = gen("--prompt ab --max-tokens 24 --ignore-eos --stop \"$(cat " + g_dir + "/stop)\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, text.substr(0, first) + "\n");
  // The generation itself ended at the token that completed the stop string.
  r = gen("--prompt ab --max-tokens 24 --ignore-eos --json --stop \"$(cat " + g_dir + "/stop)\" --stop zzzz");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["tokens"].size(), first + 2);
  // Without a tokenizer's text there is nothing to match.
  r = gen("--prompt ab --ids --stop x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--stop"), std::string::npos) << r.err;
}

TEST_F(GenerateCli, PresenceAndFrequencyPenaltiesForbidRepeats) {
  // A random tiny model repeats itself greedily; a penalty far above its logits' spread forbids it.
  const CommandResult plain = gen("--prompt ab --max-tokens 40 --ignore-eos --ids");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const std::vector<int> base = ids(plain.out);
  ASSERT_EQ(base.size(), 40u);
  EXPECT_LT(std::set<int>(base.begin(), base.end()).size(), base.size()) << "the plain greedy output already never repeats";
  for (const char* penalty : {"--presence-penalty 100", "--frequency-penalty 100", "--repeat-penalty 1e6 --repeat-last-n -1"}) {
    const CommandResult r = gen(std::string("--prompt ab --max-tokens 40 --ignore-eos --ids ") + penalty);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::vector<int> got = ids(r.out);
    ASSERT_EQ(got.size(), 40u) << penalty;
    EXPECT_EQ(std::set<int>(got.begin(), got.end()).size(), got.size()) << penalty << ": " << r.out;
  }
  EXPECT_NE(gen("--prompt ab --repeat-penalty 0").exit_code, 0);
  EXPECT_NE(gen("--prompt ab --repeat-last-n -2").exit_code, 0);
}

TEST_F(GenerateCli, MinPOfOneIsGreedy) {
  const CommandResult greedy = gen("--prompt ab --max-tokens 12 --ignore-eos --ids");
  const CommandResult min_p = gen("--prompt ab --max-tokens 12 --ignore-eos --ids --temperature 1.5 --seed 9 --min-p 1");
  const CommandResult sampled = gen("--prompt ab --max-tokens 12 --ignore-eos --ids --temperature 1.5 --seed 9");
  ASSERT_EQ(min_p.exit_code, 0) << min_p.err;
  EXPECT_EQ(min_p.out, greedy.out);
  EXPECT_NE(sampled.out, greedy.out);  // the sampler does sample at this temperature
  EXPECT_NE(gen("--prompt ab --min-p 1.5").exit_code, 0);
}

TEST_F(GenerateCli, LogprobsReadableAndJson) {
  CommandResult r = gen("--prompt ab --max-tokens 6 --ignore-eos --json --logprobs 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["logprobs"].size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    const json& t = j["logprobs"][i];
    EXPECT_EQ(t["token"], j["tokens"][i]);
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    const double best = t["top_logprobs"][0]["logprob"].get<double>();
    EXPECT_GE(best, t["logprob"].get<double>());  // greedy over the tokenizer's ids; the top is over all
    EXPECT_GE(best, t["top_logprobs"][2]["logprob"].get<double>());
    EXPECT_TRUE(t.contains("text"));
  }
  r = gen("--prompt ab --max-tokens 4 --ignore-eos --ids --logprobs 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("logprobs: token, log p, then the 2 most likely tokens\n0\t"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n3\t"), std::string::npos) << r.out;
  EXPECT_NE(gen("--prompt ab --logprobs 101").exit_code, 0);
}

TEST_F(GenerateCli, PromptsFileOnePerLineInOrder) {
  write(g_dir + "/prompts.txt", "ab\n\ncd\r\n\n");
  CommandResult r = gen("--prompts-file " + g_dir + "/prompts.txt --max-tokens 5 --ignore-eos --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["prompt"], "ab");
  EXPECT_EQ(lines[1]["prompt"], "cd");
  // Each line generates as it would alone.
  const json alone = json::parse(gen("--prompt cd --max-tokens 5 --ignore-eos --json").out);
  EXPECT_EQ(lines[1]["tokens"], alone["tokens"]);
  r = gen("--prompts-file " + g_dir + "/prompts.txt --max-tokens 3 --ignore-eos --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("==> prompt 1 of 2 <==\n"), 0u) << r.out;
  EXPECT_NE(r.out.find("\n\n==> prompt 2 of 2 <==\n"), std::string::npos) << r.out;
}

TEST_F(GenerateCli, BadPromptsFileIsAOneLineError) {
  write(g_dir + "/bad.txt", "fine\nbad \xff\xfe here\n");
  CommandResult r = gen("--prompts-file " + g_dir + "/bad.txt");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(g_dir + "/bad.txt: invalid UTF-8 at byte 9 (line 2)"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  write(g_dir + "/empty.txt", "\n\r\n");
  r = gen("--prompts-file " + g_dir + "/empty.txt");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no prompts"), std::string::npos) << r.err;
  r = gen("--prompts-file " + g_dir + "/missing.txt");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(gen("--prompts-file " + g_dir + "/prompts.txt --prompt ab").exit_code, 0);
}

TEST_F(GenerateCli, InteractiveChatKeepsTheConversation) {
  const std::string cli = std::string(MAMBALM_CLI) + " generate --model " + g_model + " --no-timing --max-tokens 4 --ignore-eos";
  CommandResult r = run_command("printf 'Hi\\n\\nHow are you\\n/exit\\nignored\\n' | " + cli + " --interactive --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> turns = json_lines(r.out);
  ASSERT_EQ(turns.size(), 2u) << r.out;  // the empty line is skipped; /exit ends before "ignored"
  EXPECT_EQ(turns[0]["prompt"], "Hi");
  EXPECT_EQ(turns[1]["prompt"], "How are you");
  // Turn 2's prompt is the whole conversation: the first turn and its answer come before it.
  const int64_t first = turns[0]["prompt_tokens"].get<int64_t>();
  EXPECT_GT(turns[1]["prompt_tokens"].get<int64_t>(), first + static_cast<int64_t>(std::string("How are you").size()));
  // The first turn is --chat --prompt's generation.
  const json chat = json::parse(gen("--chat --prompt Hi --max-tokens 4 --ignore-eos --json").out);
  EXPECT_EQ(turns[0]["tokens"], chat["tokens"]);
  EXPECT_EQ(turns[0]["prompt_tokens"], chat["prompt_tokens"]);
  // EOF ends it too; plain text mode prints each answer on its own line.
  r = run_command("printf 'Hi\\n' | " + cli + " --interactive --system 'Be brief.'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
}

TEST_F(GenerateCli, TimingSummaryOnStderrUnlessNoTiming) {
  CommandResult r = run_cli("generate --model " + g_model + " --prompt abc --max-tokens 5 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("timing: prompt      3 tokens in "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("timing: generation  5 tokens, 4 decode steps in "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("timing: first token "), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("timing"), std::string::npos);
  r = gen("--prompt abc --max-tokens 5 --ignore-eos");
  EXPECT_EQ(r.err, "");
}

}  // namespace
