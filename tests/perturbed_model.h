// A random model whose every parameter is then moved by noise: logits far from uniform and no
// layer near identity, so that an error in any layer reaches the logits (an init-scale model
// would hide errors in the deeper layers). Shared by the inference and KV-cache tests.
#pragma once
#include <utility>

#include "core/rng.h"
#include "model/model.h"
#include "test_util.h"

namespace mambalm::testing {

inline Model perturbed_model(ModelConfig cfg) {
  Model m(std::move(cfg));
  m.init_random(test_seed());
  Rng rng(test_seed() + 7);
  for (ParamRef& p : m.params()) {
    float* w = p.tensor->f32();
    const bool matrix = p.init == Init::Normal || p.init == Init::NormalOutput || p.init == Init::NormalMixerOutput ||
                        p.init == Init::FanInUniform;
    for (int64_t i = 0; i < p.tensor->numel(); ++i) w[i] += static_cast<float>((matrix ? 0.1 : 0.2) * rng.uniform(-1, 1));
  }
  return m;
}

}  // namespace mambalm::testing
