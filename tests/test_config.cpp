// Layer patterns (Megatron-LM's allocation), presets, and config.json import/export.
#include <gtest/gtest.h>

#include <cmath>

#include "config/hf_config.h"
#include "config/pattern.h"
#include "config/presets.h"
#include "core/error.h"
#include "model/model.h"

using namespace mambalm;

TEST(Pattern, MegatronAllocationReproducesTheStudy) {
  EXPECT_EQ(allocate_pattern(56, 0.08, 0.5), "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-");
  EXPECT_EQ(allocate_pattern(48, 0.08, 0.5), "M-M-M--M-*M-M-M-M--*M-M-M-M-*M--M-M-M-*M-M--M-M-");
}

TEST(Pattern, RatiosAndRounding) {
  EXPECT_EQ(allocate_pattern(4, 0.0, 0.0), "MMMM");
  EXPECT_EQ(allocate_pattern(4, 0.0, 0.5), "M-M-");
  // 0.5 * 5 = 2.5 rounds half to even (2), as Python's round() does; 0.5 * 7 = 3.5 -> 4.
  EXPECT_EQ(count_symbol(allocate_pattern(5, 0.5, 0.0), '*'), 2);
  EXPECT_EQ(count_symbol(allocate_pattern(7, 0.5, 0.0), '*'), 4);
  std::string p = allocate_pattern(10, 0.1, 0.3);
  EXPECT_EQ(count_symbol(p, '*'), 1);
  EXPECT_EQ(count_symbol(p, '-'), 3);
  EXPECT_THROW(allocate_pattern(0, 0.1, 0.1), Error);
  EXPECT_THROW(allocate_pattern(8, 0.7, 0.5), Error);
}

TEST(Pattern, InvalidSymbolsListTheValidOnes) {
  try {
    validate_pattern("M-X*", "--pattern");
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'X'"), std::string::npos) << m;
    EXPECT_NE(m.find("M (Mamba), * (attention), - (MLP)"), std::string::npos) << m;
  }
  EXPECT_THROW(validate_pattern("", "p"), Error);
  EXPECT_THROW(validate_pattern("M-*", "p", 4), Error);
  EXPECT_NO_THROW(validate_pattern("M-*", "p", 3));
}

TEST(Presets, StudySizes) {
  ModelConfig h = preset_config("hybrid-8b");
  EXPECT_EQ(h.pattern, "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-");
  EXPECT_EQ(count_symbol(h.pattern, 'M'), 24);
  EXPECT_EQ(count_symbol(h.pattern, '*'), 4);
  EXPECT_EQ(count_symbol(h.pattern, '-'), 28);
  EXPECT_EQ(h.mamba2.n_heads, 128);
  EXPECT_EQ(h.mamba2.in_proj_width(), 2 * 8192 + 2 * 8 * 128 + 128);
  int64_t n = Model(h).parameter_count();
  EXPECT_GT(n, 8.6e9);
  EXPECT_LT(n, 8.8e9);  // "about 8.7B"
  // A Mamba-2 layer of the 8B model keeps H*P*N = 128*64*128 state values (+ conv window).
  EXPECT_EQ(h.state_bytes(2) / 24, (128 * 64 * 128 + (8192 + 2048) * 3) * 2);
  EXPECT_EQ(h.kv_bytes_per_token(2), 2 * 8 * 128 * 4 * 2);
  for (const std::string& name : preset_names()) EXPECT_NO_THROW(Model(preset_config(name))) << name;
  EXPECT_THROW(preset_config("nope"), Error);
}

TEST(HfConfig, ExportImportRoundTripForEveryPreset) {
  for (const std::string& name : preset_names()) {
    ModelConfig a = preset_config(name);
    ModelConfig b = config_from_hf(parse_config_json(config_to_hf(a).dump(), "x"), "x");
    EXPECT_EQ(a.model_type, b.model_type) << name;
    EXPECT_EQ(a.arch, b.arch) << name;  // an all-M nemotron_h (the mamba2-* presets) reads back as Mamba-2
    EXPECT_EQ(a.pattern, b.pattern) << name;
    EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings) << name;
    EXPECT_EQ(a.attention.rope_theta, b.attention.rope_theta) << name;
    EXPECT_EQ(Model(a).parameter_count(), Model(b).parameter_count()) << name;
    EXPECT_EQ(a.state_bytes(), b.state_bytes()) << name;
    EXPECT_EQ(a.mamba2.norm_groups, b.mamba2.norm_groups) << name;
    EXPECT_EQ(a.mamba2.dt_limit_lo, b.mamba2.dt_limit_lo) << name;
    EXPECT_EQ(a.attention.rotary_dim, b.attention.rotary_dim) << name;
  }
}

