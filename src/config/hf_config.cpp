#include "config/hf_config.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/pattern.h"
#include "core/error.h"
#include "core/limits.h"
#include "io/atomic_file.h"

namespace mambalm {

using nlohmann::json;

namespace {

// Python's json module writes bare Infinity, -Infinity and NaN. Turn them (outside strings)
// into {"__float__": "..."} objects, the form transformers 5.x writes itself.
std::string replace_python_float_tokens(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    auto starts = [&](const char* tok) { return text.compare(i, std::strlen(tok), tok) == 0; };
    if (starts("-Infinity")) { out += "{\"__float__\": \"-Infinity\"}"; i += 8; continue; }
    if (starts("Infinity")) { out += "{\"__float__\": \"Infinity\"}"; i += 7; continue; }
    if (starts("NaN")) { out += "{\"__float__\": \"NaN\"}"; i += 2; continue; }
    out += c;
  }
  return out;
}

double as_double(const json& v, const std::string& where, const std::string& key) {
  if (v.is_number()) return v.get<double>();
  auto special = [&](const std::string& s) -> double {
    if (s == "Infinity" || s == "inf") return INFINITY;
    if (s == "-Infinity" || s == "-inf") return -INFINITY;
    if (s == "NaN" || s == "nan") return NAN;
    fail(where, "field '" + key + "': '" + s + "' is not a number");
  };
  if (v.is_string()) return special(v.get<std::string>());
  if (v.is_object() && v.contains("__float__") && v["__float__"].is_string()) return special(v["__float__"].get<std::string>());
  fail(where, "field '" + key + "' must be a number, got " + v.dump());
}

// The ranges integer fields are read in (core/limits.h says why these bounds).
struct Range {
  int64_t lo, hi;
};
constexpr Range kWidth{1, limits::kMaxWidth};
constexpr Range kSmall{1, limits::kMaxSmallDim};
constexpr Range kLayers{1, limits::kMaxLayers};
constexpr Range kDecoderLayers{1, limits::kMaxLayers / 2};
constexpr Range kVocab{1, limits::kMaxVocab};
constexpr Range kTokenId{-1, limits::kMaxTokenId};
constexpr Range kExpand{1, 1024};
constexpr Range kAnyCount{0, INT64_MAX};

// Typed lookups with the key aliases transformers accepts; the first present key wins.
struct Fields {
  const json& j;
  const std::string& where;

