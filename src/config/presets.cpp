#include "config/presets.h"

#include <algorithm>
#include <cmath>

#include "config/pattern.h"
#include "core/error.h"
#include "core/limits.h"

namespace mambalm {

namespace {

constexpr double kStudyAttentionRatio = 0.08;
constexpr double kStudyMlpRatio = 0.5;
constexpr int64_t kStudyVocab = 256000;

std::string transformer_pattern(int64_t n_layers) {
  std::string p;
  for (int64_t i = 0; i < n_layers; ++i) p += "*-";
  return p;
}

int64_t largest_divisor_at_most(int64_t n, int64_t cap) {
  for (int64_t d = std::min(n, cap); d > 1; --d)
    if (n % d == 0) return d;
  return 1;
}

}  // namespace

ModelConfig default_config(Arch arch, int64_t d_model, int64_t n_layers, int64_t vocab_size) {
  // Range-checked before any product of them is formed (core/limits.h).
  limits::in_range(d_model, 1, limits::kMaxWidth, "config", "d_model");
  limits::in_range(n_layers, 1, arch == Arch::Transformer ? limits::kMaxLayers / 2 : limits::kMaxLayers, "config", "layers");
  limits::in_range(vocab_size, 1, limits::kMaxVocab, "config", "vocab size");
  ModelConfig c;
  c.arch = arch;
  c.d_model = d_model;
  c.vocab_size = vocab_size;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;
  c.tie_embeddings = false;
  c.mamba_version = arch == Arch::Mamba ? 1 : 2;

  Mamba2Config& m2 = c.mamba2;
  m2.d_inner = 2 * d_model;
  m2.head_dim = d_model >= 256 ? 64 : std::max<int64_t>(8, d_model / 8);
  check(m2.d_inner % m2.head_dim == 0, "config",
        "d_model " + std::to_string(d_model) + " gives a Mamba-2 width not divisible by head_dim " + std::to_string(m2.head_dim),
        "choose d_model as a multiple of 32");
  m2.n_heads = m2.d_inner / m2.head_dim;
  m2.n_groups = largest_divisor_at_most(m2.n_heads, 8);
  m2.d_state = d_model >= 1024 ? 128 : (d_model >= 256 ? 64 : 16);
  m2.chunk_size = d_model >= 1024 ? 128 : 64;

  Mamba1Config& m1 = c.mamba1;
  m1.d_inner = 2 * d_model;
  m1.d_state = 16;
  m1.dt_rank = (d_model + 15) / 16;

  AttentionConfig& a = c.attention;
  a.head_dim = d_model >= 1024 ? 128 : std::max<int64_t>(8, d_model / 4);
  check(d_model % a.head_dim == 0, "config",
        "d_model " + std::to_string(d_model) + " is not a multiple of the attention head size " + std::to_string(a.head_dim));
  a.n_heads = d_model / a.head_dim;
  a.n_kv_heads = largest_divisor_at_most(a.n_heads, 8);
  a.rotary_dim = 0;

  c.mlp.d_ff = 4 * d_model;
  c.mlp.activation = MlpActivation::ReluSquared;

  switch (arch) {
    case Arch::Transformer:
      // The study's Transformer: LayerNorm1p, squared ReLU, RoPE on half of each head.
      c.model_type = "nemotron";
      c.pattern = transformer_pattern(n_layers);
      c.norm = NormKind::LayerNorm1p;
      a.rotary_dim = a.head_dim / 2;
      c.max_position_embeddings = 4096;
      break;
    case Arch::Mamba:
      c.model_type = "mamba";
      c.pattern = std::string(static_cast<size_t>(n_layers), kMambaSymbol);
      break;
    case Arch::Mamba2:
      // The study's Mamba-2 normalises the gated RMSNorm per group of d_inner / n_groups channels
      // (Megatron-LM megatron/core/ssm/mamba_mixer.py, commit df61e60: group_size = d_inner / ngroups).
      // transformers' `mamba2` type normalises the whole width and has no field for groups, so the
      // presets are written as `nemotron_h` with an all-M pattern, which transformers loads with the
      // grouped norm; config_from_hf reads such a directory back as the Mamba-2 family
      // (docs/study-fidelity.md, "Mamba-2 as the study ran it").
      c.model_type = "nemotron_h";
      c.pattern = std::string(static_cast<size_t>(n_layers), kMambaSymbol);
      c.mamba2.norm_groups = c.mamba2.n_groups;
      c.mamba2.dt_limit_lo = c.mamba2.dt_min;  // what transformers' NemotronH computes
      c.max_position_embeddings = 4096;
      break;
    case Arch::Hybrid:
      c.model_type = "nemotron_h";
      c.pattern = allocate_pattern(n_layers, kStudyAttentionRatio, kStudyMlpRatio);
      c.mlp.activation = MlpActivation::Gelu;  // the study's hybrid; Nemotron-H later used relu2
      c.mamba2.norm_groups = c.mamba2.n_groups;
      c.mamba2.dt_limit_lo = c.mamba2.dt_min;  // what transformers' NemotronH computes
      c.max_position_embeddings = 4096;
      break;
  }
  return c;
}

void make_llama_style(ModelConfig& cfg) {
  check(cfg.arch == Arch::Transformer, "--model-type", "llama is a transformer layout");
  cfg.model_type = "llama";
  cfg.norm = NormKind::RMSNorm;
  cfg.mlp.activation = MlpActivation::SwiGLU;
  cfg.attention.rotary_dim = cfg.attention.head_dim;
  cfg.mlp.d_ff = (8 * cfg.d_model / 3 + 63) / 64 * 64;  // SwiGLU keeps ~8/3 d_model per matrix
}

void make_transformers_mamba2_style(ModelConfig& cfg) {
  check(cfg.arch == Arch::Mamba2, "--model-type", "mamba2 is the layout of a pure Mamba-2 model");
  cfg.model_type = "mamba2";
  cfg.mamba2.norm_groups = 1;      // transformers' Mamba2 normalises the whole width
  cfg.mamba2.dt_limit_lo = 0.0;    // and honours time_step_limit, (0, inf) by default
  cfg.mamba2.dt_limit_hi = INFINITY;
  cfg.max_position_embeddings = 0;  // the mamba2 config has no such field
}

namespace {

// The study's 8B models (Waleffe et al. 2024, table 1 and section 3).
ModelConfig study_8b(Arch arch) {
  int64_t layers = arch == Arch::Transformer ? 32 : 56;
  ModelConfig c = default_config(arch, 4096, layers, kStudyVocab);
  c.mamba2.head_dim = 64;
  c.mamba2.n_heads = 128;
  c.mamba2.n_groups = 8;
  c.mamba2.d_state = 128;
  c.mamba2.chunk_size = 128;
  // Grouped gated norm (8 groups of 1024 channels) for both Mamba-2 models, as the study's layer.
  if (arch == Arch::Hybrid || arch == Arch::Mamba2) c.mamba2.norm_groups = 8;
  c.attention.n_heads = 32;
  // The hybrid's release script passes --group-query-attention --num-query-groups 8; the
  // Transformer's (examples/mamba/run_text_gen_server_8b_gpt3.sh) passes --num-attention-heads 32
  // and no grouping flag, so its attention is full multi-head: 32 KV heads.
  c.attention.n_kv_heads = arch == Arch::Transformer ? 32 : 8;
  c.attention.head_dim = 128;
  c.mlp.d_ff = 16384;
  return c;
}

// The ~800M hybrid of the study's training example (Megatron-LM examples/mamba/train.sh,
// MODEL_SCALE=800M): 48 layers of width 1024, 16 attention heads (so heads of 64) in 8 query
// groups, the study's ratios, and Megatron's Mamba-2 defaults (state 128, heads of 64, 8 groups).
ModelConfig study_800m_hybrid() {
  ModelConfig c = default_config(Arch::Hybrid, 1024, 48, kStudyVocab);
  c.attention.n_heads = 16;
  c.attention.head_dim = 64;
  c.attention.n_kv_heads = 8;
  c.mamba2.head_dim = 64;
  c.mamba2.n_heads = 32;
  c.mamba2.n_groups = 8;
  c.mamba2.norm_groups = 8;
  c.mamba2.d_state = 128;
  c.mamba2.chunk_size = 128;
  return c;
}

// The long-context variants of the study (arXiv 2406.07887, long-context section: the hybrid and
// the Transformer extended to 16K, 32K and 128K tokens by continued pretraining; the released
// checkpoints nvidia/mamba2-hybrid-8b-3t-32k and -128k say "extended to support 32K / 128K sequence
// lengths through continued pretraining on 50B tokens"). The shape is the 8B model's; what changes
// is the sequence length, kept as max_position_embeddings. The hybrid has no position embedding, so
// nothing else changes. The Transformer's rotary base stays at 10,000: the study's code release
// (Megatron-LM commit df61e60, pretrain_gpt.py) has no rotary-base option and builds RoPE with
// GPTModel's default base of 10,000 (docs/study-fidelity.md says what could not be confirmed).
constexpr double kLongContextRopeBase = 10000.0;

ModelConfig study_long_context(Arch arch, int64_t context) {
  ModelConfig c = study_8b(arch);
  c.max_position_embeddings = context;
  if (arch == Arch::Transformer) c.attention.rope_theta = kLongContextRopeBase;
  return c;
}

struct Preset {
  const char* name;
  ModelConfig (*make)();
};

const Preset kPresets[] = {
    {"hybrid-8b", [] { return study_8b(Arch::Hybrid); }},
    {"mamba2-8b", [] { return study_8b(Arch::Mamba2); }},
    {"mamba-8b", [] { return study_8b(Arch::Mamba); }},
    {"transformer-8b", [] { return study_8b(Arch::Transformer); }},
    // The 8B Transformer with the hybrid's grouped-query attention (8 KV groups): not the study's
    // baseline, kept for comparisons at equal KV-cache layout.
    {"transformer-8b-gqa", [] {
       ModelConfig c = study_8b(Arch::Transformer);
       c.attention.n_kv_heads = 8;
       return c;
     }},
    {"hybrid-8b-16k", [] { return study_long_context(Arch::Hybrid, 16384); }},
    {"hybrid-8b-32k", [] { return study_long_context(Arch::Hybrid, 32768); }},
    {"hybrid-8b-128k", [] { return study_long_context(Arch::Hybrid, 131072); }},
    {"transformer-8b-16k", [] { return study_long_context(Arch::Transformer, 16384); }},
    {"transformer-8b-32k", [] { return study_long_context(Arch::Transformer, 32768); }},
    {"transformer-8b-128k", [] { return study_long_context(Arch::Transformer, 131072); }},
    {"hybrid-800m", study_800m_hybrid},
    // Parameter-matched sizes (docs/study-fidelity.md): at each size the four families share the
    // width and differ in depth so that their non-embedding parameters agree within 5%
    // (tests/test_presets_matched.cpp). The hybrid's depth sets the size; pure Mamba-2 needs
    // about as many blocks, Mamba about 1.2x as many, the Transformer about 0.6x as many pairs.
    // tiny: ~0.4M non-embedding parameters over a byte vocabulary, for unit tests (width 64
    // keeps the deeper matched stacks as cheap to run as the unmatched ones were).
    {"hybrid-tiny", [] { return default_config(Arch::Hybrid, 64, 11, 256); }},
    {"mamba2-tiny", [] { return default_config(Arch::Mamba2, 64, 9, 256); }},
    {"mamba-tiny", [] { return default_config(Arch::Mamba, 64, 12, 256); }},
    {"transformer-tiny", [] { return default_config(Arch::Transformer, 64, 8, 256); }},
    // ~1.3-1.7B: the shapes of the PyTorch training peer (../shared/peers/train_anchor.py): d_model
    // 2048, GPT-2's padded vocabulary, the 48-layer Megatron pattern, pure Mamba-2 with 48 layers,
    // and 24 attention+MLP pairs (GQA 16/8 heads of 128, GeLU MLP 8192, RMSNorm, no position
    // embedding: the peer's Transformer is the hybrid's blocks without Mamba).
    {"hybrid-48l", [] { return default_config(Arch::Hybrid, 2048, 48, 50304); }},
    {"mamba2-48l", [] { return default_config(Arch::Mamba2, 2048, 48, 50304); }},
    {"transformer-24x", [] {
       ModelConfig c = default_config(Arch::Hybrid, 2048, 48, 50304);
       c.pattern = transformer_pattern(24);
       return c;
     }},
    // small: ~48M non-embedding parameters with a 32K vocabulary: fits a laptop, trains on one
    // GPU in hours. hybrid-small's shape is the README's CPU-vs-GPU training curve; keep it.
    {"hybrid-small", [] { return default_config(Arch::Hybrid, 512, 24, 32000); }},
    {"mamba2-small", [] { return default_config(Arch::Mamba2, 512, 23, 32000); }},
    {"mamba-small", [] { return default_config(Arch::Mamba, 512, 29, 32000); }},
    {"transformer-small", [] { return default_config(Arch::Transformer, 512, 15, 32000); }},
    // ~26M: the small size at about half the depth, sized so that each family trains on 100M
    // tokens inside one 10-minute call on one H200 (`mambalm study --scale small`, docs/study.md).
    {"hybrid-26m", [] { return default_config(Arch::Hybrid, 512, 13, 32000); }},
    {"mamba2-26m", [] { return default_config(Arch::Mamba2, 512, 12, 32000); }},
    {"mamba-26m", [] { return default_config(Arch::Mamba, 512, 15, 32000); }},
    {"transformer-26m", [] { return default_config(Arch::Transformer, 512, 8, 32000); }},
    // base: ~190M non-embedding parameters at width 1024 (heads of 128, Mamba-2 state 128).
    {"hybrid-base", [] { return default_config(Arch::Hybrid, 1024, 24, 32000); }},
    {"mamba2-base", [] { return default_config(Arch::Mamba2, 1024, 23, 32000); }},
    {"mamba-base", [] { return default_config(Arch::Mamba, 1024, 29, 32000); }},
    {"transformer-base", [] { return default_config(Arch::Transformer, 1024, 15, 32000); }},
};

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

ModelConfig preset_config(const std::string& name) {
  for (const Preset& p : kPresets)
    if (name == p.name) return p.make();
  std::string valid;
  for (const std::string& n : preset_names()) valid += (valid.empty() ? "" : ", ") + n;
  fail("--preset", "unknown preset '" + name + "'", "valid: " + valid);
}

}  // namespace mambalm
