// mambalm init: a randomly initialised model directory from a preset or explicit sizes.
#include <cstdio>
#include <filesystem>

#include "args.h"
#include "commands.h"
#include "config/hf_config.h"
#include "config/pattern.h"
#include "config/presets.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "core/limits.h"
#include "model/init.h"
#include "model/model.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::cli {

namespace {

std::string num(int64_t v) { return std::to_string(v); }

// The options that change one part of a layer's shape, applied after the preset, --config,
// --layers/--d-model and the pattern. Each names itself in its error, says which sizes disagree
// and how to fix them; cfg.validate() runs afterwards as the backstop.
void apply_shape_options(const Args& args, ModelConfig& cfg) {
  const bool has_mamba = count_symbol(cfg.pattern, kMambaSymbol) > 0;
  const bool has_mamba2 = has_mamba && cfg.mamba_version == 2;
  const bool has_attention = count_symbol(cfg.pattern, kAttentionSymbol) > 0;
  const bool has_mlp = count_symbol(cfg.pattern, kMlpSymbol) > 0;
  const std::string pattern = " (pattern " + (cfg.pattern.size() > 24 ? cfg.pattern.substr(0, 24) + "..." : cfg.pattern) + ")";
  auto needs = [&](const char* option, bool present, const std::string& what) {
    if (args.has(option)) check(present, std::string("--") + option, "the model has no " + what + pattern);
  };
  for (const char* o : {"heads", "kv-heads", "head-dim"}) needs(o, has_attention, "attention layers");
  for (const char* o : {"ffn", "activation"}) needs(o, has_mlp, "MLP layers");
  for (const char* o : {"d-state", "conv", "expand"}) needs(o, has_mamba, "Mamba layers");
  for (const char* o : {"mamba-head-dim", "groups", "chunk-size"}) needs(o, has_mamba2, "Mamba-2 layers");

  if (has_mamba) {
    if (args.has("expand")) {
      const int64_t e = args.integer_in("expand", 2, 1, 64);
      const int64_t d_inner = limits::checked_mul(e, cfg.d_model, "--expand", "the Mamba width", limits::kMaxWidth);
      cfg.mamba1.d_inner = d_inner;
      cfg.mamba2.d_inner = d_inner;
    }
    if (args.has("d-state")) {
      cfg.mamba2.d_state = args.integer_in("d-state", 0, 1, limits::kMaxSmallDim);
      cfg.mamba1.d_state = cfg.mamba2.d_state;
    }
    if (args.has("conv")) {
      cfg.mamba2.d_conv = args.integer_in("conv", 0, 1, limits::kMaxSmallDim);
      cfg.mamba1.d_conv = cfg.mamba2.d_conv;
    }
  }
  if (has_mamba2) {
    Mamba2Config& m = cfg.mamba2;
    if (args.has("mamba-head-dim")) m.head_dim = args.integer_in("mamba-head-dim", 0, 1, limits::kMaxSmallDim);
    if (args.has("expand") || args.has("mamba-head-dim")) {
      check(m.d_inner % m.head_dim == 0, args.has("mamba-head-dim") ? "--mamba-head-dim" : "--expand",
            "the Mamba-2 width " + num(m.d_inner) + " (expand x d_model) is not a multiple of the head dim " + num(m.head_dim),
            "choose --mamba-head-dim dividing " + num(m.d_inner));
      m.n_heads = m.d_inner / m.head_dim;
    }
    if (args.has("groups")) m.n_groups = args.integer_in("groups", 0, 1, limits::kMaxWidth);
    check(m.n_heads % m.n_groups == 0, args.has("groups") ? "--groups" : "--mamba-head-dim",
          "the " + num(m.n_heads) + " Mamba-2 heads are not a multiple of " + num(m.n_groups) + " groups",
          "choose --groups dividing " + num(m.n_heads));
    // NemotronH (and the study) normalise the gated output per B/C group; other layouts keep theirs.
    if (cfg.model_type == "nemotron_h") m.norm_groups = m.n_groups;
    check(m.d_inner % m.norm_groups == 0, "--expand",
          "the Mamba-2 width " + num(m.d_inner) + " is not a multiple of the gated-norm groups " + num(m.norm_groups));
    if (args.has("chunk-size")) m.chunk_size = args.integer_in("chunk-size", 0, 1, limits::kMaxSmallDim);
  }
  if (has_attention) {
    AttentionConfig& a = cfg.attention;
    const int64_t old_head_dim = a.head_dim, old_rotary = a.rotary_dim;
    if (args.has("heads")) a.n_heads = args.integer_in("heads", 0, 1, limits::kMaxWidth);
    if (args.has("head-dim")) {
      a.head_dim = args.integer_in("head-dim", 0, 1, limits::kMaxSmallDim);
    } else if (args.has("heads")) {
      check(cfg.d_model % a.n_heads == 0, "--heads", "d_model " + num(cfg.d_model) + " is not a multiple of " + num(a.n_heads) + " heads",
            "give --head-dim as well");
      a.head_dim = cfg.d_model / a.n_heads;
    }
    if (args.has("kv-heads")) {
      a.n_kv_heads = args.integer_in("kv-heads", 0, 1, limits::kMaxWidth);
      check(a.n_heads % a.n_kv_heads == 0, "--kv-heads",
            num(a.n_heads) + " attention heads are not a multiple of " + num(a.n_kv_heads) + " key/value heads",
            "choose --kv-heads dividing " + num(a.n_heads) + " (equal for full multi-head attention)");
    } else {
      check(a.n_heads % a.n_kv_heads == 0, "--heads",
            num(a.n_heads) + " attention heads are not a multiple of the " + num(a.n_kv_heads) + " key/value heads of the start shape",
            "give --kv-heads dividing " + num(a.n_heads));
    }
    limits::in_range(a.n_heads * a.head_dim, 1, limits::kMaxWidth, "--head-dim", "heads x head dim");
    // RoPE keeps covering the same fraction of each head (half in the study's Transformer, all in llama).
    if (old_rotary > 0 && a.head_dim != old_head_dim) {
      check((a.head_dim * old_rotary) % old_head_dim == 0 && (a.head_dim * old_rotary / old_head_dim) % 2 == 0,
            args.has("head-dim") ? "--head-dim" : "--heads",
            "RoPE rotates " + num(old_rotary) + "/" + num(old_head_dim) + " of each head, which is not an even width for head dim " +
                num(a.head_dim),
            "choose a head dim that is a multiple of 4");
      a.rotary_dim = a.head_dim * old_rotary / old_head_dim;
    }
  }
  if (has_mlp) {
    if (args.has("ffn")) cfg.mlp.d_ff = args.integer_in("ffn", 0, 1, limits::kMaxWidth);
    if (args.has("activation")) {
      const std::string name = args.str("activation");
      MlpActivation act = MlpActivation::ReluSquared;
      if (name == "gelu") act = MlpActivation::Gelu;
      else if (name == "swiglu" || name == "silu") act = MlpActivation::SwiGLU;
      else check(name == "relu2", "--activation", "unknown activation '" + name + "'", "valid: relu2, gelu, swiglu");
      if (act == MlpActivation::SwiGLU)
        check(cfg.model_type == "llama", "--activation", "swiglu is the gated MLP of the llama layout; " + cfg.model_type + " MLPs are not gated",
              "add --model-type llama (transformer), or use relu2 or gelu");
      else
        check(cfg.model_type != "llama", "--activation", "llama MLPs are gated (swiglu), not " + name, "drop --model-type llama");
      cfg.mlp.activation = act;
    }
  }
  if (args.has("tie-embeddings")) {
    const std::string v = args.str("tie-embeddings");
    check(v == "yes" || v == "no", "--tie-embeddings", "expected yes or no, got '" + v + "'");
    cfg.tie_embeddings = v == "yes";
  }
}

}  // namespace

