// Random initialisation of one parameter, per kind: the study's rules (docs/study-fidelity.md, point 4).
#pragma once
#include <string>

#include "config/model_config.h"
#include "core/rng.h"
#include "model/param.h"

namespace mambalm {

// Fills *p.tensor (already allocated, F32, shape p.shape) from `rng`.
void init_parameter(const ParamRef& p, const ModelConfig& cfg, Rng& rng);

// The same values as init_parameter, drawn by all OpenMP threads: each takes a block of whole
// rows and starts its copy of `rng` where the one-thread draw would stand (Rng::skip), so the
// result does not depend on the thread count. Leaves `rng` past every value, as init_parameter does.
void init_parameter_threaded(const ParamRef& p, const ModelConfig& cfg, Rng& rng);

// How many Rng::next_u64 draws one value of this kind consumes (fixed per kind: what makes the
// skip-ahead of init_parameter_threaded exact).
uint64_t draws_per_value(Init init);

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
