#include "infer/sampling_penalties.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace mambalm {

void check_penalties(const Penalties& p, const char* where) {
  check(std::isfinite(p.repeat) && p.repeat > 0, where, "the repetition penalty must be > 0 (1 = off)");
  check(p.repeat_last_n >= -1, where, "repeat-last-n must be >= -1 (-1 = the whole context, 0 = off)");
  check(std::isfinite(p.presence) && std::isfinite(p.frequency), where, "presence and frequency penalties must be finite");
}

void apply_penalties(float* logits, int64_t vocab, const std::vector<int32_t>& context, size_t generated,
                     const Penalties& p) {
  if (p.repeat != 1.0 && p.repeat_last_n != 0) {
    const size_t n = p.repeat_last_n < 0 ? context.size() : std::min(context.size(), static_cast<size_t>(p.repeat_last_n));
    std::vector<int32_t> seen(context.end() - static_cast<std::ptrdiff_t>(n), context.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float f = static_cast<float>(p.repeat);
    for (int32_t t : seen) {
      if (t < 0 || t >= vocab) continue;
      logits[t] = logits[t] > 0 ? logits[t] / f : logits[t] * f;
    }
  }
  if (p.presence != 0.0 || p.frequency != 0.0) {
    std::unordered_map<int32_t, int64_t> counts;
    for (size_t i = context.size() - std::min(generated, context.size()); i < context.size(); ++i) ++counts[context[i]];
    for (const auto& [t, c] : counts) {
      if (t < 0 || t >= vocab) continue;
      logits[t] -= static_cast<float>(p.presence + p.frequency * static_cast<double>(c));
    }
  }
}

}  // namespace mambalm
