// Megatron-LM checkpoint conversion (src/convert/): the tensor-parallel cuts on hand-written
// examples, the round trip model directory -> Megatron (1, 2 and 4 ranks, TE and local names)
// -> model directory bit for bit, and broken checkpoints each giving one line and a non-zero
// exit. Logits against Megatron-LM's own models: test_megatron_fixtures.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "config/hf_config.h"
#include "convert/megatron_export.h"
#include "convert/megatron_import.h"
#include "convert/megatron_layout.h"
#include "core/error.h"
#include "io/torch/torch_checkpoint.h"
#include "io/torch/torch_writer.h"
#include "io/weights.h"
#include "model/init.h"
#include "model/model.h"
#include "test_util.h"

namespace mambalm::convert {
namespace {

namespace fs = std::filesystem;
using mambalm::testing::run_cli;
using mambalm::testing::temp_dir;

// A column of row numbers: row i of the result holds the value i (so a cut shows which rows moved).
Tensor numbered_rows(int64_t rows, int64_t cols) {
  Tensor t = Tensor::empty({rows, cols});
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t.f32()[i * cols + j] = static_cast<float>(i);
  return t;
}

std::vector<float> first_column(const Tensor& t) {
  std::vector<float> v;
  for (int64_t i = 0; i < t.dim(0); ++i) v.push_back(t.f32()[i * (t.numel() / t.dim(0))]);
  return v;
}

TEST(MegatronLayout, EachRankHoldsItsSliceOfEveryRowBlock) {
  // in_proj of a Mamba-2 layer: blocks z, x, B, C, dt of 4, 4, 2, 2, 2 rows; two ranks.
  MegatronTensor t;
  t.name = "in_proj";
  t.shape = {14, 3};
  t.split = TpSplit::Rows;
  t.blocks = {4, 4, 2, 2, 2};
  const Tensor whole = numbered_rows(14, 3);
  const Tensor r0 = rank_part(t, whole, 0, 2), r1 = rank_part(t, whole, 1, 2);
  EXPECT_EQ(first_column(r0), (std::vector<float>{0, 1, 4, 5, 8, 10, 12}));
  EXPECT_EQ(first_column(r1), (std::vector<float>{2, 3, 6, 7, 9, 11, 13}));
  const Tensor merged = merge_ranks(t, {r0, r1});
  EXPECT_EQ(std::memcmp(merged.raw(), whole.raw(), whole.nbytes()), 0);
  EXPECT_THROW(rank_part(t, whole, 0, 4), Error);  // blocks of 2 rows do not divide among 4 ranks
}

TEST(MegatronLayout, ColumnsAreCutPerRow) {
  MegatronTensor t;
  t.name = "out_proj";
  t.shape = {2, 4};
  t.split = TpSplit::Columns;
  Tensor whole = Tensor::empty({2, 4});
  for (int i = 0; i < 8; ++i) whole.f32()[i] = static_cast<float>(i);
  const Tensor r1 = rank_part(t, whole, 1, 2);
  EXPECT_EQ(std::vector<float>(r1.f32(), r1.f32() + 4), (std::vector<float>{2, 3, 6, 7}));
  const Tensor merged = merge_ranks(t, {rank_part(t, whole, 0, 2), r1});
  EXPECT_EQ(std::memcmp(merged.raw(), whole.raw(), whole.nbytes()), 0);
}

TEST(MegatronLayout, FusedQkvRowsArePerQueryGroup) {
  // 4 query heads in 2 groups, head dim 1: rows [q0 q1 k0 v0 | q2 q3 k1 v1].
  MegatronTensor t;
  t.name = "linear_qkv";
  t.shape = {8, 2};
  t.split = TpSplit::Rows;
  t.blocks = {8};
  t.hf_names = {"q", "k", "v"};
  t.hf_shapes = {{4, 2}, {2, 2}, {2, 2}};
  t.qkv_groups = 2;
  const Tensor whole = numbered_rows(8, 2);
  const std::vector<Tensor> qkv = split_qkv(t, whole);
  EXPECT_EQ(first_column(qkv[0]), (std::vector<float>{0, 1, 4, 5}));
  EXPECT_EQ(first_column(qkv[1]), (std::vector<float>{2, 6}));
  EXPECT_EQ(first_column(qkv[2]), (std::vector<float>{3, 7}));
  const Tensor fused = fuse_qkv(t, qkv);
  EXPECT_EQ(std::memcmp(fused.raw(), whole.raw(), whole.nbytes()), 0);
  // One group per rank: each rank's rows are whole groups.
  EXPECT_EQ(first_column(rank_part(t, whole, 1, 2)), (std::vector<float>{4, 5, 6, 7}));
}

const char* kHybridConfig = R"({"model_type": "nemotron_h", "vocab_size": 128, "hidden_size": 32,
  "layers_block_type": ["linear_attention", "mlp", "full_attention", "linear_attention", "mlp"],
  "mamba_num_heads": 8, "mamba_head_dim": 8, "n_groups": 2, "ssm_state_size": 8, "conv_kernel": 4, "expand": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 64,
  "mlp_hidden_act": "relu2", "tie_word_embeddings": false})";
