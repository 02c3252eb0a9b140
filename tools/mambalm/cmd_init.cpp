// mambalm init: a randomly initialised model directory from a preset or explicit sizes.
#include <cstdio>

#include "args.h"
#include "commands.h"
#include "config/hf_config.h"
#include "config/pattern.h"
#include "config/presets.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "core/limits.h"
#include "model/model.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

int cmd_init(int argc, char** argv) {
  Args args("init", "--arch {transformer,mamba,mamba2,hybrid} [--preset NAME] [sizes] --out DIR",
            {{"arch", "A", "transformer, mamba, mamba2 or hybrid"},
             {"preset", "NAME", "start from a named size (default <arch>-tiny); see 'mambalm info --presets'"},
             {"layers", "L", "number of layers (transformer: attention+MLP pairs; others: blocks)"},
             {"d-model", "D", "model width"},
             {"vocab", "V", "vocabulary size"},
             {"pattern", "STR", "hybrid layer pattern, one symbol per layer: M Mamba, * attention, - MLP"},
             {"attention-ratio", "A", "hybrid: fraction of attention layers (Megatron allocation)"},
             {"mlp-ratio", "R", "hybrid: fraction of MLP layers (Megatron allocation)"},
             {"mamba-version", "1|2", "what M layers are in a hybrid (default 2)"},
             {"model-type", "T", "transformer layout: nemotron (the study's, default) or llama"},
             {"d-state", "N", "SSM state size"},
             {"chunk-size", "C", "Mamba-2 SSD chunk length"},
             {"seed", "S", "random seed (default 0)"},
             {"dtype", "f32|bf16", "weight dtype on disk (default f32)"},
             {"config-only", "", "write config.json only (for sizing huge presets)"},
             {"tokenizer", "PATH", "tokenizer to carry (model dir, .model, tokenizer.json, .tiktoken, encoder.json or 'bytes'); sets the vocabulary"},
             {"out", "DIR", "output model directory"}});
  if (!args.parse(argc, argv)) return 0;
  std::string out = args.required("out");
  std::string preset = args.str("preset");
  ModelConfig cfg;
  if (!preset.empty()) {
    cfg = preset_config(preset);
    if (args.has("arch")) {
      check(parse_arch(args.str("arch")) == cfg.arch, "--preset", "preset '" + preset + "' is a " + arch_name(cfg.arch) +
                                                                      " model, not " + args.str("arch"));
    }
  } else {
    Arch arch = parse_arch(args.required("arch"));
    cfg = preset_config(arch_name(arch) + "-tiny");
  }
  if (args.has("layers") || args.has("d-model") || args.has("vocab")) {
    const bool pairs = cfg.arch == Arch::Transformer;
    int64_t layers = args.integer_in("layers", pairs ? cfg.n_layers() / 2 : cfg.n_layers(), 1,
                                     pairs ? limits::kMaxLayers / 2 : limits::kMaxLayers);
    cfg = default_config(cfg.arch, args.integer_in("d-model", cfg.d_model, 1, limits::kMaxWidth), layers,
                         args.integer_in("vocab", cfg.vocab_size, 1, limits::kMaxVocab));
  }
  std::unique_ptr<Tokenizer> tokenizer;
  if (args.has("tokenizer")) {
    tokenizer = open_tokenizer(args.str("tokenizer"));
    // The embedding is padded to a multiple of 64 rows, as Megatron pads vocabularies for speed.
    cfg.vocab_size = (tokenizer->vocab_size() + 63) / 64 * 64;
    cfg.bos_token_id = tokenizer->bos_id();
    cfg.eos_token_id = tokenizer->eos_id();
    cfg.pad_token_id = tokenizer->pad_id();
  }
  if (args.has("model-type")) {
    std::string t = args.str("model-type");
    if (t == "llama") make_llama_style(cfg);
    else check(t == cfg.model_type, "--model-type", "'" + t + "' does not fit a " + arch_name(cfg.arch) + " model");
  }
  if (args.has("mamba-version")) {
    int64_t v = args.integer_in("mamba-version", 2, 1, 2);
    check(cfg.arch == Arch::Hybrid, "--mamba-version", "only a hybrid chooses its M layers; use --arch mamba or mamba2");
    cfg.mamba_version = static_cast<int>(v);
  }
  if (args.has("pattern")) {
    check(cfg.arch == Arch::Hybrid, "--pattern", "only hybrid models take a layer pattern");
    check(!args.has("attention-ratio") && !args.has("mlp-ratio"), "--pattern", "give a pattern or ratios, not both");
    std::string p = args.str("pattern");
    validate_pattern(p, "--pattern");
    cfg.pattern = p;
  } else if (args.has("attention-ratio") || args.has("mlp-ratio")) {
    check(cfg.arch == Arch::Hybrid, "--attention-ratio", "only hybrid models take layer ratios");
    cfg.pattern = allocate_pattern(cfg.n_layers(), args.real("attention-ratio", 0.08), args.real("mlp-ratio", 0.5));
  }
  if (args.has("d-state")) {
    cfg.mamba2.d_state = args.integer_in("d-state", 0, 1, limits::kMaxSmallDim);
    cfg.mamba1.d_state = cfg.mamba2.d_state;
  }
  if (args.has("chunk-size")) cfg.mamba2.chunk_size = args.integer_in("chunk-size", 0, 1, limits::kMaxSmallDim);
  cfg.validate("init");
  if (!args.flag("config-only"))
    check_fits_host_memory(limits::checked_mul(cfg.parameter_upper_bound("init"), 4, "init", "the parameter bytes"), "init",
                           "the model's " + std::to_string(cfg.parameter_upper_bound("init")) + " F32 parameters",
                           "use --config-only to write config.json alone, or a smaller model");

  Model model(cfg);
  if (args.flag("config-only")) {
    save_model_config(cfg, out);
  } else {
    std::string dtype = args.str("dtype", "f32");
    check(dtype == "f32" || dtype == "bf16", "--dtype", "'" + dtype + "' is not f32 or bf16");
    model.init_random(static_cast<uint64_t>(args.integer("seed", 0)));
    model.save(out, dtype == "bf16" ? DType::BF16 : DType::F32);
  }
  if (tokenizer) install_tokenizer(args.str("tokenizer"), out);
  std::printf("wrote %s: %s (%s), pattern %s, %.3fM parameters\n", out.c_str(), cfg.model_type.c_str(), arch_name(cfg.arch).c_str(),
              cfg.pattern.c_str(), static_cast<double>(model.parameter_count()) / 1e6);
  return 0;
}

}  // namespace mambalm::cli
