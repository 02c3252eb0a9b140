// Issue 20, point 1: no crash from a number in a file or on the command line. Each size, id and
// count is range-checked where it enters and products are checked; each case below crashed, or
// exited 0 with wrong output, before.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "config/hf_config.h"
#include "config/presets.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "core/limits.h"
#include "core/tensor.h"
#include "test_reliability_util.h"

using namespace mambalm;
using namespace mambalm::testing;
namespace fs = std::filesystem;

namespace {

const std::string kHuge = "4611686018427387904";  // 2^62

TEST(ReliabilityNumbers, CheckedArithmeticNeverWraps) {
  EXPECT_EQ(limits::checked_mul(1 << 20, 1 << 20, "w", "x"), int64_t{1} << 40);
  EXPECT_THROW(limits::checked_mul(int64_t{1} << 62, 4, "w", "x"), Error);
  EXPECT_THROW(limits::checked_mul(-1, 4, "w", "x"), Error);
  EXPECT_THROW(limits::checked_mul(1 << 20, 1 << 20, "w", "x", 1 << 30), Error);
  EXPECT_THROW(limits::checked_add(INT64_MAX, 1, "w", "x"), Error);
  EXPECT_THROW(limits::in_range(5, 0, 4, "w", "x"), Error);
}

TEST(ReliabilityNumbers, TensorSizesAreChecked) {
  // 2^62 elements overflow the byte count: an error, not a small buffer.
  EXPECT_THROW(Tensor::empty({int64_t{1} << 62, 4}), Error);
  EXPECT_THROW(Tensor::empty({int64_t{1} << 31, int64_t{1} << 31, 4}), Error);
  EXPECT_THROW(shape_numel({int64_t{1} << 40, int64_t{1} << 40}), Error);
  // Larger than the machine: refused before allocating (the OOM killer would end the process).
  EXPECT_THROW(Tensor::empty({host_memory_bytes() / 4 + 1024, 8}), Error);
  EXPECT_EQ(Tensor::zeros({3, 5}).numel(), 15);
}

nlohmann::json tiny_config() {
  return config_to_hf(preset_config("hybrid-tiny"));
}

TEST(ReliabilityNumbers, ConfigFieldsAreRangeChecked) {
  auto expect_refused = [](nlohmann::json j, const std::string& needle) {
    try {
      config_from_hf(j, "config.json");
      ADD_FAILURE() << "accepted " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::vector<nlohmann::json> bad_sizes = {nlohmann::json(int64_t{1} << 62), nlohmann::json(-1), nlohmann::json(0),
                                                 nlohmann::json(uint64_t{18446744073709551615ull})};
  for (const char* field : {"hidden_size", "vocab_size", "intermediate_size", "mamba_num_heads", "mamba_head_dim",
                            "ssm_state_size", "num_attention_heads", "head_dim", "chunk_size", "conv_kernel", "n_groups"}) {
    for (const nlohmann::json& bad : bad_sizes) {
      nlohmann::json j = tiny_config();
      j[field] = bad;
      expect_refused(j, field);
    }
  }
  for (const std::string preset : {"mamba2-tiny", "mamba-tiny", "transformer-tiny"}) {
    for (const nlohmann::json& bad : bad_sizes) {
      ModelConfig c = preset_config(preset);
      // The mamba2-* presets are written as nemotron_h, whose depth is its layer list; the HF
      // mamba2 type reads num_hidden_layers.
      if (preset == "mamba2-tiny") make_transformers_mamba2_style(c);
      nlohmann::json j = config_to_hf(c);
      j["num_hidden_layers"] = bad;
      expect_refused(j, "num_hidden_layers");
    }
  }
  // Token ids outside the vocabulary, a NaN epsilon, a rotary fraction above 1.
  nlohmann::json j = tiny_config();
  j["eos_token_id"] = 4294967295ull;
  expect_refused(j, "eos_token_id");
  j = tiny_config();
  j["eos_token_id"] = 300;  // vocabulary of 256
  expect_refused(j, "eos_token_id");
  j = tiny_config();
  j["layer_norm_epsilon"] = nlohmann::json{{"__float__", "NaN"}};
  expect_refused(j, "epsilon");
  nlohmann::json t = config_to_hf(preset_config("transformer-tiny"));
  t["partial_rotary_factor"] = 7.0;
  t["rope_parameters"]["partial_rotary_factor"] = 7.0;
  expect_refused(t, "partial_rotary_factor");
  // Sizes each in range whose model is beyond any machine: the parameter count is checked.
  j = tiny_config();
  j["vocab_size"] = limits::kMaxVocab;
  j["hidden_size"] = limits::kMaxWidth;
  expect_refused(j, "parameter count");
}

TEST(ReliabilityNumbers, InfoOnAHugeHiddenSizeIsAnError) {
  const std::string dir = temp_dir("rel-info");
  nlohmann::json j = tiny_config();
  j["hidden_size"] = int64_t{1} << 62;
  write_file(dir + "/config.json", j.dump());
  expect_one_line_error(run_cli("info " + dir), {"hidden_size", "out of range"});
  expect_one_line_error(run_cli("info " + dir + " --json"), {"hidden_size"});
  // A config whose sizes are each plausible but whose parameters cannot be counted.
  j = tiny_config();
  j["vocab_size"] = limits::kMaxVocab;
  j["hidden_size"] = limits::kMaxWidth;
  write_file(dir + "/config.json", j.dump());
  expect_one_line_error(run_cli("info " + dir), {"parameter count"});
  fs::remove_all(dir);
}

TEST(ReliabilityNumbers, InitRefusesAbsurdSizes) {
  const std::string dir = temp_dir("rel-init");
  expect_one_line_error(run_cli("init --arch hybrid --vocab " + kHuge + " --out " + dir + "/m"), {"--vocab", "16777216"});
  expect_one_line_error(run_cli("init --arch mamba2 --d-model " + kHuge + " --out " + dir + "/m"), {"--d-model"});
  expect_one_line_error(run_cli("init --arch transformer --layers " + kHuge + " --out " + dir + "/m"), {"--layers"});
  expect_one_line_error(run_cli("init --arch hybrid --d-state -5 --out " + dir + "/m"), {"--d-state"});
  expect_one_line_error(run_cli("init --arch hybrid --vocab 99999999999999999999 --out " + dir + "/m"), {"--vocab", "out of range"});
  // Each size allowed, the whole beyond this machine: said before allocating, nothing written.
  expect_one_line_error(run_cli("init --arch transformer --d-model 65536 --vocab 1000000 --layers 64 --out " + dir + "/m"),
                        {"needs", "this machine has"});
  EXPECT_FALSE(fs::exists(dir + "/m/model.safetensors"));
  // ... while --config-only writes the config of such a model.
  EXPECT_EQ(run_cli("init --arch transformer --d-model 65536 --vocab 1000000 --layers 64 --config-only --out " + dir + "/m").exit_code, 0);
  fs::remove_all(dir);
}

TEST(ReliabilityNumbers, TrainRefusesAnOverflowingBatch) {
  const std::string dir = temp_dir("rel-train");
  ASSERT_EQ(run_cli("init --preset mamba2-tiny --out " + dir + "/model").exit_code, 0);
  const std::string base = "train --model " + dir + "/model --data " + dir + "/none --out " + dir + "/run --steps 1 ";
  expect_one_line_error(run_cli(base + "--seq-len 4 --micro-batch " + kHuge), {"--micro-batch"});
  expect_one_line_error(run_cli(base + "--seq-len 16777216 --micro-batch 16777216"), {"tokens per optimizer step"});
  expect_one_line_error(run_cli(base + "--grad-accum 0"), {"--grad-accum"});
  expect_one_line_error(run_cli(base + "--beta2 1.5"), {"--beta2"});
  expect_one_line_error(run_cli(base + "--tokens -5"), {"--tokens"});
  EXPECT_FALSE(fs::exists(dir + "/run"));
  fs::remove_all(dir);
}

}  // namespace