const char* kMamba2Config = R"({"model_type": "nemotron_h", "vocab_size": 128, "hidden_size": 32,
  "layers_block_type": ["linear_attention", "linear_attention", "linear_attention"],
  "mamba_num_heads": 8, "mamba_head_dim": 8, "n_groups": 4, "ssm_state_size": 4, "conv_kernel": 4, "expand": 2,
  "num_attention_heads": 4, "head_dim": 8, "intermediate_size": 64, "tie_word_embeddings": true})";
// Every split divides by 8: the released 8B checkpoints were saved at tensor parallelism 4 and 8.
const char* kWideHybridConfig = R"({"model_type": "nemotron_h", "vocab_size": 128, "hidden_size": 32,
  "layers_block_type": ["linear_attention", "full_attention", "mlp"],
  "mamba_num_heads": 8, "mamba_head_dim": 8, "n_groups": 8, "ssm_state_size": 4, "conv_kernel": 4, "expand": 2,
  "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 4, "intermediate_size": 64,
  "mlp_hidden_act": "relu2", "tie_word_embeddings": false})";
const char* kGptConfig = R"({"model_type": "nemotron", "vocab_size": 128, "hidden_size": 32, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 64, "hidden_act": "relu2",
  "partial_rotary_factor": 0.5, "norm_eps": 1e-5, "tie_word_embeddings": false})";

// A random model directory (fresh random values, norm gains and biases included).
std::string random_model(const char* config_json, const std::string& tag, DType dtype = DType::F32) {
  const std::string dir = temp_dir(tag);
  Model model(config_from_hf(parse_config_json(config_json, tag), tag));
  write_random_model(model, mambalm::testing::test_seed(), dtype, dir, false);
  return dir;
}

// Every tensor of `b` equals `a`'s bit for bit, and config.json says the same.
void expect_same_model(const std::string& a, const std::string& b) {
  const auto wa = io::WeightSet::open(a), wb = io::WeightSet::open(b);
  auto na = wa->names(), nb = wb->names();
  std::sort(na.begin(), na.end());
  std::sort(nb.begin(), nb.end());
  ASSERT_EQ(na, nb);
  for (const std::string& n : na) {
    const Tensor ta = wa->tensor(n), tb = wb->tensor(n);
    ASSERT_EQ(ta.dtype(), tb.dtype()) << n;
    ASSERT_EQ(ta.shape(), tb.shape()) << n;
    EXPECT_EQ(std::memcmp(ta.raw(), tb.raw(), ta.nbytes()), 0) << n;
  }
  EXPECT_EQ(config_to_hf(load_model_config(a)).dump(), config_to_hf(load_model_config(b)).dump());
}