static const char* kNemotronH = R"({
  "model_type": "nemotron_h", "vocab_size": 101, "hidden_size": 16, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 4, "intermediate_size": 24, "mlp_hidden_act": "relu2",
  "mamba_num_heads": 4, "mamba_head_dim": 8, "n_groups": 2, "ssm_state_size": 8, "conv_kernel": 4,
  "chunk_size": 16, "time_step_min": 0.001, "time_step_limit": [0.0, {"__float__": "Infinity"}],
  LAYERS })";

static ModelConfig parse_with(const std::string& layers) {
  std::string text = kNemotronH;
  text.replace(text.find("LAYERS"), 6, layers);
  return config_from_hf(parse_config_json(text, "config.json"), "config.json");
}

TEST(HfConfig, HybridLayerListsAndLegacyPattern) {
  ModelConfig a = parse_with(R"("layers_block_type": ["linear_attention", "mlp", "full_attention", "mlp"])");
  EXPECT_EQ(a.pattern, "M-*-");
  ModelConfig b = parse_with(R"("hybrid_override_pattern": "M-*-")");
  EXPECT_EQ(b.pattern, "M-*-");
  ModelConfig c = parse_with(R"("layers_block_type": ["mamba", "mlp", "attention", "mlp"])");
  EXPECT_EQ(c.pattern, "M-*-");
  EXPECT_TRUE(std::isinf(a.mamba2.dt_limit_hi));
  EXPECT_DOUBLE_EQ(a.mamba2.dt_limit_lo, 0.001);  // NemotronH clamps at time_step_min
  EXPECT_EQ(a.mamba2.norm_groups, 2);
  EXPECT_THROW(parse_with(R"("hybrid_override_pattern": "M-X-")"), Error);
  EXPECT_THROW(parse_with(R"("layers_block_type": ["linear_attention", "moe"])"), Error);
  EXPECT_THROW(parse_with(R"("layers_block_type": ["linear_attention", "conv"])"), Error);
}

TEST(HfConfig, PythonJsonInfinityAndAliases) {
  // Older transformers wrote bare Infinity; mamba_* aliases are still read.
  std::string text = R"({"model_type": "mamba2", "vocab_size": 50, "hidden_size": 16, "num_heads": 4,
    "head_dim": 8, "expand": 2, "n_groups": 1, "state_size": 8, "num_hidden_layers": 2,
    "time_step_limit": [0.0, Infinity], "chunk_size": 8, "note": "Infinity inside a string stays"})";
  ModelConfig c = config_from_hf(parse_config_json(text, "config.json"), "config.json");
  EXPECT_TRUE(std::isinf(c.mamba2.dt_limit_hi));
  EXPECT_EQ(c.mamba2.norm_groups, 1);  // transformers' Mamba2 normalises the whole width
}

TEST(HfConfig, ErrorsNameTheFileAndField) {
  auto message = [](const std::string& text) {
    try {
      config_from_hf(parse_config_json(text, "dir/config.json"), "dir/config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m = message(R"({"model_type": "gpt2", "vocab_size": 5, "hidden_size": 4})");
  EXPECT_NE(m.find("dir/config.json"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown model_type 'gpt2'"), std::string::npos) << m;
  m = message(R"({"model_type": "mamba", "hidden_size": 4, "num_hidden_layers": 1})");
  EXPECT_NE(m.find("vocab_size"), std::string::npos) << m;
  m = message(R"({"model_type": "llama", "vocab_size": "many"})");
  EXPECT_NE(m.find("vocab_size"), std::string::npos) << m;
  m = message("{not json");
  EXPECT_NE(m.find("not valid JSON"), std::string::npos) << m;
  m = message(R"({"model_type": "mamba2", "vocab_size": 50, "hidden_size": 16, "num_heads": 4, "head_dim": 8,
                  "expand": 2, "n_groups": 3, "num_hidden_layers": 1})");
  EXPECT_NE(m.find("n_groups"), std::string::npos) << m;
}
