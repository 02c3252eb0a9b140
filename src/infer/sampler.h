// Next-token choice from logits: greedy (temperature 0), or sampling with temperature, top-k
// and top-p (nucleus), reproducible from a seed.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace mambalm {

struct SamplingOptions {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = no limit
  double top_p = 1.0;        // 1 = no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& opts);
  int32_t sample(const float* logits, int64_t vocab);

 private:
  SamplingOptions opts_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused across calls
};

}  // namespace mambalm
