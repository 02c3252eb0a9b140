// `mambalm init` shape options (issue 12): every layer size a user may need, --config FILE, and
// a one-line error (exit 1) naming the option for every combination that cannot be built.
// Values are drawn afresh per run (MAMBALM_TEST_SEED replays a run).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "config/hf_config.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

std::mt19937_64& rng() {
  static std::mt19937_64 r(test_seed() ^ 0x1212);
  return r;
}

int64_t pick(const std::vector<int64_t>& v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng())]; }
int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng()); }

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

std::string s(int64_t v) { return std::to_string(v); }

// Runs init with --config-only and reads the config back.
ModelConfig init_config(const std::string& options, const std::string& tag) {
  const std::string dir = temp_dir(tag);
  const CommandResult r = run_cli("init " + options + " --config-only --out " + dir + "/m");
  EXPECT_EQ(r.exit_code, 0) << options << "\n" << r.err << "\nseed " << test_seed();
  return load_model_config(dir + "/m");
}

// Expects exit 1 and exactly one stderr line that contains every one of `words`.
void expect_error(const std::string& options, const std::vector<std::string>& words) {
  const std::string dir = temp_dir("init-bad");
  const CommandResult r = run_cli("init " + options + " --config-only --out " + dir + "/m");
  EXPECT_EQ(r.exit_code, 1) << options << "\nseed " << test_seed();
  std::string line = r.err;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  EXPECT_EQ(line.find('\n'), std::string::npos) << options << ": more than one line:\n" << r.err;
  for (const std::string& w : words) EXPECT_NE(line.find(w), std::string::npos) << options << ": '" << w << "' missing in: " << line;
  EXPECT_FALSE(std::filesystem::exists(dir + "/m/config.json")) << options;
}

}  // namespace

TEST(InitOptions, TransformerAttentionMlpVocabularyAndTying) {
  const int64_t heads = pick({2, 4, 8, 16});
  const int64_t kv = pick(divisors(heads));
  const int64_t head_dim = 4 * uniform(2, 12);  // RoPE rotates half of it: even
  const int64_t ffn = uniform(17, 700), vocab = uniform(300, 5000);
  const std::string opts = "--preset transformer-tiny --heads " + s(heads) + " --kv-heads " + s(kv) + " --head-dim " + s(head_dim) +
                           " --ffn " + s(ffn) + " --activation gelu --vocab " + s(vocab) + " --tie-embeddings yes";
  ModelConfig c = init_config(opts, "init-tf");
  EXPECT_EQ(c.attention.n_heads, heads);
  EXPECT_EQ(c.attention.n_kv_heads, kv);
  EXPECT_EQ(c.attention.head_dim, head_dim);
  EXPECT_EQ(c.attention.rotary_dim, head_dim / 2);  // the study's rotary fraction 0.5 kept
  EXPECT_EQ(c.mlp.d_ff, ffn);
  EXPECT_EQ(c.mlp.activation, MlpActivation::Gelu);
  EXPECT_EQ(c.vocab_size, vocab);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.d_model, 64);  // --vocab alone keeps the rest of the preset
  EXPECT_EQ(c.n_layers(), 16);

  // --heads alone derives the head size from d_model; llama takes swiglu and full RoPE.
  const int64_t h2 = pick({2, 4, 8});
  ModelConfig l = init_config("--preset transformer-tiny --model-type llama --heads " + s(h2) + " --kv-heads " + s(h2) +
                                  " --activation swiglu --tie-embeddings no",
                              "init-llama");
  EXPECT_EQ(l.model_type, "llama");
  EXPECT_EQ(l.attention.head_dim, 64 / h2);
  EXPECT_EQ(l.attention.rotary_dim, 64 / h2);
  EXPECT_EQ(l.mlp.activation, MlpActivation::SwiGLU);
  EXPECT_FALSE(l.tie_embeddings);

  // The weights are written too, and the model loads with those sizes.
  const std::string dir = temp_dir("init-tf-full");
  CommandResult r = run_cli("init " + opts + " --seed " + s(uniform(1, 1000)) + " --out " + dir + "/m");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("info " + dir + "/m --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"n_kv_heads\": " + s(kv)), std::string::npos) << r.out;
}

TEST(InitOptions, MambaTwoShape) {
  const int64_t expand = pick({1, 2, 3, 4});
  const int64_t width = expand * 64;
  std::vector<int64_t> head_dims;
  for (int64_t p : divisors(width))
    if (p >= 4 && width / p >= 2) head_dims.push_back(p);
  const int64_t head_dim = pick(head_dims), n_heads = width / head_dim;
  const int64_t groups = pick(divisors(n_heads));
  const int64_t d_state = uniform(2, 40), conv = uniform(2, 6), chunk = uniform(8, 80);
  const std::string opts = "--expand " + s(expand) + " --mamba-head-dim " + s(head_dim) + " --groups " + s(groups) +
                           " --d-state " + s(d_state) + " --conv " + s(conv) + " --chunk-size " + s(chunk);
  for (const std::string preset : {"mamba2-tiny", "hybrid-tiny"}) {
    ModelConfig c = init_config("--preset " + preset + " " + opts, "init-m2");
    const Mamba2Config& m = c.mamba2;
    EXPECT_EQ(m.d_inner, width) << preset << " " << opts;
    EXPECT_EQ(m.head_dim, head_dim) << preset;
    EXPECT_EQ(m.n_heads, n_heads) << preset;
    EXPECT_EQ(m.n_groups, groups) << preset;
    EXPECT_EQ(m.d_state, d_state) << preset;
    EXPECT_EQ(m.d_conv, conv) << preset;
    EXPECT_EQ(m.chunk_size, chunk) << preset;
    // Both are written as nemotron_h (the mamba2-* presets with an all-M pattern), which
    // normalises per group as the study's Mamba-2 layer does.
    EXPECT_EQ(m.norm_groups, groups) << preset;
  }
}