  const json* find(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (j.contains(k) && !j[k].is_null()) return &j[k];
    return nullptr;
  }
  // An integer field within [r.lo, r.hi]: every size and id of config.json is range-checked
  // here, where it enters, so no later product or allocation sees an unchecked number.
  int64_t integer(Range r, std::initializer_list<const char*> keys, std::optional<int64_t> fallback = std::nullopt) const {
    const json* v = find(keys);
    const std::string key = *keys.begin();
    if (!v) {
      check(fallback.has_value(), where, "missing field '" + key + "'");
      return limits::in_range(*fallback, r.lo, r.hi, where, "field '" + key + "'");
    }
    if (v->is_array() && !v->empty() && (*v)[0].is_number_integer()) v = &(*v)[0];  // eos lists
    check(v->is_number_integer(), where, "field '" + key + "' must be an integer, got " + v->dump());
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail(where, "field '" + key + "' " + v->dump() + " is out of range [" + std::to_string(r.lo) + ", " +
                      std::to_string(r.hi) + "]");
    return limits::in_range(v->get<int64_t>(), r.lo, r.hi, where, "field '" + key + "'");
  }
  double real(std::initializer_list<const char*> keys, std::optional<double> fallback = std::nullopt) const {
    const json* v = find(keys);
    if (!v) {
      check(fallback.has_value(), where, std::string("missing field '") + *keys.begin() + "'");
      return *fallback;
    }
    return as_double(*v, where, *keys.begin());
  }
  bool boolean(std::initializer_list<const char*> keys, bool fallback) const {
    const json* v = find(keys);
    if (!v) return fallback;
    check(v->is_boolean(), where, std::string("field '") + *keys.begin() + "' must be true or false, got " + v->dump());
    return v->get<bool>();
  }
  std::string text(std::initializer_list<const char*> keys, const std::string& fallback) const {
    const json* v = find(keys);
    if (!v) return fallback;
    check(v->is_string(), where, std::string("field '") + *keys.begin() + "' must be a string, got " + v->dump());
    return v->get<std::string>();
  }
};

MlpActivation parse_activation(const std::string& name, const std::string& where, const std::string& key) {
  if (name == "relu2") return MlpActivation::ReluSquared;
  if (name == "gelu") return MlpActivation::Gelu;
  if (name == "silu" || name == "swish") return MlpActivation::SwiGLU;
  fail(where, "field '" + key + "': unsupported activation '" + name + "'", "supported: relu2, gelu, silu (SwiGLU)");
}

// The hybrid's layer list: `layers_block_type` names (new and legacy) or the pattern string.
std::string hybrid_pattern(const Fields& f) {
  if (const json* list = f.find({"layers_block_type", "layer_types"})) {
    check(list->is_array(), f.where, "field 'layers_block_type' must be a list of layer type names");
    std::string p;
    for (const json& e : *list) {
      check(e.is_string(), f.where, "field 'layers_block_type' must hold strings, got " + e.dump());
      std::string t = e.get<std::string>();
      if (t == "linear_attention" || t == "mamba" || t == "M") p += kMambaSymbol;
      else if (t == "full_attention" || t == "attention" || t == "*") p += kAttentionSymbol;
      else if (t == "mlp" || t == "-") p += kMlpSymbol;
      else if (t == "moe" || t == "E") fail(f.where, "field 'layers_block_type': mixture-of-experts layers are not supported");
      else fail(f.where, "field 'layers_block_type': unknown layer type '" + t + "'", "valid: linear_attention, full_attention, mlp");
    }
    return p;
  }
  if (const json* s = f.find({"hybrid_override_pattern"})) {
    check(s->is_string(), f.where, "field 'hybrid_override_pattern' must be a string");
    std::string p = s->get<std::string>();
    if (p.find('E') != std::string::npos) fail(f.where, "field 'hybrid_override_pattern': mixture-of-experts layers (E) are not supported");
    validate_pattern(p, f.where + ": field 'hybrid_override_pattern'");
    return p;
  }
  fail(f.where, "missing field 'layers_block_type' (or legacy 'hybrid_override_pattern')");
}

void read_rope(const Fields& f, AttentionConfig& a, double default_partial) {
  double theta = f.real({"rope_theta"}, 10000.0);
  double partial = f.real({"partial_rotary_factor"}, default_partial);
  const json* params = f.find({"rope_parameters", "rope_scaling"});
  if (params) {
    check(params->is_object(), f.where, "field 'rope_parameters' must be an object");
    Fields p{*params, f.where};
    std::string type = p.text({"rope_type", "type"}, "default");
    check(type == "default", f.where, "field 'rope_parameters.rope_type': '" + type + "' is not supported",
          "supported: default");
    theta = p.real({"rope_theta"}, theta);
    partial = p.real({"partial_rotary_factor"}, partial);
  }
  check(std::isfinite(theta) && theta > 0, f.where, "field 'rope_theta' must be a positive number");
  check(std::isfinite(partial) && partial >= 0 && partial <= 1, f.where, "field 'partial_rotary_factor' must be in [0, 1]");
  a.rope_theta = theta;
  a.rotary_dim = static_cast<int64_t>(static_cast<double>(a.head_dim) * partial);
}

void read_mamba2(const Fields& f, ModelConfig& c, bool nemotron_h) {
  Mamba2Config& m = c.mamba2;
  m.n_heads = f.integer(kWidth, nemotron_h ? std::initializer_list<const char*>{"mamba_num_heads"} : std::initializer_list<const char*>{"num_heads"});
  m.head_dim = f.integer(kSmall, nemotron_h ? std::initializer_list<const char*>{"mamba_head_dim"} : std::initializer_list<const char*>{"head_dim"});
  m.n_groups = f.integer(kWidth, {"n_groups", "mamba_n_groups"}, 1);
  m.d_state = f.integer(kSmall, {"ssm_state_size", "state_size"}, 128);
  m.d_conv = f.integer(kSmall, {"conv_kernel", "mamba_d_conv"}, 4);
  m.chunk_size = f.integer(kSmall, {"chunk_size", "mamba_chunk_size"}, 256);
  m.conv_bias = f.boolean({"use_conv_bias", "mamba_conv_bias"}, true);
  m.proj_bias = f.boolean(nemotron_h ? std::initializer_list<const char*>{"mamba_proj_bias"} : std::initializer_list<const char*>{"use_bias"}, false);
  m.dt_min = f.real({"time_step_min", "mamba_dt_min"}, 1e-3);
  m.dt_max = f.real({"time_step_max", "mamba_dt_max"}, 1e-1);
  m.dt_init_floor = f.real({"time_step_floor", "mamba_dt_init_floor"}, 1e-4);
  if (const json* lim = f.find({"time_step_limit", "mamba_dt_limit"})) {
    check(lim->is_array() && lim->size() == 2, f.where, "field 'time_step_limit' must be a pair [min, max], got " + lim->dump());
    m.dt_limit_lo = as_double((*lim)[0], f.where, "time_step_limit");
    m.dt_limit_hi = as_double((*lim)[1], f.where, "time_step_limit");
  }
  if (nemotron_h) {
    // transformers' NemotronH clamps dt from below at time_step_min and ignores time_step_limit.
    m.dt_limit_lo = m.dt_min;
    m.dt_limit_hi = INFINITY;
  }
  m.norm_groups = nemotron_h ? m.n_groups : 1;  // see Mamba2Config::norm_groups
  int64_t expand = f.integer(kExpand, {"expand", "mamba_expand"}, 2);
  m.d_inner = m.n_heads * m.head_dim;
  // transformers' Mamba2 requires expand * hidden == num_heads * head_dim; NemotronH ignores expand.
  check(nemotron_h || m.d_inner == expand * c.d_model, f.where,
        "num_heads * head_dim = " + std::to_string(m.d_inner) + " but expand * hidden_size = " + std::to_string(expand * c.d_model),
        "transformers requires these to be equal");
  std::string act = f.text({"hidden_act", "mamba_hidden_act"}, "silu");
  check(act == "silu" || act == "swish", f.where, "field 'hidden_act': Mamba layers support only silu, got '" + act + "'");
}

void read_attention(const Fields& f, ModelConfig& c) {
  AttentionConfig& a = c.attention;
  a.n_heads = f.integer(kWidth, {"num_attention_heads"});
  a.n_kv_heads = f.integer(kWidth, {"num_key_value_heads"}, a.n_heads);
  a.head_dim = f.integer(kSmall, {"head_dim"}, std::max<int64_t>(1, c.d_model / a.n_heads));
  a.bias = f.boolean({"attention_bias"}, false);
}

}  // namespace

