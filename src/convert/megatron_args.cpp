#include "convert/megatron_args.h"

#include <cmath>
#include <limits>

#include "config/pattern.h"
#include "core/error.h"

namespace mambalm::convert {

using nlohmann::json;

namespace {

// The study's Megatron (core_r0.8.0, mid-2024) had no arguments for these Mamba-2 sizes: the
// mixer's defaults were used (megatron/core/ssm/mamba_mixer.py: d_state 128, headdim 64,
// ngroups 8 passed down by MambaStack, d_conv 4, expand 2). Later versions save
// mamba_state_dim, mamba_head_dim and mamba_num_groups.
constexpr int64_t kStudyMambaGroups = 8;

struct ArgReader {
  const json& args;
  std::string where;

  const json* find(const char* name) const {
    auto it = args.find(name);
    return it == args.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const char* name, std::optional<int64_t> fallback = std::nullopt) const {
    const json* v = find(name);
    if (!v) {
      check(fallback.has_value(), where, "the saved arguments lack '" + std::string(name) + "'", "is this a Megatron-LM checkpoint?");
      return *fallback;
    }
    check(v->is_number_integer(), where, "argument '" + std::string(name) + "' is " + v->dump() + ", not an integer");
    return v->get<int64_t>();
  }
  std::optional<int64_t> maybe_integer(const char* name) const {
    if (!find(name)) return std::nullopt;
    return integer(name);
  }
  double real(const char* name, double fallback) const {
    const json* v = find(name);
    if (!v) return fallback;
    check(v->is_number(), where, "argument '" + std::string(name) + "' is " + v->dump() + ", not a number");
    return v->get<double>();
  }
  bool flag(const char* name, bool fallback = false) const {
    const json* v = find(name);
    if (!v) return fallback;
    check(v->is_boolean(), where, "argument '" + std::string(name) + "' is " + v->dump() + ", not true or false");
    return v->get<bool>();
  }
  std::string text(const char* name, const std::string& fallback = "") const {
    const json* v = find(name);
    if (!v) return fallback;
    check(v->is_string(), where, "argument '" + std::string(name) + "' is " + v->dump() + ", not a string");
    return v->get<std::string>();
  }
};

std::string num(int64_t v) { return std::to_string(v); }

struct Shapes {
  const MegatronStateView& state;
  std::string where;

