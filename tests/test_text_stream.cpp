// TextStream, the streaming detokenizer of `mambalm generate`: ASCII comes out at once, a
// multi-byte character split across byte-level tokens is held back until its last byte, every
// piece is valid UTF-8, and the pieces put together are decode(all tokens).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "infer/text_stream.h"
#include "tokenizer/loaders.h"
#include "tokenizer/utf8.h"
#include "test_util.h"

namespace mambalm {
namespace {

// A stream over the bytes tokenizer: ids 0..255 are single bytes, so any character of more
// than one byte is split across tokens.
struct BytesStream {
  std::unique_ptr<Tokenizer> tok = make_bytes_tokenizer();
  TextStream stream{[this](const std::vector<int32_t>& ids) { return tok->decode(ids); }};
};

std::vector<int32_t> byte_ids(const std::string& s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

// Random valid UTF-8 mixing 1-, 2-, 3- and 4-byte characters (no surrogates).
std::string random_utf8(Rng& rng, int64_t chars) {
  std::string s;
  for (int64_t i = 0; i < chars; ++i) {
    uint32_t cp = 0;
    switch (rng.next_u64() % 4) {
      case 0: cp = 0x20 + static_cast<uint32_t>(rng.next_u64() % 0x5F); break;
      case 1: cp = 0x80 + static_cast<uint32_t>(rng.next_u64() % (0x800 - 0x80)); break;
      case 2: cp = 0xE000 + static_cast<uint32_t>(rng.next_u64() % (0x10000 - 0xE000)); break;
      default: cp = 0x10000 + static_cast<uint32_t>(rng.next_u64() % (0x110000 - 0x10000)); break;
    }
    utf8::append(s, cp);
  }
  return s;
}

TEST(TextStream, AsciiComesOutImmediately) {
  BytesStream b;
  for (char c : std::string("Hello, world!\n")) EXPECT_EQ(b.stream.push(static_cast<unsigned char>(c)), std::string(1, c));
  EXPECT_EQ(b.stream.finish(), "");
}

TEST(TextStream, SplitCharacterIsHeldBackUntilComplete) {
  BytesStream b;
  EXPECT_EQ(b.stream.push('a'), "a");
  EXPECT_EQ(b.stream.push(0xC3), "");  // first byte of "é" (C3 A9)
  EXPECT_EQ(b.stream.push(0xA9), "\xC3\xA9");
  const std::vector<int32_t> rocket = byte_ids("\U0001F680");  // four bytes
  ASSERT_EQ(rocket.size(), 4u);
  for (size_t i = 0; i + 1 < rocket.size(); ++i) EXPECT_EQ(b.stream.push(rocket[i]), "") << "byte " << i;
  EXPECT_EQ(b.stream.push(rocket.back()), "\U0001F680");
  EXPECT_EQ(b.stream.push('!'), "!");
  // A special token decodes to ASCII text and streams at once too.
  EXPECT_EQ(b.stream.push(b.tok->eos_id()), "<|endoftext|>");
}

TEST(TextStream, UnfinishedLastCharacterIsLeftToFinish) {
  BytesStream b;
  EXPECT_EQ(b.stream.push('x'), "x");
  EXPECT_EQ(b.stream.push(0xE2), "");  // "€" is E2 82 AC; the stream ends after two bytes
  EXPECT_EQ(b.stream.push(0x82), "");
  EXPECT_EQ(b.stream.finish(), "\xE2\x82");
  EXPECT_EQ(b.stream.finish(), "");
}

// Random text token by token: every piece is whole characters and the pieces add up to the text.
TEST(TextStream, RandomTextByteTokensConcatenateToDecode) {
  Rng rng(testing::test_seed());
  for (int trial = 0; trial < 20; ++trial) {
    BytesStream b;
    const std::string text = random_utf8(rng, 1 + static_cast<int64_t>(rng.next_u64() % 200));
    std::string out;
    for (int32_t id : byte_ids(text)) {
      const std::string piece = b.stream.push(id);
      EXPECT_EQ(utf8::find_invalid(piece), std::string::npos) << "seed " << testing::test_seed();
      out += piece;
      EXPECT_EQ(text.compare(0, out.size(), out), 0) << "pieces are a prefix of the text";
    }
    EXPECT_EQ(b.stream.finish(), "") << "the text ends on a character boundary";
    EXPECT_EQ(out, b.tok->decode(b.stream.tokens())) << "seed " << testing::test_seed();
    EXPECT_EQ(out, text);
  }
}

// Tokens that are arbitrary byte runs (as BPE merges make them): a token may end in the middle
// of a character and hold several characters; the same guarantees hold.
TEST(TextStream, RandomMultiByteTokensConcatenateToDecode) {
  Rng rng(testing::test_seed() + 1);
  for (int trial = 0; trial < 20; ++trial) {
    const std::string text = random_utf8(rng, 1 + static_cast<int64_t>(rng.next_u64() % 200));
    std::vector<std::string> vocab;  // token i = the i-th run of 1..7 bytes of the text
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min<size_t>(1 + rng.next_u64() % 7, text.size() - i);
      vocab.push_back(text.substr(i, n));
      i += n;
    }
    auto decode = [&](const std::vector<int32_t>& ids) {
      std::string s;
      for (int32_t id : ids) s += vocab[static_cast<size_t>(id)];
      return s;
    };
    TextStream stream(decode);
    std::string out;
    for (size_t id = 0; id < vocab.size(); ++id) {
      const std::string piece = stream.push(static_cast<int32_t>(id));
      EXPECT_EQ(utf8::find_invalid(piece), std::string::npos) << "seed " << testing::test_seed();
      out += piece;
    }
    EXPECT_EQ(stream.finish(), "") << "the text ends on a character boundary";
    EXPECT_EQ(out, decode(stream.tokens()));
    EXPECT_EQ(out, text) << "seed " << testing::test_seed();
  }
}

// Decodes bytes as SentencePiece's byte fallback does: every byte that is not part of a whole,
// valid character becomes U+FFFD. An unfinished character at the end therefore decodes to
// U+FFFDs that the next token turns back into the character.
std::string decode_replacing_invalid(const std::vector<int32_t>& ids) {
  std::string bytes;
  for (int32_t id : ids) bytes += static_cast<char>(id);
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const size_t bad = utf8::find_invalid(std::string_view(bytes).substr(i));
    const size_t good = bad == std::string::npos ? bytes.size() - i : bad;
    out += bytes.substr(i, good);
    i += good;
    if (i < bytes.size()) {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

TEST(TextStream, ReplacementCharacterOfAnUnfinishedByteFallbackIsHeldBack) {
  TextStream stream(decode_replacing_invalid);
  EXPECT_EQ(stream.push('f'), "f");
  EXPECT_EQ(stream.push(0xCA), "") << "decodes to \"f\\uFFFD\" until the next byte";
  EXPECT_EQ(stream.push(0xAC), "\u02AC");
  EXPECT_EQ(stream.push('i'), "i");
  EXPECT_EQ(stream.push(0xFF), "") << "a byte no token can complete is held back as well";
  EXPECT_EQ(stream.push('l'), "\uFFFDl");
  EXPECT_EQ(stream.push(0xE2), "");
  EXPECT_EQ(stream.finish(), "\uFFFD") << "what no token settled comes out at the end";
}

// Random text, valid and invalid bytes mixed, byte by byte through the replacing decoder: the
// pieces are valid UTF-8 and add up to the decode of all tokens.
TEST(TextStream, RandomBytesThroughAReplacingDecoderConcatenateToDecode) {
  Rng rng(testing::test_seed() + 2);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int32_t> ids = byte_ids(random_utf8(rng, 1 + static_cast<int64_t>(rng.next_u64() % 100)));
    for (int k = 0; k < 5; ++k)  // stray bytes: lone leads, continuations, 0xFF
      ids.insert(ids.begin() + static_cast<std::ptrdiff_t>(rng.next_u64() % (ids.size() + 1)),
                 static_cast<int32_t>(0x80 + rng.next_u64() % 0x80));
    TextStream stream(decode_replacing_invalid);
    std::string out;
    for (int32_t id : ids) {
      const std::string piece = stream.push(id);
      EXPECT_EQ(utf8::find_invalid(piece), std::string::npos) << "seed " << testing::test_seed();
      out += piece;
    }
    out += stream.finish();
    EXPECT_EQ(out, decode_replacing_invalid(ids)) << "seed " << testing::test_seed();
  }
}

}  // namespace
}  // namespace mambalm