json parse_config_json(const std::string& text, const std::string& where) {
  json j = json::parse(replace_python_float_tokens(text), nullptr, false);
  check(!j.is_discarded(), where, "not valid JSON");
  check(j.is_object(), where, "expected a JSON object at the top level");
  return j;
}

ModelConfig config_from_hf(const json& j, const std::string& where) {
  Fields f{j, where};
  std::string type = f.text({"model_type"}, "");
  check(!type.empty(), where, "missing field 'model_type'", "supported: mamba, mamba2, nemotron_h, nemotron, llama");
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = f.integer(kVocab, {"vocab_size"});
  c.d_model = f.integer(kWidth, {"hidden_size", "d_model"});
  c.bos_token_id = f.integer(kTokenId, {"bos_token_id"}, -1);
  c.eos_token_id = f.integer(kTokenId, {"eos_token_id"}, -1);
  c.pad_token_id = f.integer(kTokenId, {"pad_token_id"}, -1);
  c.max_position_embeddings = f.integer(kAnyCount, {"max_position_embeddings"}, 0);

  if (type == "mamba") {
    c.arch = Arch::Mamba;
    c.mamba_version = 1;
    c.pattern = std::string(static_cast<size_t>(f.integer(kLayers, {"num_hidden_layers", "n_layer"})), kMambaSymbol);
    c.norm = NormKind::RMSNorm;
    c.norm_eps = f.real({"layer_norm_epsilon"}, 1e-5);
    c.tie_embeddings = f.boolean({"tie_word_embeddings"}, true);
    Mamba1Config& m = c.mamba1;
    m.d_inner = f.integer(kWidth, {"intermediate_size"}, f.integer(kExpand, {"expand"}, 2) * c.d_model);
    m.d_state = f.integer(kSmall, {"state_size"}, 16);
    m.d_conv = f.integer(kSmall, {"conv_kernel"}, 4);
    m.conv_bias = f.boolean({"use_conv_bias"}, true);
    m.proj_bias = f.boolean({"use_bias"}, false);
    m.dt_min = f.real({"time_step_min"}, 1e-3);
    m.dt_max = f.real({"time_step_max"}, 1e-1);
    m.dt_init_floor = f.real({"time_step_floor"}, 1e-4);
    m.dt_scale = f.real({"time_step_scale"}, 1.0);
    const json* rank = f.find({"time_step_rank"});
    if (!rank || (rank->is_string() && rank->get<std::string>() == "auto")) m.dt_rank = (c.d_model + 15) / 16;
    else m.dt_rank = f.integer(kWidth, {"time_step_rank"});
    std::string act = f.text({"hidden_act"}, "silu");
    check(act == "silu" || act == "swish", where, "field 'hidden_act': Mamba layers support only silu, got '" + act + "'");
  } else if (type == "mamba2") {
    c.arch = Arch::Mamba2;
    c.mamba_version = 2;
    c.pattern = std::string(static_cast<size_t>(f.integer(kLayers, {"num_hidden_layers"})), kMambaSymbol);
    c.norm = NormKind::RMSNorm;
    c.norm_eps = f.real({"layer_norm_epsilon"}, 1e-5);
    c.tie_embeddings = f.boolean({"tie_word_embeddings"}, false);
    read_mamba2(f, c, false);
  } else if (type == "nemotron_h") {
    c.mamba_version = 2;
    c.pattern = hybrid_pattern(f);
    // An all-M nemotron_h directory is the study's pure Mamba-2 (grouped gated norm): the form the
    // mamba2-* presets are written in, since transformers' `mamba2` type cannot express the groups.
    c.arch = count_symbol(c.pattern, kMambaSymbol) == c.n_layers() ? Arch::Mamba2 : Arch::Hybrid;
    c.norm = NormKind::RMSNorm;
    c.norm_eps = f.real({"layer_norm_epsilon"}, 1e-5);
    c.tie_embeddings = f.boolean({"tie_word_embeddings"}, false);
    read_mamba2(f, c, true);
    read_attention(f, c);
    c.attention.rotary_dim = 0;  // the hybrid uses no position embedding
    c.attention.bias = false;    // transformers' NemotronH attention ignores attention_bias
    c.mlp.d_ff = f.integer(kWidth, {"intermediate_size"});
    c.mlp.activation = parse_activation(f.text({"mlp_hidden_act"}, "relu2"), where, "mlp_hidden_act");
    check(c.mlp.activation != MlpActivation::SwiGLU, where, "field 'mlp_hidden_act': nemotron_h MLPs are not gated", "use relu2 or gelu");
    c.mlp.bias = f.boolean({"mlp_bias"}, false);
  } else if (type == "nemotron" || type == "llama") {
    bool llama = type == "llama";
    c.arch = Arch::Transformer;
    int64_t layers = f.integer(kDecoderLayers, {"num_hidden_layers"});  // two blocks each
    c.pattern.clear();
    for (int64_t i = 0; i < layers; ++i) c.pattern += "*-";
    c.norm = llama ? NormKind::RMSNorm : NormKind::LayerNorm1p;
    c.norm_eps = llama ? f.real({"rms_norm_eps"}, 1e-6) : f.real({"norm_eps"}, 1e-5);
    c.tie_embeddings = f.boolean({"tie_word_embeddings"}, false);
    read_attention(f, c);
    read_rope(f, c.attention, llama ? 1.0 : 0.5);
    c.mlp.d_ff = f.integer(kWidth, {"intermediate_size"});
    std::string act = f.text({"hidden_act"}, llama ? "silu" : "relu2");
    c.mlp.activation = parse_activation(act, where, "hidden_act");
    if (llama) check(c.mlp.activation == MlpActivation::SwiGLU, where, "field 'hidden_act': llama MLPs must be silu (SwiGLU), got '" + act + "'");
    else check(c.mlp.activation != MlpActivation::SwiGLU, where, "field 'hidden_act': nemotron MLPs are not gated, got '" + act + "'");
    c.mlp.bias = f.boolean({"mlp_bias"}, false);
  } else {
    fail(where, "unknown model_type '" + type + "'", "supported: mamba, mamba2, nemotron_h, nemotron, llama");
  }
  c.validate(where);
  return c;
}

