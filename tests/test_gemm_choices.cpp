// RUN/gemm_choices.txt (train/gemm_choices.h): the text a CUDA training run saves its GEMM
// algorithms in and a resume pins. The format is the CPU's, so it is tested here: a round trip
// of random words, and every kind of damage refused with the line it is on.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/hex.h"
#include "test_util.h"
#include "train/gemm_choices.h"

using namespace mambalm;
namespace fs = std::filesystem;

namespace {

ops::GemmChoices random_choices(std::mt19937_64& rng, int shapes) {
  ops::GemmChoices c;
  c.device = "device NVIDIA_H200 cublasLt 130100";
  for (int s = 0; s < shapes; ++s) {
    ops::GemmChoice g;
    for (uint64_t& w : g.algo) w = rng();
    g.of = 1 + int(rng() % 8);
    g.rank = int(rng() % uint64_t(g.of));
    c.by_shape["f," + std::to_string(rng() % 100000) + ",2048,6144,0"] = g;
  }
  return c;
}

// The parse's complaint about `text`, which must be refused.
std::string refusal(const std::string& text) {
  ops::GemmChoices out;
  const std::string why = parse_gemm_choices(text, out);
  EXPECT_FALSE(why.empty()) << text;
  return why;
}

}  // namespace

TEST(Hex16, RoundTripsAndRefusesAnythingButSixteenDigits) {
  std::mt19937_64 rng(std::random_device{}());
  for (int i = 0; i < 1000; ++i) {
    const uint64_t v = rng();
    const std::string h = hex16(v);
    ASSERT_EQ(h.size(), 16u);
    uint64_t back = 0;
    ASSERT_TRUE(parse_hex16(h, back)) << h;
    EXPECT_EQ(back, v);
  }
  EXPECT_EQ(hex16(0x0123456789abcdefULL), "0123456789abcdef");
  uint64_t v = 7;
  EXPECT_TRUE(parse_hex16("FFFFFFFFFFFFFFFF", v));
  EXPECT_EQ(v, ~0ULL);
  for (const char* bad : {"", "123", "0123456789abcdef0", "-123456789abcdef", " 123456789abcdef", "0123456789abcdeg",
                          "0x23456789abcdef"}) {
    uint64_t untouched = 42;
    EXPECT_FALSE(parse_hex16(bad, untouched)) << bad;
    EXPECT_EQ(untouched, 42u);
  }
}

TEST(GemmChoicesFile, RoundTripsEveryWord) {
  std::mt19937_64 rng(std::random_device{}());
  const ops::GemmChoices in = random_choices(rng, 40);
  const std::string text = format_gemm_choices(in);
  ops::GemmChoices out;
  ASSERT_EQ(parse_gemm_choices(text, out), "");
  EXPECT_EQ(out.device, in.device);
  ASSERT_EQ(out.by_shape.size(), in.by_shape.size());
  for (const auto& [key, c] : in.by_shape) {
    const auto it = out.by_shape.find(key);
    ASSERT_NE(it, out.by_shape.end()) << key;
    EXPECT_EQ(it->second.algo, c.algo) << key;
    EXPECT_EQ(it->second.rank, c.rank) << key;
    EXPECT_EQ(it->second.of, c.of) << key;
  }
  EXPECT_EQ(format_gemm_choices(out), text);
  EXPECT_EQ(format_gemm_choices(ops::GemmChoices{}), "");  // the CPU's: nothing is written
}

TEST(GemmChoicesFile, RefusesDamageNamingTheLine) {
  std::mt19937_64 rng(std::random_device{}());
  const std::string good = format_gemm_choices(random_choices(rng, 3));
  const size_t line3 = good.find('\n', good.find('\n') + 1) + 1;  // the first shape's line
  const size_t line3_end = good.find('\n', line3);
  const std::string shape_line = good.substr(line3, line3_end - line3);
  const std::string head = good.substr(0, line3), tail = good.substr(line3_end);
  const auto with_line = [&](const std::string& line) { return head + line + tail; };

  EXPECT_NE(refusal("").find("not a GEMM choices file"), std::string::npos);
  EXPECT_NE(refusal("mambalm gemm choices 2\n" + good.substr(good.find('\n') + 1)).find("not a GEMM choices file"),
            std::string::npos);
  EXPECT_NE(refusal("mambalm gemm choices 1\n").find("device line"), std::string::npos);
  EXPECT_NE(refusal("mambalm gemm choices 1\nNVIDIA_H200\n").find("device line"), std::string::npos);

  const size_t s1 = shape_line.find(' '), s2 = shape_line.rfind(' ');
  const std::string key = shape_line.substr(0, s1), hex = shape_line.substr(s1 + 1, s2 - s1 - 1);
  const std::vector<std::string> damaged = {
      "",                                              // an empty line
      key,                                             // no algorithm
      key + " " + hex,                                 // no rank
      key + " " + hex.substr(1) + " 0/8",              // 127 digits
      key + " " + hex + "0 0/8",                       // 129 digits
      key + " " + hex.substr(0, 40) + "x" + hex.substr(41) + " 0/8",  // not a digit
      key + " -" + hex.substr(1) + " 0/8",             // a sign
      key + " " + hex + " 8/8",                        // the rank past the list
      key + " " + hex + " 0/0",                        // an empty list
      key + " " + hex + " -1/8",
      key + " " + hex + " 0/8 extra",
      key + "  " + hex + " 0/8",                       // two spaces
      " " + hex + " 0/8",                              // no key
      key + " " + hex + " 08",
  };
  for (const std::string& line : damaged) {
    const std::string why = refusal(with_line(line));
    EXPECT_NE(why.find("line 3"), std::string::npos) << line << " -> " << why;
  }
  // The same shape twice: the second would silently win.
  EXPECT_NE(refusal(good + shape_line + "\n").find("repeats the shape " + key), std::string::npos);

  // A refused parse leaves the output untouched.
  ops::GemmChoices out;
  out.device = "kept";
  EXPECT_NE(parse_gemm_choices(with_line(key), out), "");
  EXPECT_EQ(out.device, "kept");
}

// --gemm-algos FILE: a malformed file is refused with its path on every device; on the CPU a
// good one is accepted and has nothing to pin.
TEST(GemmChoicesFile, TrainingRefusesAMalformedFileWithItsPath) {
  const std::string dir = mambalm::testing::temp_dir("gemm-choices");
  std::mt19937_64 rng(std::random_device{}());
  const std::string good = dir + "/good.txt", bad = dir + "/bad.txt";
  mambalm::testing::write_file(good, format_gemm_choices(random_choices(rng, 2)));
  mambalm::testing::write_file(bad, "mambalm gemm choices 1\ndevice X cublasLt 1\nf,1,2,3,0 00 0/1\n");
  EXPECT_NO_THROW(pin_gemm_choices_file(good, false));
  try {
    pin_gemm_choices_file(bad, false);
    ADD_FAILURE() << "a malformed file was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(bad), std::string::npos) << m;
    EXPECT_NE(m.find("line 3"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  fs::remove_all(dir);
}
