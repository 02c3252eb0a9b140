#include "config/model_config.h"

#include <cmath>

#include "config/pattern.h"
#include "core/error.h"
#include "core/limits.h"

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

// A size in [1, max]: positive, and small enough that the products of sizes cannot overflow.
static void require_size(int64_t v, int64_t max, const std::string& where, const std::string& field) {
  require_positive(v, where, field);
  limits::in_range(v, 1, max, where, field);
}

static void require_finite_positive(double v, const std::string& where, const std::string& field) {
  check(std::isfinite(v) && v > 0, where, field + " must be a positive finite number, got " + std::to_string(v));
}

namespace {

// Sums counts of parameters with checked arithmetic: a config whose model could not be counted
// in int64 (or is beyond kMaxParameters) is refused by validate() instead of wrapping around.
struct ParameterCount {
  std::string where;
  int64_t n = 0;
  void add(int64_t rows, int64_t cols = 1) {
    const int64_t p = limits::checked_mul(rows, cols, where, "the parameter count", limits::kMaxParameters);
    n = limits::checked_add(n, p, where, "the parameter count", limits::kMaxParameters);
  }
};

}  // namespace

void ModelConfig::validate(const std::string& where) const {
  validate_pattern(pattern, where + ": pattern");
  limits::in_range(n_layers(), 1, limits::kMaxLayers, where, "number of layers");
  require_size(vocab_size, limits::kMaxVocab, where, "vocab_size");
  require_size(d_model, limits::kMaxWidth, where, "hidden_size");
  require_finite_positive(norm_eps, where, "norm epsilon");
  for (const auto& [id, name] : {std::pair{bos_token_id, "bos_token_id"}, {eos_token_id, "eos_token_id"}, {pad_token_id, "pad_token_id"}})
    limits::in_range(id, -1, vocab_size - 1, where, name);
  check(mamba_version == 1 || mamba_version == 2, where, "mamba_version must be 1 or 2");
  if (count_symbol(pattern, kMambaSymbol) > 0) {
    if (mamba_version == 2) {
      const Mamba2Config& m = mamba2;
      require_size(m.n_heads, limits::kMaxWidth, where, "mamba num_heads");
      require_size(m.head_dim, limits::kMaxSmallDim, where, "mamba head_dim");
      require_size(m.n_groups, limits::kMaxWidth, where, "n_groups");
      require_size(m.d_state, limits::kMaxSmallDim, where, "state_size");
      require_size(m.d_conv, limits::kMaxSmallDim, where, "conv_kernel");
      require_size(m.chunk_size, limits::kMaxSmallDim, where, "chunk_size");
      require_size(m.d_inner, limits::kMaxWidth, where, "mamba intermediate size");
      require_finite_positive(m.dt_min, where, "time_step_min");
      require_finite_positive(m.dt_max, where, "time_step_max");
      require_finite_positive(m.dt_init_floor, where, "time_step_floor");
      check(m.dt_min <= m.dt_max, where, "time_step_min exceeds time_step_max");
      check(std::isfinite(m.dt_limit_lo) && m.dt_limit_lo >= 0 && !std::isnan(m.dt_limit_hi), where,
            "time_step_limit must be [finite lower >= 0, upper]");
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
      require_size(m.d_inner, limits::kMaxWidth, where, "mamba intermediate_size");
      require_size(m.d_state, limits::kMaxSmallDim, where, "state_size");
      require_size(m.d_conv, limits::kMaxSmallDim, where, "conv_kernel");
      require_size(m.dt_rank, limits::kMaxWidth, where, "time_step_rank");
      require_finite_positive(m.dt_min, where, "time_step_min");
      require_finite_positive(m.dt_max, where, "time_step_max");
      require_finite_positive(m.dt_init_floor, where, "time_step_floor");
      require_finite_positive(m.dt_scale, where, "time_step_scale");
      check(m.dt_min <= m.dt_max, where, "time_step_min exceeds time_step_max");
    }
  }
  if (count_symbol(pattern, kAttentionSymbol) > 0) {
    const AttentionConfig& a = attention;
    require_size(a.n_heads, limits::kMaxWidth, where, "num_attention_heads");
    require_size(a.n_kv_heads, limits::kMaxWidth, where, "num_key_value_heads");
    require_size(a.head_dim, limits::kMaxSmallDim, where, "head_dim");
    limits::in_range(a.n_heads * a.head_dim, 1, limits::kMaxWidth, where, "num_attention_heads * head_dim");
    require_finite_positive(a.rope_theta, where, "rope_theta");
    check(a.n_heads % a.n_kv_heads == 0, where,
          "num_attention_heads " + std::to_string(a.n_heads) + " is not a multiple of num_key_value_heads " +
              std::to_string(a.n_kv_heads));
    check(a.rotary_dim >= 0 && a.rotary_dim <= a.head_dim && a.rotary_dim % 2 == 0, where,
          "rotary dimension " + std::to_string(a.rotary_dim) + " must be even and at most head_dim " +
              std::to_string(a.head_dim));
  }
  if (count_symbol(pattern, kMlpSymbol) > 0) require_size(mlp.d_ff, limits::kMaxWidth, where, "intermediate_size");
  if (arch == Arch::Mamba || arch == Arch::Mamba2) {
    check(count_symbol(pattern, kMambaSymbol) == n_layers(), where,
          "a pure " + arch_name(arch) + " model has only M layers, pattern is \"" + pattern + "\"");
  }
  parameter_upper_bound(where);
}

