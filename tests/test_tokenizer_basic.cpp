// Tokenizers without the npm references: bytes, SentencePiece (a tiny model trained here by the
// library's own trainer, compared with the library's own encoder), UTF-8 validation, bad files,
// and the `mambalm tokenize` command.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "core/error.h"
#include "tokenizer/loaders.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace mambalm {
namespace {

using testing::hard_strings;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const char* const kEnglish =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
    "of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season "
    "of Light, it was the season of Darkness, it was the spring of hope, it was the winter of "
    "despair, we had everything before us, we had nothing before us, we were all going direct to "
    "Heaven, we were all going direct the other way.\n"
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in "
    "my purse, and nothing particular to interest me on shore, I thought I would sail about a "
    "little and see the watery part of the world.\n";

std::string train_sentencepiece(const std::string& type) {
  const std::string dir = testing::temp_dir("spm-" + type);
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 20; ++i) corpus << kEnglish;
    for (const std::string& s : hard_strings())
      if (s.find('\n') == std::string::npos && !s.empty() && s.size() < 1000) corpus << s << "\n";
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir + "/corpus.txt --model_prefix=" + dir + "/m --vocab_size=600 --model_type=" + type +
      " --character_coverage=0.9995 --byte_fallback=true --normalization_rule_name=identity"
      " --remove_extra_whitespaces=false --split_digits=true --hard_vocab_limit=false"
      " --pad_id=3 --minloglevel=2");
  if (!status.ok()) throw std::runtime_error("sentencepiece training failed: " + status.ToString());
  return dir + "/m.model";
}

class SentencePieceParity : public ::testing::TestWithParam<std::string> {};

TEST_P(SentencePieceParity, MatchesLibraryEncoderAndRoundTrips) {
  const std::string model = train_sentencepiece(GetParam());
  auto tok = open_tokenizer(model);
  sentencepiece::SentencePieceProcessor ref;
  ASSERT_TRUE(ref.Load(model).ok());
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), ref.GetPieceSize());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), 3);
  size_t strings = 0;
  std::vector<std::string> texts = hard_strings();
  texts.push_back(kEnglish);
  for (const std::string& text : texts) {
    std::vector<int> expected;
    ASSERT_TRUE(ref.Encode(text, &expected).ok());
    const auto ids = tok->encode(text, false);
    EXPECT_EQ(ids, std::vector<int32_t>(expected.begin(), expected.end())) << text;
    // Identity normalization + byte fallback: decoding gives the text back, except that
    // SentencePiece drops the dummy-prefix space it adds at the start.
    std::string back = tok->decode(ids);
    EXPECT_EQ(back, text) << text;
    ++strings;
  }
  EXPECT_GT(strings, 40u);
  // Control tokens are matched in text only when asked.
  const auto plain = tok->encode("a</s>b", false);
  const auto special = tok->encode("a</s>b", true);
  EXPECT_EQ(std::count(special.begin(), special.end(), 2), 1);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(tok->decode({2}), "</s>");
}

INSTANTIATE_TEST_SUITE_P(Types, SentencePieceParity, ::testing::Values("bpe", "unigram"));

TEST(BytesTokenizer, EncodesBytesAndSpecials) {
  auto tok = open_tokenizer("bytes");
  EXPECT_EQ(tok->vocab_size(), 259);
  EXPECT_EQ(tok->encode("A\xc3\xa9"), (std::vector<int32_t>{65, 0xC3, 0xA9}));
  EXPECT_EQ(tok->encode("a<|endoftext|>", true), (std::vector<int32_t>{97, tok->eos_id()}));
  EXPECT_EQ(tok->encode("<|endoftext|>", false).size(), 13u);
  for (const std::string& s : hard_strings()) EXPECT_EQ(tok->decode(tok->encode(s, true)), s);
  EXPECT_NE(error_of([&] { tok->decode({259}); }).find("259"), std::string::npos);
}

// A model's embedding may be padded past the tokenizer (vocab 50280 -> 50288); generated ids
// from the padding decode to nothing, while decode() itself refuses them.
TEST(BytesTokenizer, GeneratedPaddingIdsDecodeToNothing) {
  auto tok = open_tokenizer("bytes");
  EXPECT_EQ(decode_generated(*tok, {'a', 259, 300, 'b', 0xC3, 0xA9}), "ab\xC3\xA9");
  EXPECT_EQ(decode_generated(*tok, {260}), "");
  EXPECT_NE(error_of([&] { tok->decode({'a', 260}); }).find("260"), std::string::npos);
}

