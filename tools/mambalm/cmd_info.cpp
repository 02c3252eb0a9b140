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
                        {"state_bytes", cfg.state_bytes()},
                        {"kv_bytes_per_token", cfg.kv_bytes_per_token()},
                        {"state_dtype", "f32"}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model_type          %s (%s)\n", cfg.model_type.c_str(), arch_name(cfg.arch).c_str());
  std::printf("pattern             %s\n", cfg.pattern.c_str());
  std::printf("layers              %lld = %lld %s (M) + %lld attention (*) + %lld MLP (-)\n", static_cast<long long>(cfg.n_layers()),
              static_cast<long long>(n_m), m_name.c_str(), static_cast<long long>(n_a), static_cast<long long>(n_mlp));
  std::printf("d_model, vocab      %lld, %lld\n", static_cast<long long>(cfg.d_model), static_cast<long long>(cfg.vocab_size));
  std::printf("parameters          %lld (%.3f B)\n", static_cast<long long>(n_params), static_cast<double>(n_params) / 1e9);
  std::printf("state per sequence  %lld bytes (fp32 conv + SSM state of the M layers)\n", static_cast<long long>(cfg.state_bytes()));
  std::printf("KV cache per token  %lld bytes (fp32, all attention layers)\n", static_cast<long long>(cfg.kv_bytes_per_token()));
  return 0;
}

}  // namespace mambalm::cli
