// Issue 20, point 2: bad files are refused, not half-loaded. Token ids of 2^32 - 1 and 2^32 in
// every tokenizer format, duplicate tiktoken ranks and tokens, truncated .tiktoken files,
// added tokens with bad ids, and weights holding NaN or infinity.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "test_reliability_util.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string base64(const std::string& in) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += abc[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    for (int s : {18, 12, 6}) out += abc[(v >> s) & 63];
    out += '=';
  }
  return out;
}

// An r50k_base-shaped rank file: the 256 bytes, then 50000 two-byte tokens (50256 ranks).
std::vector<std::string> r50k_lines() {
  std::vector<std::string> lines;
  for (int b = 0; b < 256; ++b) lines.push_back(base64(std::string(1, char(b))) + " " + std::to_string(b));
  for (int k = 0; k < 50000; ++k)
    lines.push_back(base64(std::string{char(k / 256), char(k % 256)}) + " " + std::to_string(256 + k));
  return lines;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += l + "\n";
  return s;
}

CommandResult tokenize_with(const std::string& path) { return run_cli("tokenize --tokenizer " + path); }

TEST(ReliabilityFiles, TiktokenRanksAreCheckedLineByLine) {
  const std::string dir = temp_dir("rel-tiktoken"), path = dir + "/r50k_base.tiktoken";
  const std::vector<std::string> good = r50k_lines();
  write_file(path, joined(good));
  ASSERT_EQ(tokenize_with(path).exit_code, 0) << tokenize_with(path).err;

  for (const char* rank : {"4294967295", "4294967296", "99999999999999999999999"}) {
    std::vector<std::string> bad = good;
    bad[300] = base64("zz!") + " " + rank;
    write_file(path, joined(bad));
    expect_one_line_error(tokenize_with(path), {path + ":301"});
  }
  std::vector<std::string> bad = good;
  bad[300] = base64("zz!") + " 299";  // a rank given twice
  write_file(path, joined(bad));
  expect_one_line_error(tokenize_with(path), {path + ":301", "appears twice"});
  bad = good;
  bad[300] = good[299].substr(0, good[299].find(' ')) + " 300";  // a token given twice
  write_file(path, joined(bad));
  expect_one_line_error(tokenize_with(path), {path + ":301", "same bytes"});
  bad = good;
  bad.back() = base64("zz!") + " 50256";  // r50k's <|endoftext|>
  write_file(path, joined(bad));
  expect_one_line_error(tokenize_with(path), {"special token"});

  // Truncated: mid-line ("12345" cut to "12" would load as a wrong rank), and at a line end.
  const std::string text = joined(good);
  write_file(path, text.substr(0, text.size() - 3));
  expect_one_line_error(tokenize_with(path), {"truncated"});
  write_file(path, text.substr(0, text.rfind('\n', text.size() - 2) + 1));
  expect_one_line_error(tokenize_with(path), {"50255 ranks", "truncated"});
  fs::remove_all(dir);
}

// GPT-2's byte -> printable code point mapping, as UTF-8.
std::string byte_level(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  int cp = b;
  if (!printable) {
    int extra = 0;
    for (int c = 0; c < b; ++c)
      if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) ++extra;
    cp = 256 + extra;
  }
  std::string out;
  if (cp < 0x80) {
    out += char(cp);
  } else {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  }
  return out;
}

json byte_vocab() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level(b)] = b;
  vocab[byte_level(' ') + "t"] = 256;
  return vocab;
}

