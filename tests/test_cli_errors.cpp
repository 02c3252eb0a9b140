// Bad input through the CLI, as a user meets it: each case must end with exactly one line on
// stderr that names the file and the field, exit code 1, and no crash (ASan/UBSan builds too).
#include <gtest/gtest.h>

#include <algorithm>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// A copy of a parity fixture that a test may damage.
std::string fixture_copy(const std::string& name = "nemotron_h") {
  std::string src = source_dir() + "/tests/golden/fixtures/" + name;
  std::string dst = temp_dir("bad-" + name);
  for (const char* f : {"config.json", "model.safetensors", "tokens.txt"}) fs::copy_file(src + "/" + f, dst + "/" + f);
  return dst;
}

// The safetensors header as JSON, and a way to write the file back with an edited header.
nlohmann::json read_header(const std::string& path, std::string* data) {
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  *data = bytes.substr(8 + n);
  return nlohmann::json::parse(bytes.substr(8, n));
}

void write_with_header(const std::string& path, const nlohmann::json& header, const std::string& data) {
  std::string h = header.dump();
  uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  write_bytes(path, out + h + data);
}

std::string first_tensor(const nlohmann::json& header) {
  for (auto& [name, v] : header.items())
    if (name != "__metadata__") return name;
  return "";
}

// Runs `forward` on the directory and checks the one-line error contains every `needles`.
void expect_forward_error(const std::string& dir, std::vector<std::string> needles) {
  CommandResult r = run_cli("forward --model " + dir + " --tokens " + dir + "/tokens.txt --logits " + dir + "/out.npy");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("mambalm: error: ", 0), 0u) << r.err;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
  EXPECT_FALSE(fs::exists(dir + "/out.npy"));
}