int64_t ModelConfig::parameter_upper_bound(const std::string& where) const {
  // Every size below is already bounded (checked above in validate), so each product of two fits;
  // the sums are checked. The count errs on the high side (every optional bias counted).
  ParameterCount c{where};
  const int64_t D = d_model;
  c.add(vocab_size, D);
  if (!tie_embeddings) c.add(vocab_size, D);
  c.add(2, D);  // final norm
  for (char kind : pattern) {
    c.add(2, D);  // the block's norm
    if (kind == kMambaSymbol && mamba_version == 2) {
      const Mamba2Config& m = mamba2;
      c.add(D + 1, m.in_proj_width());
      c.add(m.conv_channels(), m.d_conv + 1);
      c.add(3, m.n_heads);
      c.add(m.d_inner + 1, D + 1);
    } else if (kind == kMambaSymbol) {
      const Mamba1Config& m = mamba1;
      c.add(D + 1, 2 * m.d_inner);
      c.add(m.d_inner, m.d_conv + 1);
      c.add(m.d_inner, m.dt_rank + 2 * m.d_state);
      c.add(m.dt_rank + 1, m.d_inner);
      c.add(m.d_inner, m.d_state + 1);
      c.add(m.d_inner + 1, D + 1);
    } else if (kind == kAttentionSymbol) {
      const AttentionConfig& a = attention;
      c.add(D + 1, (a.n_heads + 2 * a.n_kv_heads) * a.head_dim);
      c.add(a.n_heads * a.head_dim + 1, D);
    } else {
      c.add(D + 1, 3 * mlp.d_ff);
      c.add(mlp.d_ff + 1, D);
    }
  }
  return c.n;
}

int64_t ModelConfig::state_bytes(int64_t bytes_per_element) const {
  using limits::checked_add, limits::checked_mul;
  const std::string what = "the inference state size";
  int64_t per_layer = 0;
  if (mamba_version == 2) {
    const Mamba2Config& m = mamba2;
    per_layer = checked_add(checked_mul(m.conv_channels(), m.d_conv - 1, "config", what),
                            checked_mul(m.n_heads * m.head_dim, m.d_state, "config", what), "config", what);
  } else {
    const Mamba1Config& m = mamba1;
    per_layer = checked_mul(m.d_inner, m.d_conv - 1 + m.d_state, "config", what);
  }
  return checked_mul(checked_mul(per_layer, count_symbol(pattern, kMambaSymbol), "config", what), bytes_per_element, "config", what);
}

int64_t ModelConfig::kv_bytes_per_token(int64_t bytes_per_element) const {
  using limits::checked_mul;
  const std::string what = "the KV cache size";
  const int64_t per_layer = checked_mul(2 * attention.n_kv_heads, attention.head_dim, "config", what);
  return checked_mul(checked_mul(per_layer, count_symbol(pattern, kAttentionSymbol), "config", what), bytes_per_element, "config", what);
}

}  // namespace mambalm