namespace {

json hf_float(double v) {
  if (std::isinf(v)) return json{{"__float__", v > 0 ? "Infinity" : "-Infinity"}};
  return v;
}

void put_token_ids(json& j, const ModelConfig& c) {
  j["bos_token_id"] = c.bos_token_id >= 0 ? json(c.bos_token_id) : json(nullptr);
  j["eos_token_id"] = c.eos_token_id >= 0 ? json(c.eos_token_id) : json(nullptr);
  j["pad_token_id"] = c.pad_token_id >= 0 ? json(c.pad_token_id) : json(nullptr);
}

void put_mamba2(json& j, const Mamba2Config& m, int64_t d_model, bool nemotron_h) {
  j[nemotron_h ? "mamba_num_heads" : "num_heads"] = m.n_heads;
  j[nemotron_h ? "mamba_head_dim" : "head_dim"] = m.head_dim;
  j["n_groups"] = m.n_groups;
  j[nemotron_h ? "ssm_state_size" : "state_size"] = m.d_state;
  j["conv_kernel"] = m.d_conv;
  j["expand"] = m.d_inner / d_model;
  j["chunk_size"] = m.chunk_size;
  j["use_conv_bias"] = m.conv_bias;
  j[nemotron_h ? "mamba_proj_bias" : "use_bias"] = m.proj_bias;
  j["time_step_min"] = m.dt_min;
  j["time_step_max"] = m.dt_max;
  j["time_step_floor"] = m.dt_init_floor;
  j["time_step_limit"] = json::array({hf_float(m.dt_limit_lo), hf_float(m.dt_limit_hi)});
  j[nemotron_h ? "mamba_hidden_act" : "hidden_act"] = "silu";
}

void put_attention(json& j, const AttentionConfig& a) {
  j["num_attention_heads"] = a.n_heads;
  j["num_key_value_heads"] = a.n_kv_heads;
  j["head_dim"] = a.head_dim;
  j["attention_bias"] = a.bias;
  j["attention_dropout"] = 0.0;
}

}  // namespace

