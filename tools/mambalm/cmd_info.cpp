// mambalm info: what a model is, how big it is, and what it costs to run per sequence.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "args.h"
#include "commands.h"
#include "config/hf_config.h"
#include "config/pattern.h"
#include "config/presets.h"
#include "core/error.h"
#include "model/model.h"

namespace mambalm::cli {

int cmd_info(int argc, char** argv) {
  Args args("info", "DIR [--json] | --preset NAME [--json] | --presets",
            {{"json", "", "print JSON (keys: model_type, arch, pattern, n_params, state_bytes, kv_bytes_per_token, ...)"},
             {"preset", "NAME", "describe a preset instead of a directory"},
             {"presets", "", "list the preset names"}});
  if (!args.parse(argc, argv)) return 0;
  if (args.flag("presets")) {
    for (const std::string& n : preset_names()) std::printf("%s\n", n.c_str());
    return 0;
  }
  ModelConfig cfg;
  if (args.has("preset")) {
    cfg = preset_config(args.str("preset"));
  } else {
    check(args.positional().size() == 1, args.where(), "expected one model directory", "see 'mambalm info --help'");
    cfg = load_model_config(args.positional()[0]);
  }
  Model model(cfg);  // parameters are counted from the layers' declared shapes, not loaded
  const int64_t n_params = model.parameter_count();
  // Without the token embedding and the LM head (one matrix when tied), as the study and the
  // scaling-law literature count model size; the parameter-matched presets compare this number.
  const int64_t n_embedding = cfg.vocab_size * cfg.d_model * (cfg.tie_embeddings ? 1 : 2);
  const int64_t n_m = count_symbol(cfg.pattern, kMambaSymbol), n_a = count_symbol(cfg.pattern, kAttentionSymbol),
                n_mlp = count_symbol(cfg.pattern, kMlpSymbol);
  const std::string m_name = cfg.mamba_version == 2 ? "Mamba-2" : "Mamba";
  if (args.flag("json")) {
    nlohmann::json j = {{"model_type", cfg.model_type},
                        {"arch", arch_name(cfg.arch)},
                        {"pattern", cfg.pattern},
                        {"n_layers", cfg.n_layers()},
                        {"n_mamba", n_m},
                        {"n_attention", n_a},
                        {"n_mlp", n_mlp},
                        {"mamba_version", cfg.mamba_version},
                        {"d_model", cfg.d_model},
                        {"vocab_size", cfg.vocab_size},
                        {"n_params", n_params},
                        {"n_non_embedding_params", n_params - n_embedding},
                        {"tie_embeddings", cfg.tie_embeddings},
                        {"max_position_embeddings", cfg.max_position_embeddings},
                        {"state_bytes", cfg.state_bytes()},
                        {"kv_bytes_per_token", cfg.kv_bytes_per_token()},
                        {"state_dtype", "f32"}};
    if (n_a > 0)
      j["attention"] = {{"n_heads", cfg.attention.n_heads},
                        {"n_kv_heads", cfg.attention.n_kv_heads},
                        {"head_dim", cfg.attention.head_dim},
                        {"rotary_dim", cfg.attention.rotary_dim}};
    if (n_a > 0 && cfg.attention.rotary_dim > 0) j["attention"]["rope_theta"] = cfg.attention.rope_theta;
    if (n_mlp > 0) j["mlp"] = {{"d_ff", cfg.mlp.d_ff}, {"activation", activation_name(cfg.mlp.activation)}};
    if (n_m > 0 && cfg.mamba_version == 2)
      j["mamba2"] = {{"n_heads", cfg.mamba2.n_heads}, {"head_dim", cfg.mamba2.head_dim}, {"n_groups", cfg.mamba2.n_groups},
                     {"d_state", cfg.mamba2.d_state}, {"d_conv", cfg.mamba2.d_conv}, {"d_inner", cfg.mamba2.d_inner},
                     {"norm_groups", cfg.mamba2.norm_groups}};
    if (n_m > 0 && cfg.mamba_version == 1)
      j["mamba"] = {{"d_inner", cfg.mamba1.d_inner}, {"d_state", cfg.mamba1.d_state}, {"d_conv", cfg.mamba1.d_conv},
                    {"dt_rank", cfg.mamba1.dt_rank}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model_type          %s (%s)\n", cfg.model_type.c_str(), arch_name(cfg.arch).c_str());
  std::printf("pattern             %s\n", cfg.pattern.c_str());
  std::printf("layers              %lld = %lld %s (M) + %lld attention (*) + %lld MLP (-)\n", static_cast<long long>(cfg.n_layers()),
              static_cast<long long>(n_m), m_name.c_str(), static_cast<long long>(n_a), static_cast<long long>(n_mlp));
  std::printf("d_model, vocab      %lld, %lld\n", static_cast<long long>(cfg.d_model), static_cast<long long>(cfg.vocab_size));
  std::printf("parameters          %lld (%.3f B)\n", static_cast<long long>(n_params), static_cast<double>(n_params) / 1e9);
  std::printf("  non-embedding     %lld (%.3f M)\n", static_cast<long long>(n_params - n_embedding),
              static_cast<double>(n_params - n_embedding) / 1e6);
  if (n_a > 0)
    std::printf("attention heads     %lld query, %lld key/value, head dim %lld\n", static_cast<long long>(cfg.attention.n_heads),
                static_cast<long long>(cfg.attention.n_kv_heads), static_cast<long long>(cfg.attention.head_dim));
  std::printf("state per sequence  %lld bytes (fp32 conv + SSM state of the M layers)\n", static_cast<long long>(cfg.state_bytes()));
  std::printf("KV cache per token  %lld bytes (fp32, all attention layers)\n", static_cast<long long>(cfg.kv_bytes_per_token()));
  return 0;
}

}  // namespace mambalm::cli