TEST(Utf8, InvalidInputNamesTheByteOffset) {
  EXPECT_EQ(utf8::find_invalid("plain ascii"), std::string_view::npos);
  EXPECT_EQ(utf8::find_invalid("ok \xe2\x82\xac"), std::string_view::npos);
  EXPECT_EQ(utf8::find_invalid("abc\xff"), 3u);
  EXPECT_EQ(utf8::find_invalid("abcdefghij\xc0\xaf"), 10u);      // overlong '/'
  EXPECT_EQ(utf8::find_invalid("x\xed\xa0\x80"), 1u);            // surrogate
  EXPECT_EQ(utf8::find_invalid("xy\xe2\x82"), 2u);               // truncated
  EXPECT_EQ(utf8::find_invalid("\xf4\x90\x80\x80"), 0u);         // > U+10FFFF
  auto tok = open_tokenizer("bytes");
  const std::string msg = error_of([&] { tok->encode("hello \x80 world"); });
  EXPECT_NE(msg.find("invalid UTF-8 at byte 6"), std::string::npos) << msg;
}

TEST(TokenizerFiles, MissingAndCorruptFilesNameThePath) {
  const std::string dir = testing::temp_dir("badtok");
  std::string msg = error_of([&] { open_tokenizer(dir + "/nope.tiktoken"); });
  EXPECT_NE(msg.find(dir + "/nope.tiktoken"), std::string::npos) << msg;
  msg = error_of([&] { open_tokenizer(dir); });
  EXPECT_NE(msg.find("no tokenizer found"), std::string::npos) << msg;

  std::ofstream(dir + "/cl100k_base.tiktoken") << "IQ== 0\nnot base64!! x\n";
  msg = error_of([&] { open_tokenizer(dir + "/cl100k_base.tiktoken"); });
  EXPECT_NE(msg.find(dir + "/cl100k_base.tiktoken:2"), std::string::npos) << msg;
  std::ofstream(dir + "/mystery.tiktoken") << "IQ== 0\n";
  msg = error_of([&] { open_tokenizer(dir + "/mystery.tiktoken"); });
  EXPECT_NE(msg.find("unknown tiktoken encoding"), std::string::npos) << msg;

  std::ofstream(dir + "/tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": ";
  msg = error_of([&] { open_tokenizer(dir + "/tokenizer.json"); });
  EXPECT_NE(msg.find(dir + "/tokenizer.json: not valid JSON"), std::string::npos) << msg;
  std::ofstream(dir + "/wp.json") << R"({"model": {"type": "WordPiece", "vocab": {}}})";
  msg = error_of([&] { open_tokenizer(dir + "/wp.json"); });
  EXPECT_NE(msg.find("WordPiece"), std::string::npos) << msg;

  std::ofstream(dir + "/bad.model") << "this is not a protobuf";
  msg = error_of([&] { open_tokenizer(dir + "/bad.model"); });
  EXPECT_NE(msg.find(dir + "/bad.model"), std::string::npos) << msg;
  std::ofstream(dir + "/empty.model");
  msg = error_of([&] { open_tokenizer(dir + "/empty.model"); });
  EXPECT_NE(msg.find("is empty"), std::string::npos) << msg;
  std::filesystem::remove_all(dir);
}

// A minimal tokenizer.json exercising the parts real files use: a Split regex with look-ahead,
// ByteLevel without regex, "a b" and ["a","b"] merges, added tokens, NFC handling.
TEST(HfBpeTokenizer, MergeFormatsAddedTokensAndNormalizers) {
  const std::string dir = testing::temp_dir("hfbpe");
  nlohmann::json vocab = nlohmann::json::object();
  // Byte-level alphabet: GPT-2's printable bytes map to themselves, space to U+0120 'Ġ'.
  std::string bytes_json;
  int id = 0;
  auto cp_utf8 = [](uint32_t cp) { std::string s; utf8::append(s, cp); return s; };
  for (int b = 0, extra = 0; b < 256; ++b) {  // id of byte b is b
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    vocab[cp_utf8(printable ? b : 256 + extra++)] = id++;
  }
  vocab["ab"] = id++;
  vocab["abc"] = id++;
  vocab[cp_utf8(0x120) + "a"] = id++;
  for (bool array_merges : {false, true}) {
    nlohmann::json merges = array_merges
        ? nlohmann::json::parse(R"([["a","b"],["ab","c"],["Ġ","a"]])")
        : nlohmann::json::parse(R"(["a b", "ab c", "Ġ a"])");
    nlohmann::json doc = {
        {"added_tokens", {{{"id", id}, {"content", "<eos>"}, {"special", true}},
                          {{"id", id + 1}, {"content", "[[x]]"}, {"special", false}}}},
        {"normalizer", nullptr},
        {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers",
            {{{"type", "Split"}, {"pattern", {{"Regex", R"( ?\p{L}+|\s+(?!\S)|\s+)"}}}, {"behavior", "Isolated"}, {"invert", false}},
             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
    std::ofstream(dir + "/tokenizer.json") << doc.dump();
    auto tok = open_tokenizer(dir);
    EXPECT_EQ(tok->kind(), "hf-bpe");
    EXPECT_EQ(tok->vocab_size(), id + 2);
    EXPECT_EQ(tok->eos_id(), id);
    const int32_t ab = 256, abc = 257, sp_a = 258;
    // "a b" (rank 0) beats "Ġ a" (rank 2), so " abd" ends as Ġ ab d.
    EXPECT_EQ(tok->encode("abc abd"), (std::vector<int32_t>{abc, ' ', ab, 'd'}));
    EXPECT_EQ(tok->encode(" a a"), (std::vector<int32_t>{sp_a, sp_a}));
    EXPECT_EQ(tok->encode("abab<eos>", true), (std::vector<int32_t>{ab, ab, id}));
    EXPECT_EQ(tok->encode("ab[[x]]", false), (std::vector<int32_t>{ab, id + 1}));  // non-special: always
    EXPECT_GT(tok->encode("abab<eos>", false).size(), 3u);
    EXPECT_EQ(tok->decode(tok->encode("abc  ab\t<eos>\n", true)), "abc  ab\t<eos>\n");
    doc["normalizer"] = {{"type", "NFC"}};
    std::ofstream(dir + "/tokenizer.json") << doc.dump();
    tok = open_tokenizer(dir + "/tokenizer.json");
    EXPECT_EQ(tok->encode("abc"), (std::vector<int32_t>{abc}));
    // e + COMBINING ACUTE composes to U+00E9 (bytes C3 A9), each a byte token (id = byte).
    EXPECT_EQ(tok->encode("e\xcc\x81"), (std::vector<int32_t>{0xC3, 0xA9}));
    doc["normalizer"] = {{"type", "Lowercase"}};
    std::ofstream(dir + "/tokenizer.json") << doc.dump();
    EXPECT_NE(error_of([&] { open_tokenizer(dir); }).find("Lowercase"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

TEST(TokenizeCommand, EncodesAndDecodesThroughStdio) {
  const std::string dir = testing::temp_dir("tokcli");
  const std::string cli = MAMBALM_CLI;
  std::ofstream(dir + "/in.txt") << "hi<|endoftext|>";
  EXPECT_EQ(sh(cli + " tokenize --tokenizer bytes --special < " + dir + "/in.txt"), "104 105 256\n");
  EXPECT_EQ(sh(cli + " tokenize --tokenizer bytes < " + dir + "/in.txt").substr(0, 11), "104 105 60 ");
  std::ofstream(dir + "/ids.txt") << "104 105\n256\n";
  EXPECT_EQ(sh(cli + " tokenize --tokenizer bytes --decode < " + dir + "/ids.txt"), "hi<|endoftext|>");
  std::ofstream(dir + "/bad.txt") << "ok \xff";
  const std::string err = sh(cli + " tokenize --tokenizer bytes < " + dir + "/bad.txt 2>&1; echo rc=$?");
  EXPECT_NE(err.find("invalid UTF-8 at byte 3"), std::string::npos) << err;
  EXPECT_NE(err.find("rc=1"), std::string::npos) << err;
  const std::string bad_id = sh("echo '1 x 2' | " + cli + " tokenize --tokenizer bytes --decode 2>&1");
  EXPECT_NE(bad_id.find("'x'"), std::string::npos) << bad_id;
  const std::string missing = sh(cli + " tokenize --tokenizer " + dir + "/none.model </dev/null 2>&1");
  EXPECT_NE(missing.find(dir + "/none.model"), std::string::npos) << missing;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mambalm
