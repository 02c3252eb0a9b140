// Helpers for the op backward tests (tests/test_ops_backward_*.cpp): double vectors, central
// finite differences of a double-precision loss, and the error report printed as `[err]` lines.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "test_util.h"

namespace mambalm::testing {

using Vec = std::vector<double>;

inline Vec to_vec(const Tensor& t) {
  Vec v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = t.dtype() == DType::F64 ? t.data<double>()[i] : t.f32()[i];
  return v;
}
inline Tensor to_f32(const Vec& v, const Shape& s) {
  Tensor t = Tensor::empty(s);
  for (size_t i = 0; i < v.size(); ++i) t.f32()[i] = static_cast<float>(v[i]);
  return t;
}
// Uniform random values in [lo, hi) (fresh per run, via random_tensor's seed), never zeros.
inline Vec random_vec(int64_t n, double lo = -1.0, double hi = 1.0) {
  return to_vec(random_tensor({n}, float(lo), float(hi)));
}
// Central differences of loss() w.r.t. every element of p (perturbed in place, restored).
inline Vec fd_grad(const std::function<double()>& loss, Vec& p, double h) {
  Vec g(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double v = p[i];
    p[i] = v + h;
    const double lp = loss();
    p[i] = v - h;
    const double lm = loss();
    p[i] = v;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}
inline double rel_l2(const Vec& got, const Vec& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  if (got.size() != want.size()) return INFINITY;
  return std::sqrt(num) / (std::sqrt(den) + 1e-300);
}
inline void expect_grad(const std::string& what, const Vec& got, const Vec& want, double tol) {
  const double e = rel_l2(got, want);
  double norm = 0;
  for (double w : want) norm += w * w;
  std::printf("[err] %-56s rel_l2=%.3e |grad|=%.3e (tol %.0e)\n", what.c_str(), e, std::sqrt(norm), tol);
  EXPECT_LT(e, tol) << what << " (seed " << test_seed() << ")";
  EXPECT_GT(norm, 0.0) << what << ": the reference gradient is zero, the check is vacuous";
}
inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace mambalm::testing
