// The optimizer's ops on the CPU: the AdamW update and the reductions for clipping and the
// finiteness check. Reductions use fixed blocks summed in a fixed order, so the result does not
// depend on the thread count or on which thread finishes first (runs are bit-reproducible).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {
constexpr int64_t kBlock = 1 << 14;
}  // namespace

void adamw_update(Tensor& master, Tensor* copy, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  float* w = master.f32();
  const float* g = grad.f32();
  float* mp = m.f32();
  float* vp = v.f32();
  const float b1 = s.beta1, b2 = s.beta2, gs = s.grad_scale;
  const int64_t n = master.numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t j = 0; j < n; ++j) {
    const float gj = g[j] * gs;
    mp[j] = b1 * mp[j] + (1.0f - b1) * gj;
    vp[j] = b2 * vp[j] + (1.0f - b2) * gj * gj;
    w[j] = w[j] * s.shrink - s.step_size * mp[j] / (std::sqrt(vp[j]) * s.inv_sqrt_bias2 + s.eps);
  }
  if (copy && copy->raw() != master.raw()) std::copy(w, w + n, copy->f32());
}

void squared_norm(const Tensor& x, Tensor& out) {
  const float* p = x.f32();
  const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    for (int64_t j = b * kBlock, end = std::min(n, (b + 1) * kBlock); j < end; ++j) s += static_cast<double>(p[j]) * p[j];
    partial[static_cast<size_t>(b)] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  out.data<double>()[0] = total;
}

void nonfinite_flag(const Tensor& x, Tensor& out) {
  const float* p = x.f32();
  int32_t bad = 0;
  for (int64_t j = 0, n = x.numel(); j < n && !bad; ++j) bad = !std::isfinite(p[j]);
  out.data<int32_t>()[0] = bad;
}

// The lists: the one-tensor ops in turn (the CPU has no launches to save).
void fill_each(const std::vector<Tensor*>& ts, float value) {
  for (Tensor* t : ts) cpu::fill(*t, value);
}

void squared_norm_each(const std::vector<const Tensor*>& xs, Tensor& out) {
  for (size_t i = 0; i < xs.size(); ++i) {
    Tensor one = out.slice0(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    cpu::squared_norm(*xs[i], one);
  }
}

void adamw_update_each(const std::vector<AdamWSlot>& slots, const AdamWStep& s) {
  AdamWStep each = s;
  for (const AdamWSlot& slot : slots) {
    each.shrink = slot.shrink;
    cpu::adamw_update(*slot.master, slot.copy, *slot.grad, *slot.m, *slot.v, each);
  }
}

}  // namespace mambalm::ops::cpu