TEST(CliErrors, TruncatedSafetensors) {
  std::string dir = fixture_copy();
  std::string bytes = read_bytes(dir + "/model.safetensors");
  write_bytes(dir + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_forward_error(dir, {"model.safetensors", "data_offsets"});
  write_bytes(dir + "/model.safetensors", bytes.substr(0, 5));
  expect_forward_error(dir, {"model.safetensors"});
}

TEST(CliErrors, HeaderLengthPastEndOfFile) {
  std::string dir = fixture_copy();
  std::string bytes = read_bytes(dir + "/model.safetensors");
  uint64_t huge = bytes.size() * 3;
  std::memcpy(bytes.data(), &huge, 8);
  write_bytes(dir + "/model.safetensors", bytes);
  expect_forward_error(dir, {"model.safetensors", "header"});
}

TEST(CliErrors, OffsetsOutOfRangeAndOverlapping) {
  std::string dir = fixture_copy();
  std::string path = dir + "/model.safetensors", data;
  nlohmann::json h = read_header(path, &data);
  std::string name = first_tensor(h);
  nlohmann::json bad = h;
  auto& off = bad[name]["data_offsets"];
  uint64_t len = off[1].get<uint64_t>() - off[0].get<uint64_t>();
  off = {data.size(), data.size() + len};
  write_with_header(path, bad, data);
  expect_forward_error(dir, {"model.safetensors", name, "data_offsets"});

  // Two tensors of the same size pointed at the same bytes.
  nlohmann::json overlap = h;
  std::string other;
  for (auto& [n, v] : h.items())
    if (n != "__metadata__" && n != name && v["data_offsets"][1].get<uint64_t>() - v["data_offsets"][0].get<uint64_t>() == len) other = n;
  ASSERT_FALSE(other.empty());
  overlap[other]["data_offsets"] = h[name]["data_offsets"];
  write_with_header(path, overlap, data);
  expect_forward_error(dir, {"model.safetensors", "overlap"});
}

TEST(CliErrors, UnknownDtype) {
  std::string dir = fixture_copy();
  std::string path = dir + "/model.safetensors", data;
  nlohmann::json h = read_header(path, &data);
  std::string name = first_tensor(h);
  h[name]["dtype"] = "F8_E4M3";
  write_with_header(path, h, data);
  expect_forward_error(dir, {"model.safetensors", name, "F8_E4M3"});
}

TEST(CliErrors, TensorShapeDisagreesWithConfig) {
  std::string dir = fixture_copy();
  nlohmann::json cfg = nlohmann::json::parse(read_bytes(dir + "/config.json"));
  cfg["intermediate_size"] = cfg["intermediate_size"].get<int>() + 2;
  write_bytes(dir + "/config.json", cfg.dump());
  expect_forward_error(dir, {"model.safetensors", "up_proj.weight", "config.json"});
}

TEST(CliErrors, UnknownModelTypeAndInvalidPattern) {
  std::string dir = fixture_copy();
  nlohmann::json cfg = nlohmann::json::parse(read_bytes(dir + "/config.json"));
  nlohmann::json unknown = cfg;
  unknown["model_type"] = "bert";
  write_bytes(dir + "/config.json", unknown.dump());
  expect_forward_error(dir, {"config.json", "model_type", "bert"});

  nlohmann::json bad_pattern = cfg;
  bad_pattern.erase("layers_block_type");
  bad_pattern["hybrid_override_pattern"] = "M-*Q-M*-";
  write_bytes(dir + "/config.json", bad_pattern.dump());
  expect_forward_error(dir, {"config.json", "hybrid_override_pattern", "'Q'"});

  CommandResult r = run_cli("init --arch hybrid --pattern 'M-x*' --out " + temp_dir("init"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--pattern"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("valid symbols"), std::string::npos) << r.err;
}

TEST(CliErrors, TokenIdsOutsideTheVocabularyOrNotNumbers) {
  std::string dir = fixture_copy();
  write_bytes(dir + "/tokens.txt", "1 2 3 101 4\n");  // the fixture's vocabulary is 101
  expect_forward_error(dir, {"tokens.txt", "101", "position 3"});
  write_bytes(dir + "/tokens.txt", "1 2\n3 four\n");
  expect_forward_error(dir, {"tokens.txt", "line 2", "four"});
  write_bytes(dir + "/tokens.txt", "1 -2\n");
  expect_forward_error(dir, {"tokens.txt", "-2"});
  write_bytes(dir + "/tokens.txt", "\n");
  expect_forward_error(dir, {"tokens.txt", "no token ids"});
}

TEST(CliErrors, MissingPathsAndOptions) {
  CommandResult r = run_cli("forward --model /nonexistent/dir --tokens /nonexistent/t --logits /tmp/x.npy");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/dir"), std::string::npos) << r.err;
  r = run_cli("forward --model");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
  r = run_cli("generate --bogus 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown option --bogus"), std::string::npos) << r.err;
  r = run_cli("init --arch rnn --out /tmp/x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("valid: transformer, mamba, mamba2, hybrid"), std::string::npos) << r.err;
  r = run_cli("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
}

// Device options: a bad value, bf16 training on the CPU, q8 on CUDA, and CUDA where no device is visible (CI has none;
// on a GPU machine that case runs instead and must not fail) are one-line errors with exit 1.
TEST(CliErrors, DeviceOptions) {
  CommandResult r = run_cli("forward --model /nonexistent --tokens /x --logits /tmp/x.npy --device tpu");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--device must be cpu or cuda"), std::string::npos) << r.err;
  // bf16 and q8 weights run on the CPU for inference (the GEMV kernels), not for training.
  r = run_cli("train --model /nonexistent --data /x --out /tmp/x --dtype bf16");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--dtype bf16 needs --device cuda to train"), std::string::npos) << r.err;
  r = run_cli("generate --model /nonexistent --prompt 1 --dtype q8 --device cuda");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--dtype q8 needs --device cpu"), std::string::npos) << r.err;
  r = run_cli("generate --model /nonexistent --prompt 1 --dtype q4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--dtype must be f32, bf16 or q8"), std::string::npos) << r.err;
  r = run_cli("bench --device cuda --preset no-such-preset");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_cli("bench --device cuda --preset hybrid-tiny --contexts 1K,x");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Also catches an option declared twice in one command (Args refuses it, so --help fails).
TEST(Cli, EverySubcommandHasHelp) {
  for (const char* c : {"init", "convert", "info", "forward", "generate", "train", "grad", "bench", "tokenize",
                        "tokenizer train", "prepare", "eval", "plot", "study", "serve"}) {
    CommandResult r = run_cli(std::string(c) + " --help");
    EXPECT_EQ(r.exit_code, 0) << c;
    EXPECT_NE(r.out.find("usage: mambalm"), std::string::npos) << c;
  }
}

TEST(Cli, InitInfoGenerateBenchEndToEnd) {
  std::string dir = temp_dir("e2e") + "/model";
  CommandResult r = run_cli("init --preset hybrid-8b --config-only --out " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("info " + dir + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pattern"], "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-");
  EXPECT_EQ(j["n_mamba"], 24);
  EXPECT_EQ(j["n_attention"], 4);
  EXPECT_EQ(j["n_mlp"], 28);
  EXPECT_NEAR(j["n_params"].get<double>(), 8.7e9, 0.1e9);
  EXPECT_GT(j["state_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["kv_bytes_per_token"].get<int64_t>(), 2 * 8 * 128 * 4 * 4);

  std::string tiny = temp_dir("e2e") + "/tiny";
  r = run_cli("init --arch hybrid --layers 6 --d-model 64 --attention-ratio 0.2 --mlp-ratio 0.3 --seed 3 --dtype bf16 --out " + tiny);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("info " + tiny + " --json");
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pattern"], "MM-*M-");  // round(1.2) = 1 attention, round(1.8) = 2 MLP
  write_bytes(tiny + "/prompt.txt", "5 17 42 9");
  r = run_cli("generate --model " + tiny + " --tokens " + tiny + "/prompt.txt --max-tokens 5 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream ids(r.out);
  int n = 0, id;
  while (ids >> id) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 256);
    ++n;
  }
  EXPECT_EQ(n, 5);
  CommandResult again = run_cli("generate --model " + tiny + " --prompt '5 17 42 9' --max-tokens 5 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 7 --ignore-eos");
  CommandResult same = run_cli("generate --model " + tiny + " --prompt '5 17 42 9' --max-tokens 5 --temperature 0.8 --top-k 20 --top-p 0.9 --seed 7 --ignore-eos");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, same.out);
  r = run_cli("bench --model " + tiny + " --prompt-len 16 --gen-len 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["state_bytes"].get<int64_t>(), 0);
}

}  // namespace