json config_to_hf(const ModelConfig& c) {
  c.validate("config");
  json j;
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  put_token_ids(j, c);
  if (c.model_type == "mamba") {
    check(c.mamba_version == 1 && c.arch == Arch::Mamba, "config", "model_type mamba holds only Mamba-1 layers");
    const Mamba1Config& m = c.mamba1;
    j["architectures"] = json::array({"MambaForCausalLM"});
    j["num_hidden_layers"] = c.n_layers();
    j["layer_norm_epsilon"] = c.norm_eps;
    j["state_size"] = m.d_state;
    j["expand"] = m.d_inner / c.d_model;
    j["intermediate_size"] = m.d_inner;
    j["conv_kernel"] = m.d_conv;
    j["use_bias"] = m.proj_bias;
    j["use_conv_bias"] = m.conv_bias;
    j["hidden_act"] = "silu";
    j["time_step_rank"] = m.dt_rank;
    j["time_step_scale"] = m.dt_scale;
    j["time_step_min"] = m.dt_min;
    j["time_step_max"] = m.dt_max;
    j["time_step_floor"] = m.dt_init_floor;
    j["time_step_init_scheme"] = "random";
    j["residual_in_fp32"] = true;
  } else if (c.model_type == "mamba2") {
    check(c.mamba_version == 2 && c.arch == Arch::Mamba2, "config", "model_type mamba2 holds only Mamba-2 layers");
    j["architectures"] = json::array({"Mamba2ForCausalLM"});
    j["num_hidden_layers"] = c.n_layers();
    j["layer_norm_epsilon"] = c.norm_eps;
    j["rms_norm"] = true;
    j["residual_in_fp32"] = true;
    put_mamba2(j, c.mamba2, c.d_model, false);
  } else if (c.model_type == "nemotron_h") {
    check(c.mamba_version == 2, "config", "nemotron_h holds Mamba-2 layers; a hybrid of Mamba-1 layers has no HF model_type");
    j["architectures"] = json::array({"NemotronHForCausalLM"});
    json types = json::array();
    for (char s : c.pattern)
      types.push_back(s == kMambaSymbol ? "linear_attention" : s == kAttentionSymbol ? "full_attention" : "mlp");
    j["layers_block_type"] = types;
    j["num_hidden_layers"] = c.n_layers();
    j["layer_norm_epsilon"] = c.norm_eps;
    j["residual_in_fp32"] = false;
    j["use_bias"] = false;
    put_mamba2(j, c.mamba2, c.d_model, true);
    put_attention(j, c.attention);
    j["max_position_embeddings"] = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
    j["intermediate_size"] = c.mlp.d_ff;
    j["mlp_hidden_act"] = activation_name(c.mlp.activation);
    j["mlp_bias"] = c.mlp.bias;
  } else if (c.model_type == "nemotron" || c.model_type == "llama") {
    bool llama = c.model_type == "llama";
    check(c.arch == Arch::Transformer, "config", "model_type " + c.model_type + " is a transformer layout");
    j["architectures"] = json::array({llama ? "LlamaForCausalLM" : "NemotronForCausalLM"});
    j["num_hidden_layers"] = c.n_layers() / 2;
    put_attention(j, c.attention);
    j["intermediate_size"] = c.mlp.d_ff;
    j["hidden_act"] = activation_name(c.mlp.activation);
    j["mlp_bias"] = c.mlp.bias;
    j["max_position_embeddings"] = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
    double partial = static_cast<double>(c.attention.rotary_dim) / static_cast<double>(c.attention.head_dim);
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.attention.rope_theta}};
    if (llama) {
      j["rms_norm_eps"] = c.norm_eps;
    } else {
      j["norm_eps"] = c.norm_eps;
      j["partial_rotary_factor"] = partial;
      j["rope_parameters"]["partial_rotary_factor"] = partial;
    }
  } else {
    fail("config", "unknown model_type '" + c.model_type + "'", "supported: mamba, mamba2, nemotron_h, nemotron, llama");
  }
  return j;
}

ModelConfig load_model_config(const std::string& model_dir) {
  std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  check(std::filesystem::is_directory(model_dir), model_dir, "not a model directory (no such directory)");
  check(std::filesystem::exists(path), path, "missing", "a model directory holds config.json and model.safetensors");
  return config_from_hf(parse_config_json(io::read_text_file(path), path), path);
}

ModelConfig load_config_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) return load_model_config(path);
  check(std::filesystem::is_regular_file(path), path, "no such config file", "give an HF config.json or a model directory");
  return config_from_hf(parse_config_json(io::read_text_file(path), path), path);
}

void save_model_config(const ModelConfig& cfg, const std::string& model_dir) {
  std::filesystem::create_directories(model_dir);
  io::write_file_atomically((std::filesystem::path(model_dir) / "config.json").string(), config_to_hf(cfg).dump(2) + "\n");
}

}  // namespace mambalm