  bool has(const std::string& name) const { return state.rank_shape(name).has_value(); }
  Shape of(const std::string& name) const {
    auto s = state.rank_shape(name);
    check(s.has_value(), where, "tensor '" + name + "' is missing from the state dict");
    return *s;
  }
  // The whole of a tensor cut along dim 0 among the ranks.
  int64_t rows(const std::string& name) const { return of(name).at(0) * state.tp; }
};

// Which pattern symbol the tensors of Megatron layer i make.
char layer_symbol(const Shapes& s, int64_t i) {
  const std::string layer = "decoder.layers." + num(i) + ".";
  if (s.has(layer + "mixer.A_log")) return kMambaSymbol;
  if (s.has(layer + "self_attention.linear_qkv.weight")) return kAttentionSymbol;
  if (s.has(layer + "mlp.linear_fc1.weight")) return kMlpSymbol;
  fail(s.where, "layer " + num(i) + " has neither a Mamba mixer, attention nor an MLP (no '" + layer + "mixer.A_log', ...)",
       "pipeline-parallel checkpoints hold only some layers per file; they are not supported yet");
}

void read_mamba2(const ArgReader& a, const Shapes& s, int64_t layer, MegatronModelInfo& info) {
  Mamba2Config& m = info.cfg.mamba2;
  const std::string mx = "decoder.layers." + num(layer) + ".mixer.";
  m.n_heads = s.rows(mx + "A_log");
  m.d_inner = s.rows(mx + "norm.weight");
  const Shape conv = s.of(mx + "conv1d.weight");
  check(conv.size() == 3 && conv[1] == 1, s.where, "'" + mx + "conv1d.weight' has shape " + shape_str(conv) + ", expected [channels, 1, width]");
  m.d_conv = conv[2];
  const int64_t conv_channels = conv[0] * s.state.tp;
  check(m.d_inner % m.n_heads == 0, s.where, "Mamba-2 width " + num(m.d_inner) + " is not a multiple of its " + num(m.n_heads) + " heads");
  m.head_dim = m.d_inner / m.n_heads;
  const int64_t two_gn = conv_channels - m.d_inner;  // conv1d holds [x, B, C]
  check(two_gn > 0 && two_gn % 2 == 0, s.where, "conv1d's " + num(conv_channels) + " channels do not hold x (" + num(m.d_inner) + ") plus B and C");
  const std::optional<int64_t> groups = a.maybe_integer("mamba_num_groups");
  m.n_groups = groups.value_or(kStudyMambaGroups);
  if (!groups)
    info.notes.push_back("Mamba-2 groups: " + num(m.n_groups) + " (no mamba_num_groups in the saved arguments; the study's Megatron default)");
  check((two_gn / 2) % m.n_groups == 0, s.where, "B and C's " + num(two_gn / 2) + " channels are not a multiple of " + num(m.n_groups) + " groups",
        "the checkpoint's mamba_num_groups is wrong or missing");
  m.d_state = two_gn / 2 / m.n_groups;
  if (auto state_dim = a.maybe_integer("mamba_state_dim"))
    check(*state_dim == m.d_state, s.where, "mamba_state_dim " + num(*state_dim) + " but the tensors show " + num(m.d_state));
  if (auto head_dim = a.maybe_integer("mamba_head_dim"))
    check(*head_dim == m.head_dim, s.where, "mamba_head_dim " + num(*head_dim) + " but the tensors show " + num(m.head_dim));
  check(s.rows(mx + "in_proj.weight") == m.in_proj_width(), s.where,
        "in_proj has " + num(s.rows(mx + "in_proj.weight")) + " rows, expected z, x, B, C, dt = " + num(m.in_proj_width()));
  m.conv_bias = s.has(mx + "conv1d.bias");
  m.proj_bias = s.has(mx + "in_proj.bias");
  m.norm_groups = m.n_groups;  // the mixer's gated RMSNorm has group_size d_inner / ngroups
  m.dt_limit_lo = 0.0;         // and the scan is called without a dt clamp
  m.dt_limit_hi = std::numeric_limits<double>::infinity();
}

void read_attention(const ArgReader& a, const Shapes& s, const std::string& qkv, ModelConfig& cfg) {
  AttentionConfig& at = cfg.attention;
  at.n_heads = a.integer("num_attention_heads");
  at.n_kv_heads = a.flag("group_query_attention") ? a.integer("num_query_groups") : at.n_heads;
  at.head_dim = a.integer("kv_channels", cfg.d_model / std::max<int64_t>(1, at.n_heads));
  check(at.n_heads > 0 && at.n_kv_heads > 0 && at.n_heads % at.n_kv_heads == 0, s.where,
        num(at.n_heads) + " attention heads are not a multiple of " + num(at.n_kv_heads) + " query groups");
  const int64_t rows = s.rows(qkv);
  check(rows == (at.n_heads + 2 * at.n_kv_heads) * at.head_dim, s.where,
        "'" + qkv + "' has " + num(rows) + " rows; " + num(at.n_heads) + " heads, " + num(at.n_kv_heads) + " query groups of " +
            num(at.head_dim) + " need " + num((at.n_heads + 2 * at.n_kv_heads) * at.head_dim));
  at.bias = a.flag("add_bias_linear", true) && s.has(qkv.substr(0, qkv.size() - 6) + "bias");
}

void read_mlp(const ArgReader& a, const Shapes& s, const std::string& fc1, ModelConfig& cfg) {
  check(!a.flag("swiglu") && !a.flag("gated_linear_unit"), s.where, "gated (SwiGLU) MLPs are not supported",
        "the study's models use squared ReLU");
  cfg.mlp.d_ff = a.integer("ffn_hidden_size", 4 * cfg.d_model);
  check(s.rows(fc1) == cfg.mlp.d_ff, s.where, "'" + fc1 + "' has " + num(s.rows(fc1)) + " rows but ffn_hidden_size is " + num(cfg.mlp.d_ff));
  // Megatron's default activation is GeLU (erf form, as HF's "gelu").
  cfg.mlp.activation = a.flag("squared_relu") ? MlpActivation::ReluSquared : MlpActivation::Gelu;
  cfg.mlp.bias = s.has(fc1.substr(0, fc1.size() - 6) + "bias");
}

}  // namespace

MegatronModelInfo config_from_megatron(const json& args, const MegatronStateView& state, const std::string& where) {
  check(args.is_object(), where, "the checkpoint's 'args' is not a Namespace", "it was not saved by Megatron-LM's training loop");
  ArgReader a{args, where};
  Shapes s{state, where};
  MegatronModelInfo info;
  ModelConfig& c = info.cfg;
  check(a.integer("pipeline_model_parallel_size", 1) == 1, where,
        "pipeline-parallel checkpoints (pipeline_model_parallel_size " + num(a.integer("pipeline_model_parallel_size", 1)) + ") are not supported yet",
        "merge the pipeline stages with Megatron-LM's tools/checkpoint/convert.py first");
  if (auto saved_tp = a.maybe_integer("tensor_model_parallel_size"))
    check(*saved_tp == state.tp, where, "saved with tensor_model_parallel_size " + num(*saved_tp) + " but " + num(state.tp) + " mp_rank files were found");

  c.d_model = a.integer("hidden_size");
  const Shape emb = s.of("embedding.word_embeddings.weight");
  check(emb.size() == 2 && emb[1] == c.d_model, where, "the embedding has shape " + shape_str(emb) + ", hidden_size is " + num(c.d_model));
  c.vocab_size = emb[0] * state.tp;
  if (auto padded = a.maybe_integer("padded_vocab_size"))
    check(*padded == c.vocab_size, where, "padded_vocab_size " + num(*padded) + " but the embedding has " + num(c.vocab_size) + " rows");
  const bool untied = s.has("output_layer.weight");
  check(untied || !a.flag("untie_embeddings_and_output_weights"), where, "untie_embeddings_and_output_weights is set but there is no output_layer.weight");
  c.tie_embeddings = !untied;
  c.norm_eps = a.real("norm_epsilon", a.real("layernorm_epsilon", 1e-5));
  c.max_position_embeddings = a.integer("max_position_embeddings", a.integer("seq_length", 0));
  const int64_t layers = a.integer("num_layers");
  check(layers >= 1, where, "num_layers is " + num(layers));
  const std::string normalization = a.text("normalization", "LayerNorm");
  const std::string position = a.text("position_embedding_type", "learned_absolute");
  info.spec = MegatronSpec::Local;

  if (s.has("decoder.final_norm.weight")) {
    // MambaModel: one pattern symbol per layer.
    c.model_type = "nemotron_h";
    c.mamba_version = 2;
    c.pattern.clear();
    for (int64_t i = 0; i < layers; ++i) c.pattern += layer_symbol(s, i);
    const std::string saved_pattern = a.text("hybrid_override_pattern");
    const std::string expected = !saved_pattern.empty() ? saved_pattern
                                                        : allocate_pattern(layers, a.real("hybrid_attention_ratio", 0.0), a.real("hybrid_mlp_ratio", 0.0));
    check(expected == c.pattern, where, "the layers' tensors make the pattern " + c.pattern + " but the saved arguments give " + expected);
    c.arch = count_symbol(c.pattern, kMambaSymbol) == layers ? Arch::Mamba2 : Arch::Hybrid;
    check(normalization == "RMSNorm", where, "a Mamba stack with " + normalization + " is not supported", "the study's use RMSNorm");
    c.norm = NormKind::RMSNorm;
    check(position == "none", where, "position_embedding_type '" + position + "' in a Mamba stack is not supported",
          "the study's hybrids use no position embedding");
    for (int64_t i = 0; i < layers; ++i) {
      const std::string layer = "decoder.layers." + num(i) + ".";
      const char symbol = c.pattern[static_cast<size_t>(i)];
      if (symbol == kMambaSymbol && c.mamba2.n_heads == 0) read_mamba2(a, s, i, info);
      if (symbol == kAttentionSymbol && c.attention.n_heads == 0) read_attention(a, s, layer + "self_attention.linear_qkv.weight", c);
      if (symbol == kMlpSymbol && c.mlp.d_ff == 0) read_mlp(a, s, layer + "mlp.linear_fc1.weight", c);
      if (s.has(layer + "mixer.in_proj.layer_norm_weight") || s.has(layer + "self_attention.linear_qkv.layer_norm_weight") ||
          s.has(layer + "mlp.linear_fc1.layer_norm_weight"))
        info.spec = MegatronSpec::TransformerEngine;
    }
    if (c.attention.n_heads == 0) {  // no attention layer: sizes that transformers still reads
      c.attention.n_heads = a.integer("num_attention_heads", 1);
      c.attention.n_kv_heads = c.attention.n_heads;
      c.attention.head_dim = a.integer("kv_channels", std::max<int64_t>(1, c.d_model / c.attention.n_heads));
    }
    if (c.mlp.d_ff == 0) c.mlp.d_ff = a.integer("ffn_hidden_size", 4 * c.d_model);
    c.attention.rotary_dim = 0;
  } else {
    check(s.has("decoder.final_layernorm.weight"), where,
          "neither decoder.final_norm (MambaModel) nor decoder.final_layernorm (GPTModel) is in the state dict",
          "pipeline-parallel checkpoints hold the final norm in the last stage only; they are not supported yet");
    c.model_type = "nemotron";
    c.arch = Arch::Transformer;
    c.pattern.clear();
    for (int64_t j = 0; j < layers; ++j) c.pattern += "*-";
    check(normalization == "LayerNorm" && a.flag("apply_layernorm_1p"), where,
          "a GPT with " + normalization + (a.flag("apply_layernorm_1p") ? " (1p)" : "") + " is not supported",
          "the study's Transformer uses LayerNorm with --apply-layernorm-1p (HF nemotron)");
    c.norm = NormKind::LayerNorm1p;
    check(s.has("decoder.final_layernorm.bias"), where, "the final LayerNorm has no bias");
    const std::string layer0 = "decoder.layers.0.";
    read_attention(a, s, layer0 + "self_attention.linear_qkv.weight", c);
    read_mlp(a, s, layer0 + "mlp.linear_fc1.weight", c);
    check(position == "rope", where, "position_embedding_type '" + position + "' is not supported", "the study's Transformer uses rope");
    check(!a.flag("rotary_interleaved"), where, "interleaved rotary embeddings are not supported");
    check(!a.flag("use_rope_scaling") && !a.find("rotary_seq_len_interpolation_factor"), where, "scaled rotary embeddings are not supported");
    const double percent = a.real("rotary_percent", 1.0);
    const double rotary = percent * static_cast<double>(c.attention.head_dim);
    check(percent > 0 && percent <= 1 && rotary == std::floor(rotary) && static_cast<int64_t>(rotary) % 2 == 0, where,
          "rotary_percent " + std::to_string(percent) + " of head dim " + num(c.attention.head_dim) + " is not an even channel count");
    c.attention.rotary_dim = static_cast<int64_t>(rotary);
    c.attention.rope_theta = a.real("rotary_base", 10000.0);
    info.spec = s.has(layer0 + "input_layernorm.weight") ? MegatronSpec::Local : MegatronSpec::TransformerEngine;
  }
  c.validate(where);
  return info;
}

nlohmann::ordered_json megatron_args(const ModelConfig& cfg, int tp, MegatronSpec spec) {
  const bool gpt = cfg.model_type == "nemotron";
  const AttentionConfig& at = cfg.attention;
  nlohmann::ordered_json j;
  j["num_layers"] = gpt ? cfg.n_layers() / 2 : cfg.n_layers();
  j["hidden_size"] = cfg.d_model;
  j["ffn_hidden_size"] = cfg.mlp.d_ff;
  j["num_attention_heads"] = at.n_heads;
  j["kv_channels"] = at.head_dim;
  j["group_query_attention"] = at.n_kv_heads != at.n_heads;
  j["num_query_groups"] = at.n_kv_heads;
  j["normalization"] = gpt ? "LayerNorm" : "RMSNorm";
  j["apply_layernorm_1p"] = gpt;
  j["norm_epsilon"] = cfg.norm_eps;
  j["squared_relu"] = cfg.mlp.activation == MlpActivation::ReluSquared;
  j["swiglu"] = false;
  j["add_bias_linear"] = at.bias || cfg.mlp.bias;
  j["position_embedding_type"] = gpt ? "rope" : "none";
  j["rotary_percent"] = at.head_dim > 0 ? static_cast<double>(at.rotary_dim) / static_cast<double>(at.head_dim) : 1.0;
  j["rotary_base"] = static_cast<int64_t>(at.rope_theta) == at.rope_theta ? json(static_cast<int64_t>(at.rope_theta)) : json(at.rope_theta);
  j["rotary_interleaved"] = false;
  j["untie_embeddings_and_output_weights"] = !cfg.tie_embeddings;
  j["padded_vocab_size"] = cfg.vocab_size;
  const int64_t context = cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : 4096;
  j["max_position_embeddings"] = context;
  j["seq_length"] = context;
  j["tensor_model_parallel_size"] = tp;
  j["pipeline_model_parallel_size"] = 1;
  if (!gpt) {
    j["hybrid_attention_ratio"] = 0.0;
    j["hybrid_mlp_ratio"] = 0.0;
    j["hybrid_override_pattern"] = cfg.pattern;
    j["mamba_state_dim"] = cfg.mamba2.d_state;
    j["mamba_head_dim"] = cfg.mamba2.head_dim;
    j["mamba_num_groups"] = cfg.mamba2.n_groups;
    // The layer spec pretrain_mamba.py builds from (`--spec MODULE NAME`).
    if (spec == MegatronSpec::TransformerEngine)
      j["spec"] = nlohmann::ordered_json::array({"megatron.core.models.mamba.mamba_layer_specs", "mamba_stack_spec"});
  } else {
    j["transformer_impl"] = spec == MegatronSpec::TransformerEngine ? "transformer_engine" : "local";
  }
  j["use_mcore_models"] = true;
  j["use_legacy_models"] = false;
  j["ckpt_format"] = "torch";
  j["bf16"] = false;
  j["fp16"] = false;
  return j;
}

}  // namespace mambalm::convert