int cmd_init(int argc, char** argv) {
  Args args("init", "--arch {transformer,mamba,mamba2,hybrid} [--preset NAME | --config FILE] [sizes] --out DIR",
            {{"arch", "A", "transformer, mamba, mamba2 or hybrid"},
             {"preset", "NAME", "start from a named size (default <arch>-tiny); see 'mambalm info --presets'"},
             {"layers", "L", "number of layers (transformer: attention+MLP pairs; others: blocks)"},
             {"d-model", "D", "model width"},
             {"vocab", "V", "vocabulary size"},
             {"pattern", "STR", "hybrid layer pattern, one symbol per layer: M Mamba, * attention, - MLP"},
             {"attention-ratio", "A", "hybrid: fraction of attention layers (Megatron allocation)"},
             {"mlp-ratio", "R", "hybrid: fraction of MLP layers (Megatron allocation)"},
             {"mamba-version", "1|2", "what M layers are in a hybrid (default 2)"},
             {"model-type", "T", "nemotron (default) or llama for a transformer; nemotron_h (default) or mamba2 for Mamba-2"},
             {"config", "FILE", "start from an HF config.json (or a model directory) instead of a preset"},
             {"heads", "H", "attention heads (head dim becomes d_model/H unless --head-dim is given)"},
             {"kv-heads", "K", "attention key/value heads (K divides H; K = H is full multi-head attention)"},
             {"head-dim", "P", "attention head size"},
             {"ffn", "F", "MLP hidden width"},
             {"activation", "A", "MLP activation: relu2, gelu, or swiglu (llama layout only)"},
             {"d-state", "N", "SSM state size"},
             {"mamba-head-dim", "P", "Mamba-2 head size (heads = expand*d_model/P)"},
             {"groups", "G", "Mamba-2 B/C groups (G divides the Mamba-2 heads)"},
             {"conv", "K", "Mamba / Mamba-2 causal convolution width"},
             {"expand", "E", "Mamba / Mamba-2 inner width = E * d_model"},
             {"tie-embeddings", "yes|no", "share the token embedding with the LM head"},
             {"chunk-size", "C", "Mamba-2 SSD chunk length"},
             {"seed", "S", "random seed (default 0)"},
             {"dtype", "f32|bf16", "weight dtype on disk (default f32; bf16 above 1B parameters)"},
             {"config-only", "", "write config.json only (for sizing huge presets)"},
             {"tokenizer", "PATH", "tokenizer to carry (model dir, .model, tokenizer.json, .tiktoken, encoder.json or 'bytes'); sets the vocabulary"},
             {"out", "DIR", "output model directory"}});
  if (!args.parse(argc, argv)) return 0;
  const auto seed = static_cast<uint64_t>(args.integer_in("seed", 0, 0, INT64_MAX));
  std::string out = args.required("out");
  std::string preset = args.str("preset");
  ModelConfig cfg;
  if (args.has("config")) {
    check(preset.empty(), "--config", "give --preset or --config, not both");
    check(!args.has("layers") && !args.has("d-model"), "--config", "the depth and width come from the config file",
          "edit the file, or start from --preset to choose --layers and --d-model");
    cfg = load_config_file(args.str("config"));
    if (args.has("arch"))
      check(parse_arch(args.str("arch")) == cfg.arch, "--config",
            "'" + args.str("config") + "' is a " + arch_name(cfg.arch) + " model, not " + args.str("arch"));
  } else if (!preset.empty()) {
    cfg = preset_config(preset);
    if (args.has("arch")) {
      check(parse_arch(args.str("arch")) == cfg.arch, "--preset", "preset '" + preset + "' is a " + arch_name(cfg.arch) +
                                                                      " model, not " + args.str("arch"));
    }
  } else {
    Arch arch = parse_arch(args.required("arch"));
    cfg = preset_config(arch_name(arch) + "-tiny");
  }
  if (args.has("layers") || args.has("d-model")) {
    const bool pairs = cfg.arch == Arch::Transformer;
    int64_t layers = args.integer_in("layers", pairs ? cfg.n_layers() / 2 : cfg.n_layers(), 1,
                                     pairs ? limits::kMaxLayers / 2 : limits::kMaxLayers);
    cfg = default_config(cfg.arch, args.integer_in("d-model", cfg.d_model, 1, limits::kMaxWidth), layers,
                         args.integer_in("vocab", cfg.vocab_size, 1, limits::kMaxVocab));
  } else if (args.has("vocab")) {
    cfg.vocab_size = args.integer_in("vocab", cfg.vocab_size, 1, limits::kMaxVocab);
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
    else if (t == "mamba2" && cfg.arch == Arch::Mamba2) make_transformers_mamba2_style(cfg);
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
  apply_shape_options(args, cfg);
  cfg.validate("init");

  Model model(cfg);  // layers only: write_random_model draws and writes one piece at a time
  if (args.flag("config-only")) {
    save_model_config(cfg, out);
  } else {
    // bf16 files by default above 1B parameters (half the disk; training keeps F32 masters).
    const std::string dtype = args.str("dtype", model.parameter_count() > 1'000'000'000 ? "bf16" : "f32");
    check(dtype == "f32" || dtype == "bf16", "--dtype", "'" + dtype + "' is not f32 or bf16");
    const DType file_dtype = dtype == "bf16" ? DType::BF16 : DType::F32;
    const int64_t file_bytes = limits::checked_mul(model.parameter_count(), dtype == "bf16" ? 2 : 4, "init", "the weight file size");
    // Memory stays small (the model is drawn piece by piece); the disk must hold the file.
    std::filesystem::path existing = std::filesystem::absolute(out);
    while (!std::filesystem::exists(existing) && existing.has_parent_path() && existing != existing.parent_path())
      existing = existing.parent_path();
    const auto free_bytes = static_cast<int64_t>(std::filesystem::space(existing).available);
    check(file_bytes <= free_bytes, "init",
          "the model's weight file (" + std::to_string(model.parameter_count()) + " " + dtype + " parameters) needs " +
              gigabytes(static_cast<double>(file_bytes)) + " but this machine has " + gigabytes(static_cast<double>(free_bytes)) +
              " free on " + existing.string(),
          dtype == "f32" ? "use --dtype bf16 (half the size), --config-only to write config.json alone, or a smaller model"
                         : "use --config-only to write config.json alone, or a smaller model");
    write_random_model(model, seed, file_dtype, out, file_bytes > (int64_t{256} << 20));
  }
  if (tokenizer) install_tokenizer(args.str("tokenizer"), out);
  std::printf("wrote %s: %s (%s), pattern %s, %.3fM parameters\n", out.c_str(), cfg.model_type.c_str(), arch_name(cfg.arch).c_str(),
              cfg.pattern.c_str(), static_cast<double>(model.parameter_count()) / 1e6);
  return 0;
}

}  // namespace mambalm::cli
