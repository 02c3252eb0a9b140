// Cross-entropy over the vocabulary on the CPU, with its gradient fused in.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

// Per row: m = max, lse = m + log sum exp(l - m) (sum in double), loss = lse - l[target];
// dlogits = grad_scale (exp(l - lse) - [j == target]). The row's statistics are complete before
// any dlogits element is written, so dlogits may be the logits buffer itself.
void cross_entropy(const Tensor& logits, const Tensor& targets, float grad_scale, Tensor& loss, Tensor* dlogits) {
  const int64_t Nr = logits.dim(0), V = logits.dim(1);
  const int32_t* tg = targets.data<int32_t>();
  for (int64_t r = 0; r < Nr; ++r)
    if (tg[r] != -1 && (tg[r] < 0 || tg[r] >= V))
      fail("op cross_entropy",
           "target " + std::to_string(tg[r]) + " at row " + std::to_string(r) + " is out of range for " + std::to_string(V) +
               " classes",
           "targets must be token ids < vocab_size, or -1 to ignore the row");
  const float* lp = logits.f32();
  float* gp = dlogits ? dlogits->f32() : nullptr;
  float* out = loss.f32();
#pragma omp parallel for schedule(static) if (Nr * V > kParallelMin)
  for (int64_t r = 0; r < Nr; ++r) {
    const float* l = lp + r * V;
    float* g = gp ? gp + r * V : nullptr;
    if (tg[r] == -1) {
      if (g) std::fill(g, g + V, 0.0f);
      out[r] = 0.0f;
      continue;
    }
    float mx = l[0];
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, l[j]);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < V; ++j) sum += static_cast<double>(exp_fast(l[j] - mx));
    const double lse = static_cast<double>(mx) + std::log(sum);
    out[r] = static_cast<float>(lse - static_cast<double>(l[tg[r]]));
    if (g) {
      const float lsef = static_cast<float>(lse);
      const int64_t t = tg[r];
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) g[j] = grad_scale * exp_fast(l[j] - lsef);
      g[t] -= grad_scale;
    }
  }
}

}  // namespace mambalm::ops::cpu