json tokenizer_json() {
  return {{"version", "1.0"},
          {"added_tokens", json::array({{{"id", 257}, {"content", "<|endoftext|>"}, {"special", true}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", byte_vocab()}, {"merges", json::array({byte_level(' ') + " t"})}}}};
}

TEST(ReliabilityFiles, TokenizerJsonIdsAreRangeChecked) {
  const std::string dir = temp_dir("rel-hfjson"), path = dir + "/tokenizer.json";
  write_file(path, tokenizer_json().dump());
  ASSERT_EQ(tokenize_with(path).exit_code, 0) << tokenize_with(path).err;
  for (json id : {json(4294967295ull), json(4294967296ull), json(-1), json(18446744073709551615ull), json("7"), json(1.5)}) {
    json j = tokenizer_json();
    j["model"]["vocab"]["A"] = id;  // 'A' is byte 65
    write_file(path, j.dump());
    expect_one_line_error(tokenize_with(path), {path, "'A'"});
    j = tokenizer_json();
    j["added_tokens"][0]["id"] = id;
    write_file(path, j.dump());
    expect_one_line_error(tokenize_with(path), {path, "<|endoftext|>"});
  }
  json j = tokenizer_json();
  j["model"]["vocab"]["A"] = 66;  // the id of 'B' as well
  write_file(path, j.dump());
  expect_one_line_error(tokenize_with(path), {"appears twice"});
  j = tokenizer_json();
  j["added_tokens"][0].erase("id");
  write_file(path, j.dump());
  expect_one_line_error(tokenize_with(path), {"without id"});
  fs::remove_all(dir);
}

TEST(ReliabilityFiles, EncoderJsonIdsAreRangeChecked) {
  const std::string dir = temp_dir("rel-gpt2");
  json encoder = byte_vocab();
  encoder["<|endoftext|>"] = 257;
  write_file(dir + "/vocab.bpe", "#version: 0.2\n" + byte_level(' ') + " t\n");
  write_file(dir + "/encoder.json", encoder.dump());
  ASSERT_EQ(tokenize_with(dir + "/encoder.json").exit_code, 0) << tokenize_with(dir + "/encoder.json").err;
  for (json id : {json(4294967295ull), json(4294967296ull), json(-3)}) {
    for (const char* key : {"A", "<|endoftext|>"}) {
      json e = encoder;
      e[key] = id;
      write_file(dir + "/encoder.json", e.dump());
      expect_one_line_error(tokenize_with(dir + "/encoder.json"), {"encoder.json", key});
    }
  }
  fs::remove_all(dir);
}

// Overwrites element 0 of `tensor` in a safetensors file with `bytes` (its dtype's width).
void poison(const std::string& path, const std::string& tensor, const std::string& bytes) {
  std::string file = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const json header = json::parse(file.substr(8, n));
  const uint64_t begin = header.at(tensor).at("data_offsets")[0].get<uint64_t>();
  file.replace(8 + n + begin, bytes.size(), bytes);
  write_file(path, file);
}

std::string first_weight(const std::string& path) {
  const std::string file = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const json header = json::parse(file.substr(8, n));
  for (const auto& [name, v] : header.items())
    if (name != "__metadata__") return name;
  return "";
}

TEST(ReliabilityFiles, NonfiniteWeightsAreRefusedUnlessAllowed) {
  const std::string dir = temp_dir("rel-nan");
  write_file(dir + "/tokens.txt", "1 2 3 4");
  for (const std::string dtype : {"f32", "bf16"}) {
    ASSERT_EQ(run_cli("init --preset mamba2-tiny --dtype " + dtype + " --out " + dir + "/m").exit_code, 0);
    const std::string weights = dir + "/m/model.safetensors", name = first_weight(weights);
    const std::string forward = "forward --model " + dir + "/m --tokens " + dir + "/tokens.txt --logits " + dir + "/out.npy";
    ASSERT_EQ(run_cli(forward).exit_code, 0);
    fs::remove(dir + "/out.npy");
    const float nan = std::nanf("");
    const uint16_t bf16_inf = 0x7f80;
    std::string bytes(dtype == "f32" ? 4 : 2, '\0');
    if (dtype == "f32") std::memcpy(bytes.data(), &nan, 4);
    else std::memcpy(bytes.data(), &bf16_inf, 2);
    poison(weights, name, bytes);
    expect_one_line_error(run_cli(forward), {weights, name, "NaN or infinity", "--allow-nonfinite"});
    EXPECT_FALSE(fs::exists(dir + "/out.npy"));
    CommandResult r = run_cli(forward + " --allow-nonfinite");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
    fs::remove_all(dir + "/m");
    fs::remove(dir + "/out.npy");
  }
  fs::remove_all(dir);
}

// lm-eval sample logs (issue 20, point 3): a generate_until request's max_gen_toks sizes the
// sequence state and the decode loop, and a rolling document's recorded word/byte count divides
// its log-likelihood. Each is range-checked where it is read: a huge or negative value is one
// line naming the document, never a wrapped sum (UB), a run of 2^63 steps or a wrong perplexity.
json lm_eval_line(int64_t doc_id, const json& args, const std::vector<std::string>& metrics, const json& values) {
  json line = {{"doc_id", doc_id}, {"target", ""}, {"arguments", {{"gen_args_0", args}}}, {"filter", "none"}, {"metrics", metrics}};
  for (const auto& [k, v] : values.items()) line[k] = v;
  return line;
}

TEST(ReliabilityFiles, LmEvalSampleCountsAreRangeChecked) {
  const std::string dir = temp_dir("rel-lm-eval");
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --tokenizer bytes --out " + dir + "/m").exit_code, 0);
  const auto eval = [&](const json& line) {
    write_file(dir + "/samples_t_2024-01-01T00-00-00.jsonl", line.dump() + "\n");
    return run_cli("eval --model " + dir + "/m --lm-eval-samples " + dir + "/samples_t_2024-01-01T00-00-00.jsonl");
  };
  for (const json& bad : {json(9223372036854775807ull), json(18446744073709551615ull), json(16777217), json(0), json(-3)}) {
    SCOPED_TRACE(bad.dump());
    const json args = {{"arg_0", "Q: 1+1="}, {"arg_1", {{"until", {"\n"}}, {"max_gen_toks", bad}}}};
    expect_one_line_error(eval(lm_eval_line(0, args, {"exact_match"}, json::object())), {"max_gen_toks", ":1"});
  }
  for (const json& bad : {json(-5), json(int64_t{1} << 41), json(9223372036854775807ull), json(18446744073709551615ull)}) {
    SCOPED_TRACE(bad.dump());
    const json rolling = lm_eval_line(0, {{"arg_0", "one two three"}}, {"word_perplexity", "byte_perplexity"},
                                      {{"word_perplexity", {-1.5, bad}}, {"byte_perplexity", {-1.5, 13}}});
    expect_one_line_error(eval(rolling), {"word_perplexity", "doc_id 0"});
  }
  // The same file with plausible numbers is scored.
  const json good = lm_eval_line(0, {{"arg_0", "one two three"}}, {"word_perplexity", "byte_perplexity"},
                                 {{"word_perplexity", {-1.5, 3}}, {"byte_perplexity", {-1.5, 13}}});
  EXPECT_EQ(eval(good).exit_code, 0);
  fs::remove_all(dir);
}

}  // namespace
