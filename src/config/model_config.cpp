#include "config/model_config.h"

#include "config/pattern.h"
#include "core/error.h"

namespace mambalm {

std::string arch_name(Arch a) {
  switch (a) {
    case Arch::Transformer: return "transformer";
    case Arch::Mamba: return "mamba";
    case Arch::Mamba2: return "mamba2";
    case Arch::Hybrid: return "hybrid";
  }
  return "?";
}

Arch parse_arch(const std::string& name) {
  if (name == "transformer") return Arch::Transformer;
  if (name == "mamba") return Arch::Mamba;
  if (name == "mamba2") return Arch::Mamba2;
  if (name == "hybrid") return Arch::Hybrid;
  fail("--arch", "unknown architecture '" + name + "'", "valid: transformer, mamba, mamba2, hybrid");
}

std::string activation_name(MlpActivation a) {
  switch (a) {
    case MlpActivation::ReluSquared: return "relu2";
    case MlpActivation::Gelu: return "gelu";
    case MlpActivation::SwiGLU: return "silu";
  }
  return "?";
}

static void require_positive(int64_t v, const std::string& where, const std::string& field) {
  check(v > 0, where, field + " must be positive, got " + std::to_string(v));
}

void ModelConfig::validate(const std::string& where) const {
  validate_pattern(pattern, where + ": pattern");
  require_positive(vocab_size, where, "vocab_size");
  require_positive(d_model, where, "hidden_size");
  check(norm_eps > 0, where, "norm epsilon must be positive");
  check(mamba_version == 1 || mamba_version == 2, where, "mamba_version must be 1 or 2");
  if (count_symbol(pattern, kMambaSymbol) > 0) {
    if (mamba_version == 2) {
      const Mamba2Config& m = mamba2;
      require_positive(m.n_heads, where, "mamba num_heads");
      require_positive(m.head_dim, where, "mamba head_dim");
      require_positive(m.n_groups, where, "n_groups");
      require_positive(m.d_state, where, "state_size");
      require_positive(m.d_conv, where, "conv_kernel");
      require_positive(m.chunk_size, where, "chunk_size");
      check(m.d_inner == m.n_heads * m.head_dim, where,
            "mamba intermediate size " + std::to_string(m.d_inner) + " != num_heads * head_dim = " +
                std::to_string(m.n_heads) + " * " + std::to_string(m.head_dim));
      check(m.n_heads % m.n_groups == 0, where,
            "mamba num_heads " + std::to_string(m.n_heads) + " is not a multiple of n_groups " + std::to_string(m.n_groups));
      check(m.norm_groups > 0 && m.d_inner % m.norm_groups == 0, where,
            "gated norm groups " + std::to_string(m.norm_groups) + " do not divide the mamba width " + std::to_string(m.d_inner));
      check(m.dt_limit_lo <= m.dt_limit_hi, where, "time_step_limit lower bound exceeds upper bound");
    } else {
      const Mamba1Config& m = mamba1;
      require_positive(m.d_inner, where, "mamba intermediate_size");
      require_positive(m.d_state, where, "state_size");
      require_positive(m.d_conv, where, "conv_kernel");
      require_positive(m.dt_rank, where, "time_step_rank");
    }
  }
  if (count_symbol(pattern, kAttentionSymbol) > 0) {
    const AttentionConfig& a = attention;
    require_positive(a.n_heads, where, "num_attention_heads");
    require_positive(a.n_kv_heads, where, "num_key_value_heads");
    require_positive(a.head_dim, where, "head_dim");
    check(a.n_heads % a.n_kv_heads == 0, where,
          "num_attention_heads " + std::to_string(a.n_heads) + " is not a multiple of num_key_value_heads " +
              std::to_string(a.n_kv_heads));
    check(a.rotary_dim >= 0 && a.rotary_dim <= a.head_dim && a.rotary_dim % 2 == 0, where,
          "rotary dimension " + std::to_string(a.rotary_dim) + " must be even and at most head_dim " +
              std::to_string(a.head_dim));
  }
  if (count_symbol(pattern, kMlpSymbol) > 0) require_positive(mlp.d_ff, where, "intermediate_size");
  if (arch == Arch::Mamba || arch == Arch::Mamba2) {
    check(count_symbol(pattern, kMambaSymbol) == n_layers(), where,
          "a pure " + arch_name(arch) + " model has only M layers, pattern is \"" + pattern + "\"");
  }
}

int64_t ModelConfig::state_bytes(int64_t bytes_per_element) const {
  int64_t per_layer = 0;
  if (mamba_version == 2) {
    const Mamba2Config& m = mamba2;
    per_layer = m.conv_channels() * (m.d_conv - 1) + m.n_heads * m.head_dim * m.d_state;
  } else {
    const Mamba1Config& m = mamba1;
    per_layer = m.d_inner * (m.d_conv - 1) + m.d_inner * m.d_state;
  }
  return per_layer * count_symbol(pattern, kMambaSymbol) * bytes_per_element;
}

int64_t ModelConfig::kv_bytes_per_token(int64_t bytes_per_element) const {
  return 2 * attention.n_kv_heads * attention.head_dim * count_symbol(pattern, kAttentionSymbol) * bytes_per_element;
}

}  // namespace mambalm
