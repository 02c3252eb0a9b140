// Random initialisation of one parameter, per kind (docs/architecture.md, "Initialisation").
#pragma once
#include "config/model_config.h"
#include "core/rng.h"
#include "model/param.h"

namespace mambalm {

// Fills *p.tensor (already allocated, F32, shape p.shape) from `rng`.
void init_parameter(const ParamRef& p, const ModelConfig& cfg, Rng& rng);

// The standard deviation init_parameter draws a matrix parameter with (Normal, NormalOutput,
// Mamba1DtWeight); 0 for other kinds.
double init_std(const ParamRef& p, const ModelConfig& cfg);

}  // namespace mambalm
