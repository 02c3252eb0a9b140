// Random initialisation of one parameter, as DESIGN.md prescribes per kind.
#pragma once
#include "config/model_config.h"
#include "core/rng.h"
#include "model/param.h"

namespace mambalm {

// Fills *p.tensor (already allocated, F32, shape p.shape) from `rng`.
void init_parameter(const ParamRef& p, const ModelConfig& cfg, Rng& rng);

}  // namespace mambalm