TEST(MegatronConvert, RoundTripIsLosslessForEveryFamilyRankCountAndSpec) {
  struct Case {
    const char* config;
    const char* tag;
    DType dtype;
  };
  for (const Case& c : {Case{kHybridConfig, "hybrid", DType::F32}, Case{kMamba2Config, "mamba2", DType::BF16}, Case{kGptConfig, "gpt", DType::F32}}) {
    const std::string model = random_model(c.config, std::string("megatron-rt-") + c.tag, c.dtype);
    for (int tp : {1, 2}) {
      for (MegatronSpec spec : {MegatronSpec::TransformerEngine, MegatronSpec::Local}) {
        SCOPED_TRACE(std::string(c.tag) + " tp " + std::to_string(tp) + (spec == MegatronSpec::Local ? " local" : " te"));
        const std::string ckpt = temp_dir("megatron-rt-ckpt"), back = temp_dir("megatron-rt-back");
        export_megatron(model, ckpt, {tp, spec, std::nullopt});
        ASSERT_TRUE(fs::exists(fs::path(ckpt) / "release" / (tp == 1 ? "mp_rank_00" : "mp_rank_01") / "model_optim_rng.pt"));
        const MegatronImportReport r = import_megatron(ckpt, back, {});
        EXPECT_EQ(r.tp, tp);
        EXPECT_EQ(r.spec, spec);
        expect_same_model(model, back);
        fs::remove_all(ckpt);
        fs::remove_all(back);
      }
    }
    fs::remove_all(model);
  }
}

TEST(MegatronConvert, RoundTripAtFourAndEightRanks) {
  const std::string model = random_model(kWideHybridConfig, "megatron-rt-wide");
  for (int tp : {4, 8}) {
    SCOPED_TRACE("tp " + std::to_string(tp));
    const std::string ckpt = temp_dir("megatron-rt-wide-ckpt"), back = temp_dir("megatron-rt-wide-back");
    export_megatron(model, ckpt, {tp, MegatronSpec::TransformerEngine, std::nullopt});
    const MegatronImportReport r = import_megatron(ckpt, back, {});
    EXPECT_EQ(r.tp, tp);
    expect_same_model(model, back);
    fs::remove_all(ckpt);
    fs::remove_all(back);
  }
  fs::remove_all(model);
}

