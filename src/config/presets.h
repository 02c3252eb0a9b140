// Named model sizes: the study's 8B models and small sizes for tests and laptops.
#pragma once
#include <string>
#include <vector>

#include "config/model_config.h"

namespace mambalm {

// Sensible defaults for a family at a given width and depth, as the study builds them:
// Mamba-2 expand 2 with 64-wide heads (narrower for tiny widths), attention heads of 128 (or
// d_model/4 for tiny widths) with 8 KV groups where they divide, MLP 4x d_model, RMSNorm.
// For the transformer, n_layers counts attention+MLP pairs (HF num_hidden_layers); for the
// others it counts residual blocks, and a hybrid's pattern comes from the study's ratios
// (attention 0.08, MLP 0.5).
ModelConfig default_config(Arch arch, int64_t d_model, int64_t n_layers, int64_t vocab_size);

// Throws listing the valid names.
ModelConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

// The transformer in Llama form (RMSNorm, SwiGLU, full RoPE, model_type "llama").
void make_llama_style(ModelConfig& cfg);
// A pure Mamba-2 in transformers' own `mamba2` layout (Mamba2ForCausalLM): the gated norm over the
// whole width and dt unclamped. The mamba2-* presets are the study's grouped-norm model, written
// as an all-M nemotron_h (docs/study-fidelity.md); this is the way back to the HF mamba2 type.
void make_transformers_mamba2_style(ModelConfig& cfg);

}  // namespace mambalm