TEST(InitOptions, MambaOneShape) {
  const int64_t expand = pick({1, 2, 3}), d_state = uniform(2, 40), conv = uniform(2, 6);
  ModelConfig c = init_config("--preset mamba-tiny --expand " + s(expand) + " --d-state " + s(d_state) + " --conv " + s(conv), "init-m1");
  EXPECT_EQ(c.mamba1.d_inner, expand * 64);
  EXPECT_EQ(c.mamba1.d_state, d_state);
  EXPECT_EQ(c.mamba1.d_conv, conv);
}

TEST(InitOptions, ConfigFileStartsTheShape) {
  // A config written by init with random sizes, read back through --config (file and directory).
  const int64_t heads = pick({2, 4, 8}), ffn = uniform(33, 500), d_state = uniform(3, 30);
  const std::string dir = temp_dir("init-cfg");
  CommandResult r = run_cli("init --preset hybrid-tiny --heads " + s(heads) + " --kv-heads 1 --ffn " + s(ffn) + " --d-state " +
                            s(d_state) + " --config-only --out " + dir + "/a");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ModelConfig a = load_model_config(dir + "/a");
  ModelConfig b = init_config("--config " + dir + "/a/config.json", "init-cfg-b");
  ModelConfig c = init_config("--config " + dir + "/a --arch hybrid", "init-cfg-c");
  for (const ModelConfig* x : {&b, &c}) {
    EXPECT_EQ(x->model_type, "nemotron_h");
    EXPECT_EQ(x->pattern, a.pattern);
    EXPECT_EQ(x->attention.n_heads, heads);
    EXPECT_EQ(x->attention.n_kv_heads, 1);
    EXPECT_EQ(x->mlp.d_ff, ffn);
    EXPECT_EQ(x->mamba2.d_state, d_state);
  }
  // Options apply on top of the file.
  const int64_t ffn2 = ffn + uniform(1, 100);
  EXPECT_EQ(init_config("--config " + dir + "/a/config.json --ffn " + s(ffn2), "init-cfg-d").mlp.d_ff, ffn2);
}

TEST(InitOptions, InvalidCombinationsAreOneLineErrors) {
  // Attention.
  const int64_t odd = pick({3, 5, 7});
  expect_error("--preset transformer-tiny --heads 8 --kv-heads " + s(odd), {"--kv-heads", "8 attention heads", s(odd)});
  expect_error("--preset transformer-tiny --heads " + s(odd), {"--heads", "d_model 64", "--head-dim"});
  expect_error("--preset transformer-tiny --heads " + s(odd) + " --head-dim 16", {"--heads", "key/value heads", "--kv-heads"});
  expect_error("--preset transformer-tiny --head-dim " + s(2 * odd), {"--head-dim", "RoPE"});
  expect_error("--preset transformer-tiny --kv-heads 0", {"--kv-heads", "0"});
  expect_error("--preset mamba2-tiny --heads 4", {"--heads", "no attention layers"});
  expect_error("--preset hybrid-tiny --pattern M-M- --kv-heads 2", {"--kv-heads", "no attention layers"});
  // MLP.
  expect_error("--preset transformer-tiny --activation swiglu", {"--activation", "llama"});
  expect_error("--preset transformer-tiny --model-type llama --activation gelu", {"--activation", "gated"});
  expect_error("--preset hybrid-tiny --activation tanh", {"--activation", "'tanh'", "relu2, gelu, swiglu"});
  expect_error("--preset mamba-tiny --ffn " + s(uniform(10, 99)), {"--ffn", "no MLP layers"});
  // Mamba.
  expect_error("--preset transformer-tiny --d-state " + s(uniform(2, 50)), {"--d-state", "no Mamba layers"});
  expect_error("--preset mamba-tiny --mamba-head-dim 16", {"--mamba-head-dim", "no Mamba-2 layers"});
  expect_error("--preset mamba-tiny --groups 2", {"--groups", "no Mamba-2 layers"});
  expect_error("--preset mamba2-tiny --mamba-head-dim " + s(pick({24, 40, 48, 96})), {"--mamba-head-dim", "128", "not a multiple"});
  expect_error("--preset mamba2-tiny --groups " + s(pick({3, 5, 6, 7})), {"--groups", "16 Mamba-2 heads"});
  expect_error("--preset mamba2-tiny --expand 3 --mamba-head-dim 16 --groups 16", {"--groups", "12 Mamba-2 heads"});
  expect_error("--preset mamba2-tiny --expand 0", {"--expand"});
  expect_error("--preset mamba2-tiny --conv 0", {"--conv"});
  // Embeddings and sources.
  expect_error("--preset mamba2-tiny --tie-embeddings maybe", {"--tie-embeddings", "yes or no"});
  expect_error("--preset mamba2-tiny --vocab 0", {"--vocab"});
  const std::string dir = temp_dir("init-cfg-bad");
  ASSERT_EQ(run_cli("init --preset mamba-tiny --config-only --out " + dir + "/a").exit_code, 0);
  expect_error("--config " + dir + "/a/config.json --preset mamba-tiny", {"--config", "not both"});
  expect_error("--config " + dir + "/a/config.json --layers 3", {"--config", "depth and width"});
  expect_error("--config " + dir + "/a/config.json --arch mamba2", {"--config", "mamba model, not mamba2"});
  expect_error("--config " + dir + "/missing.json", {"missing.json", "no such config file"});
  std::ofstream(dir + "/broken.json") << "{\"model_type\": \"mamba\", \"hidden_size\": ";
  expect_error("--config " + dir + "/broken.json", {"broken.json"});
}