TEST(MegatronConvert, CommandLineRoundTripThroughBf16AndAnIndivisibleCut) {
  const std::string model = random_model(kHybridConfig, "megatron-cli"), ckpt = temp_dir("megatron-cli-ckpt"), back = temp_dir("megatron-cli-back");
  auto r = run_cli("convert --to megatron " + model + " --out " + ckpt + " --tensor-parallel 2 --megatron-spec local --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("convert --from megatron " + ckpt + " --out " + back + " --dtype f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2 tensor-parallel ranks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pattern M-*M-"), std::string::npos) << r.out;
  // Through bf16 and back: every weight within bf16 rounding of the original.
  const auto wa = io::WeightSet::open(model), wb = io::WeightSet::open(back);
  for (const std::string& n : wa->names()) {
    const Tensor a = wa->tensor(n), b = wb->tensor(n);
    ASSERT_EQ(b.dtype(), DType::F32);
    EXPECT_LT(mambalm::testing::relative_l2(b, a), 4e-3) << n;
  }
  // tp 4 does not divide the 2 query groups: refused before anything is written.
  r = run_cli("convert --to megatron " + model + " --out " + ckpt + "-4 --tensor-parallel 4");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("query groups"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(ckpt + "-4/latest_checkpointed_iteration.txt"));
  for (const auto& d : {model, ckpt, back}) fs::remove_all(d);
}

// Rewrites one rank's file through `edit` (args, tensors) with the torch writer.
void rewrite_rank(const std::string& file, const std::function<void(nlohmann::ordered_json& args, std::map<std::string, Tensor>& tensors)>& edit) {
  io::torch::TorchCheckpointOptions options;
  options.opaque = {"megatron."};
  std::map<std::string, Tensor> tensors;
  nlohmann::ordered_json args;
  {
    auto ck = io::torch::TorchCheckpoint::open(file, options);
    for (const auto& e : ck->tensors()) tensors[e.name] = ck->read(e.name);
    args = nlohmann::ordered_json::parse(ck->args().dump());
  }
  edit(args, tensors);
  nlohmann::ordered_json model = nlohmann::ordered_json::object();
  for (const auto& [name, t] : tensors) model[name] = {{"__tensor__", name}};
  nlohmann::ordered_json top;
  top["args"] = {{"__namespace__", args}};
  top["iteration"] = 0;
  top["model"] = {{"__ordered_dict__", model}};
  io::torch::write_torch_file(file, top, tensors);
}

struct Broken {
  std::string name;
  std::function<void(const std::string& ckpt)> damage;
  std::string message;  // a piece of the one-line error
};

TEST(MegatronConvert, BrokenCheckpointsGiveOneLineErrors) {
  const std::string model = random_model(kHybridConfig, "megatron-broken");
  const std::vector<Broken> cases = {
      {"missing rank", [](const std::string& c) { fs::remove_all(c + "/release/mp_rank_00"); }, "mp_rank_00 is missing"},
      {"pipeline folders", [](const std::string& c) { fs::rename(c + "/release/mp_rank_01", c + "/release/mp_rank_01_001"); }, "pipeline-parallel"},
      {"torch_dist", [](const std::string& c) { mambalm::testing::write_file(c + "/release/__0_0.distcp", "x"); }, "torch_dist"},
      {"bad tracker", [](const std::string& c) { mambalm::testing::write_file(c + "/latest_checkpointed_iteration.txt", "12x"); }, "iteration number"},
      {"missing iteration", [](const std::string& c) { mambalm::testing::write_file(c + "/latest_checkpointed_iteration.txt", "1000"); },
       "does not exist"},
      {"truncated rank file",
       [](const std::string& c) {
         const std::string f = c + "/release/mp_rank_01/model_optim_rng.pt";
         fs::resize_file(f, fs::file_size(f) / 2);
       },
       "model_optim_rng.pt"},
      {"hidden size disagrees",
       [](const std::string& c) {
         for (const char* r : {"00", "01"})
           rewrite_rank(c + "/release/mp_rank_" + r + "/model_optim_rng.pt", [](auto& args, auto&) { args["hidden_size"] = 48; });
       },
       "hidden_size is 48"},
      {"pattern disagrees",
       [](const std::string& c) {
         for (const char* r : {"00", "01"})
           rewrite_rank(c + "/release/mp_rank_" + r + "/model_optim_rng.pt", [](auto& args, auto&) { args["hybrid_override_pattern"] = "MM*--"; });
       },
       "pattern M-*M-"},
      {"an argument of the wrong type",
       [](const std::string& c) {
         for (const char* r : {"00", "01"})
           rewrite_rank(c + "/release/mp_rank_" + r + "/model_optim_rng.pt", [](auto& args, auto&) { args["num_layers"] = "five"; });
       },
       "not an integer"},
      {"replicas differ",
       [](const std::string& c) {
         rewrite_rank(c + "/release/mp_rank_01/model_optim_rng.pt", [](auto&, auto& tensors) {
           Tensor& w = tensors.at("decoder.layers.0.norm.weight");
           w = w.clone();
           w.f32()[3] += 1.0f;
         });
       },
       "different copy"},
      {"unknown tensor",
       [](const std::string& c) {
         for (const char* r : {"00", "01"})
           rewrite_rank(c + "/release/mp_rank_" + r + "/model_optim_rng.pt",
                        [](auto&, auto& tensors) { tensors["decoder.layers.1.mlp.router.weight"] = mambalm::testing::random_tensor({4, 32}); });
       },
       "router.weight"},
      {"wrong shard shape",
       [](const std::string& c) {
         rewrite_rank(c + "/release/mp_rank_01/model_optim_rng.pt",
                      [](auto&, auto& tensors) { tensors["decoder.layers.1.mlp.linear_fc1.weight"] = mambalm::testing::random_tensor({31, 32}); });
       },
       "linear_fc1.weight"},
  };
  for (const Broken& b : cases) {
    SCOPED_TRACE(b.name);
    const std::string ckpt = temp_dir("megatron-broken-ckpt"), out = temp_dir("megatron-broken-out");
    export_megatron(model, ckpt, {2, MegatronSpec::Local, std::nullopt});
    b.damage(ckpt);
    const auto r = run_cli("convert --from megatron " + ckpt + " --out " + out);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(b.message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    fs::remove_all(ckpt);
    fs::remove_all(out);
  }
  fs::remove_all(model);
}

}  // namespace
}  // namespace mambalm::convert
