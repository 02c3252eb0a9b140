// The typed model configuration: one struct per layer kind plus the model-level settings.
// Every size in the engine comes from here; hf_config.cpp maps it to and from config.json.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

namespace mambalm {

// The study's four families. The family decides the default HF model_type and which
// symbols a pattern may use; the layer kinds themselves are the pattern's symbols.
enum class Arch { Transformer, Mamba, Mamba2, Hybrid };
enum class NormKind { RMSNorm, LayerNorm1p };
enum class MlpActivation { ReluSquared, Gelu, SwiGLU };

std::string arch_name(Arch a);            // "transformer", "mamba", "mamba2", "hybrid"
Arch parse_arch(const std::string& name);  // throws listing the valid names
std::string activation_name(MlpActivation a);  // "relu2", "gelu", "silu" (HF's spellings)

// Mamba-1 selective-SSM mixer ('M' layers when mamba_version == 1).
struct Mamba1Config {
  int64_t d_inner = 0;   // expand * d_model
  int64_t d_state = 16;  // N
  int64_t d_conv = 4;
  int64_t dt_rank = 0;   // ceil(d_model / 16) when "auto"
  bool conv_bias = true;
  bool proj_bias = false;  // in_proj / out_proj bias
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4, dt_scale = 1.0;
};

// Mamba-2 (SSD) mixer ('M' layers when mamba_version == 2).
struct Mamba2Config {
  int64_t d_inner = 0;   // n_heads * head_dim == expand * d_model
  int64_t n_heads = 0;   // H
  int64_t head_dim = 64;  // P
  int64_t n_groups = 1;  // G (B and C are shared by H/G heads)
  int64_t d_state = 128;  // N
  int64_t d_conv = 4;
  int64_t chunk_size = 256;
  bool conv_bias = true;
  bool proj_bias = false;
  double dt_min = 1e-3, dt_max = 1e-1, dt_init_floor = 1e-4;
  // The gated RMSNorm normalises groups of d_inner / norm_groups channels. mamba_ssm and
  // NemotronH use n_groups; transformers' Mamba2 reference path normalises all of d_inner (1).
  int64_t norm_groups = 1;
  // dt is clamped to [dt_limit_lo, dt_limit_hi] after softplus (mamba2: time_step_limit;
  // nemotron_h: [time_step_min, inf), as transformers computes it).
  double dt_limit_lo = 0.0, dt_limit_hi = std::numeric_limits<double>::infinity();

  int64_t conv_channels() const { return d_inner + 2 * n_groups * d_state; }  // x, B, C
  int64_t in_proj_width() const { return 2 * d_inner + 2 * n_groups * d_state + n_heads; }  // z, x, B, C, dt
};

struct AttentionConfig {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // GQA groups; == n_heads for MHA
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;  // channels of each head that are rotated; 0 = no position embedding
  double rope_theta = 10000.0;
  bool bias = false;  // q/k/v/o projections
};

struct MlpConfig {
  int64_t d_ff = 0;
  MlpActivation activation = MlpActivation::ReluSquared;
  bool bias = false;
};

struct ModelConfig {
  Arch arch = Arch::Hybrid;
  std::string model_type;  // the HF model_type this directory is read and written as
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  std::string pattern;  // one symbol per residual block: M, *, -
  int mamba_version = 2;  // what 'M' means: 1 = Mamba, 2 = Mamba-2
  NormKind norm = NormKind::RMSNorm;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  int64_t max_position_embeddings = 0;  // 0 = unbounded (no learned positions anyway)
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;

  Mamba1Config mamba1;
  Mamba2Config mamba2;
  AttentionConfig attention;
  MlpConfig mlp;

  int64_t n_layers() const { return static_cast<int64_t>(pattern.size()); }
  // Throws naming `where` (the config file) and the field when sizes disagree or lie outside
  // core/limits.h (so every product of sizes made later fits in int64).
  void validate(const std::string& where) const;
  // At least the number of parameters of the model (every optional bias counted), computed with
  // checked arithmetic; throws when beyond limits::kMaxParameters. For memory checks before
  // anything is allocated.
  int64_t parameter_upper_bound(const std::string& where = "config") const;

  // Per-sequence inference memory in fp32: conv + SSM state of every M layer.
  int64_t state_bytes(int64_t bytes_per_element = 4) const;
  // KV-cache growth per token over all attention layers.
  int64_t kv_bytes_per_token(int64_t bytes_per_element = 4) const;
};

}  // namespace mambalm
