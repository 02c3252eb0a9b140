// Random initialisation of one parameter, per kind: the study's rules (docs/study-fidelity.md, point 4).
#pragma once
#include <string>

#include "config/model_config.h"
#include "core/rng.h"
#include "model/param.h"

namespace mambalm {

// Fills *p.tensor (already allocated, F32, shape p.shape) from `rng`.
void init_parameter(const ParamRef& p, const ModelConfig& cfg, Rng& rng);

// The standard deviation init_parameter draws a matrix parameter with (Normal, NormalOutput,
// NormalMixerOutput, FanInUniform, Mamba1DtWeight); 0 for other kinds.
double init_std(const ParamRef& p, const ModelConfig& cfg);

// The layer count of Megatron's scaled initialisation: the number of TransformerLayers (attention +
// MLP pairs, half the pattern) for the Transformer, every block of the pattern for the Mamba stacks
// (megatron/core/transformer/transformer_config.py and megatron/core/ssm/mamba_block.py).
int64_t megatron_num_layers(const ModelConfig& cfg);

class Model;

// Writes a randomly initialised model directory (config.json + model.safetensors as `dtype`,
// F32 or BF16) tensor by tensor, without allocating the model: each parameter is drawn in
// pieces of at most 4M values and streamed to the file, so memory stays near 50 MB whatever the
// model's size. The values are exactly those of model.init_random(seed) followed by
// model.save(dir, dtype) (same streams, same order). `progress` draws a bar on stderr.
void write_random_model(Model& model, uint64_t seed, DType dtype, const std::string& model_dir, bool progress);

}  // namespace mambalm
