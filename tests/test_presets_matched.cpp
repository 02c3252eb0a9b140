// The study's presets (issue 12): the 8B Transformer with full multi-head attention, the ~800M
// hybrid of the training example, and <arch>-tiny/-small/-base matched in non-embedding
// parameters across the four families (docs/study-fidelity.md prints the table).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "config/pattern.h"
#include "config/presets.h"
#include "model/model.h"

using namespace mambalm;

namespace {

// Everything but the token embedding and the LM head (one matrix when tied).
int64_t non_embedding_parameters(const ModelConfig& c) {
  return Model(c).parameter_count() - c.vocab_size * c.d_model * (c.tie_embeddings ? 1 : 2);
}

}  // namespace

TEST(StudyPresets, TransformerEightBIsFullMultiHeadAttention) {
  ModelConfig t = preset_config("transformer-8b");
  EXPECT_EQ(t.model_type, "nemotron");
  EXPECT_EQ(t.n_layers(), 64);  // 32 attention + 32 MLP blocks
  EXPECT_EQ(t.attention.n_heads, 32);
  EXPECT_EQ(t.attention.n_kv_heads, 32);
  EXPECT_EQ(t.attention.head_dim, 128);
  EXPECT_EQ(t.attention.rotary_dim, 64);  // --rotary-percent 0.5
  EXPECT_EQ(t.mlp.d_ff, 16384);
  // 512 KiB of bf16 KV cache per token over 32 layers (2 * 32 heads * 128 * 2 bytes per layer).
  EXPECT_EQ(t.kv_bytes_per_token(2), 512 * 1024);
  const int64_t n = Model(t).parameter_count();
  EXPECT_GT(n, 8.5e9);
  EXPECT_LT(n, 8.6e9);  // "about 8.5B"
  // 4 * 4096^2 attention + 2 * 4096 * 16384 MLP per layer pair, plus norms, over 32 pairs.
  EXPECT_EQ(non_embedding_parameters(t), 32 * (4 * 4096LL * 4096 + 2 * 4096LL * 16384 + 4 * 4096) + 2 * 4096);

  ModelConfig g = preset_config("transformer-8b-gqa");
  EXPECT_EQ(g.attention.n_heads, 32);
  EXPECT_EQ(g.attention.n_kv_heads, 8);
  EXPECT_EQ(g.kv_bytes_per_token(2), 128 * 1024);
  EXPECT_EQ(n - Model(g).parameter_count(), 32 * 2 * 4096LL * (32 - 8) * 128);  // the K and V projections saved
  // The hybrid keeps its 8 query groups.
  EXPECT_EQ(preset_config("hybrid-8b").attention.n_kv_heads, 8);
}

TEST(StudyPresets, HybridOfTheTrainingExample) {
  ModelConfig h = preset_config("hybrid-800m");
  EXPECT_EQ(h.d_model, 1024);
  EXPECT_EQ(h.pattern, "M-M-M--M-*M-M-M-M--*M-M-M-M-*M--M-M-M-*M-M--M-M-");
  EXPECT_EQ(h.attention.n_heads, 16);
  EXPECT_EQ(h.attention.head_dim, 64);
  EXPECT_EQ(h.attention.n_kv_heads, 8);
  EXPECT_EQ(h.attention.rotary_dim, 0);
  EXPECT_EQ(h.mamba2.n_heads, 32);
  EXPECT_EQ(h.mamba2.n_groups, 8);
  EXPECT_EQ(h.mamba2.norm_groups, 8);
  EXPECT_EQ(h.mamba2.d_state, 128);
  EXPECT_EQ(h.mlp.d_ff, 4096);
}

TEST(StudyPresets, SizesMatchedAcrossFamiliesWithinFivePercent) {
  std::printf("| size | hybrid | mamba2 | mamba | transformer | max/min |\n|---|---|---|---|---|---|\n");
  for (const std::string size : {"tiny", "26m", "small", "base"}) {
    std::vector<int64_t> counts;
    const ModelConfig ref = preset_config("hybrid-" + size);
    for (const std::string arch : {"hybrid", "mamba2", "mamba", "transformer"}) {
      const ModelConfig c = preset_config(arch + "-" + size);
      EXPECT_EQ(c.d_model, ref.d_model) << arch << "-" << size;
      EXPECT_EQ(c.vocab_size, ref.vocab_size) << arch << "-" << size;
      EXPECT_EQ(c.tie_embeddings, ref.tie_embeddings) << arch << "-" << size;
      counts.push_back(non_embedding_parameters(c));
    }
    const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
    const double spread = static_cast<double>(*hi) / static_cast<double>(*lo);
    std::printf("| %s | %lld | %lld | %lld | %lld | %.4f |\n", size.c_str(), static_cast<long long>(counts[0]),
                static_cast<long long>(counts[1]), static_cast<long long>(counts[2]), static_cast<long long>(counts[3]), spread);
    EXPECT_LE(spread, 1.05) << size;
  }
  // The sizes grow: tiny < small < base, each family.
  for (const std::string arch : {"hybrid", "mamba2", "mamba", "transformer"})
    EXPECT_LT(non_embedding_parameters(preset_config(arch + "-small")), non_embedding_parameters(preset_config(arch + "-base"))) << arch;
}

TEST(StudyPresets, HybridSmallKeepsTheShapeOfTheReadmeCurve) {
  // The README's CPU-vs-GPU training curve and bench/train_compare.sh use this exact model.
  ModelConfig h = preset_config("hybrid-small");
  EXPECT_EQ(h.d_model, 512);
  EXPECT_EQ(h.n_layers(), 24);
  EXPECT_EQ(h.vocab_size, 32000);
  EXPECT_EQ(h.pattern, allocate_pattern(24, 0.08, 0.5));
  EXPECT_EQ(non_embedding_parameters(h), 48442336);
}
