// CPU ops: linear, embedding, elementwise activations and norms, each against a naive float64
// reference on fresh random inputs, plus the error paths of dispatch (wrong shapes/dtypes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"
#include "test_util.h"

using namespace mambalm;
using mambalm::testing::max_abs_diff;
using mambalm::testing::random_tensor;
using mambalm::testing::relative_l2;

namespace {

// A float64 tensor to hold a reference result.
Tensor ref_like(const Shape& s) { return Tensor::zeros(s, DType::F64); }

// Prints the measured error so docs/numerics.md can quote it, then checks it.
void expect_close(const char* what, const Tensor& got, const Tensor& want, double tol) {
  double rel = relative_l2(got, want);
  double mx = max_abs_diff(got, want);
  std::printf("[err] %-40s rel_l2=%.3e max_abs=%.3e (tol rel_l2 %.0e)\n", what, rel, mx, tol);
  EXPECT_LT(rel, tol) << what << " (seed " << mambalm::testing::test_seed() << ")";
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

// ---- linear --------------------------------------------------------------------------------

void check_linear(const Shape& lead, int64_t K, int64_t N, bool with_bias, double tol) {
  // (built by index, not push_back: GCC 12 -O3 gives a false -Warray-bounds on the latter)
  Shape xs(lead.size() + 1), ys(lead.size() + 1);
  for (size_t i = 0; i < lead.size(); ++i) xs[i] = ys[i] = lead[i];
  xs.back() = K;
  ys.back() = N;
  Tensor x = random_tensor(xs);
  Tensor w = random_tensor({N, K}, -0.2f, 0.2f);
  Tensor b = random_tensor({N});
  Tensor y = Tensor::empty(ys);
  ops::linear(x, w, with_bias ? &b : nullptr, y);
  Tensor ref = ref_like(ys);
  const int64_t M = x.numel() / K;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = with_bias ? b.f32()[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += double(x.f32()[m * K + k]) * w.f32()[n * K + k];
      ref.data<double>()[m * N + n] = s;
    }
  expect_close(with_bias ? "linear (bias)" : "linear (no bias)", y, ref, tol);
}

TEST(OpsLinear, MatchesNaiveWithBiasAndFlattenedLeadingDims) { check_linear({2, 3, 5}, 37, 29, true, 1e-6); }
TEST(OpsLinear, MatchesNaiveWithoutBias) { check_linear({7}, 64, 48, false, 1e-6); }
TEST(OpsLinear, MatchesNaiveLongReduction) { check_linear({3, 17}, 2048, 96, true, 1e-5); }

TEST(OpsLinear, ShapeErrorsThrow) {
  Tensor x = random_tensor({2, 3, 8});
  Tensor w = random_tensor({5, 8});
  Tensor b = random_tensor({5});
  Tensor y = Tensor::empty({2, 3, 5});
  Tensor w_bad = random_tensor({5, 7});
  Tensor y_bad = Tensor::empty({2, 3, 4});
  Tensor b_bad = random_tensor({4});
  Tensor w_f64 = Tensor::zeros({5, 8}, DType::F64);
  EXPECT_THROW(ops::linear(x, w_bad, &b, y), Error);
  EXPECT_THROW(ops::linear(x, w, &b, y_bad), Error);
  EXPECT_THROW(ops::linear(x, w, &b_bad, y), Error);
  EXPECT_THROW(ops::linear(x, w_f64, &b, y), Error);
  // y aliasing x is refused (the gemm would read what it writes)
  Tensor sq = random_tensor({4, 4});
  Tensor wsq = random_tensor({4, 4});
  EXPECT_THROW(ops::linear(sq, wsq, nullptr, sq), Error);
  try {
    ops::linear(x, w_bad, &b, y);
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("linear"), std::string::npos) << m;
    EXPECT_NE(m.find("[5, 7]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3, 8]"), std::string::npos) << m;
  }
}

// linear_onto (a block's output projection written onto the residual stream) is linear then add,
// bit for bit: training's forward relies on it giving the losses the separate add gave.
TEST(OpsLinear, OntoIsLinearThenAddBitForBit) {
  for (const bool with_bias : {false, true}) {
    for (const int64_t rows : {1, 2, 40}) {  // the GEMV's rows and the GEMM's
      Tensor x = random_tensor({rows, 96});
      Tensor w = random_tensor({72, 96}, -0.2f, 0.2f);
      Tensor b = random_tensor({72});
      Tensor r = random_tensor({rows, 72}, -3.0f, 3.0f);
      Tensor y = Tensor::empty({rows, 72}), want = Tensor::empty({rows, 72});
      ops::linear_onto(x, w, with_bias ? &b : nullptr, r, y);
      ops::linear(x, w, with_bias ? &b : nullptr, want);
      ops::add(r, want, want);
      EXPECT_EQ(max_abs_diff(y, want), 0.0) << "rows " << rows << (with_bias ? " with bias" : "");
      EXPECT_GT(max_abs_diff(y, r), 0.1);  // the product was added, not dropped
    }
  }
}

TEST(OpsLinear, OntoErrorsThrow) {
  Tensor x = random_tensor({2, 3, 8});
  Tensor w = random_tensor({5, 8});
  Tensor r = random_tensor({2, 3, 5});
  Tensor y = Tensor::empty({2, 3, 5});
  Tensor r_bad = random_tensor({2, 3, 4});
  Tensor r_f64 = Tensor::zeros({2, 3, 5}, DType::F64);
  EXPECT_THROW(ops::linear_onto(x, w, nullptr, r_bad, y), Error);
  EXPECT_THROW(ops::linear_onto(x, w, nullptr, r_f64, y), Error);
  EXPECT_THROW(ops::linear_onto(x, w, nullptr, r, r), Error);  // y aliasing the residual
  try {
    ops::linear_onto(x, w, nullptr, r_bad, y);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linear_onto"), std::string::npos) << e.what();
  }
}

// ---- embedding -----------------------------------------------------------------------------

TEST(OpsEmbedding, CopiesRows) {
  const int64_t V = 50, D = 12;
  Tensor table = random_tensor({V, D});
  Tensor ids = Tensor::empty({2, 9}, DType::I32);
  Tensor r = random_tensor({2, 9}, 0.0f, float(V));
  for (int64_t i = 0; i < ids.numel(); ++i)
    ids.data<int32_t>()[i] = std::min<int32_t>(int32_t(r.f32()[i]), int32_t(V - 1));
  ids.data<int32_t>()[0] = 0;
  ids.data<int32_t>()[1] = int32_t(V - 1);
  Tensor y = Tensor::empty({2, 9, D});
  ops::embedding(ids, table, y);
  for (int64_t i = 0; i < ids.numel(); ++i)
    for (int64_t d = 0; d < D; ++d)
      ASSERT_EQ(y.f32()[i * D + d], table.f32()[ids.data<int32_t>()[i] * D + d]) << i << "," << d;
}

TEST(OpsEmbedding, OutOfRangeIdThrows) {
  Tensor table = random_tensor({10, 4});
  Tensor ids = Tensor::zeros({1, 3}, DType::I32);
  Tensor y = Tensor::empty({1, 3, 4});
  ids.data<int32_t>()[2] = 10;
  EXPECT_THROW(ops::embedding(ids, table, y), Error);
  ids.data<int32_t>()[2] = -1;
  EXPECT_THROW(ops::embedding(ids, table, y), Error);
  try {
    ids.data<int32_t>()[2] = 10;
    ops::embedding(ids, table, y);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("10"), std::string::npos) << e.what();
  }
  Tensor ids_f = random_tensor({1, 3});  // F32 ids: wrong dtype
  EXPECT_THROW(ops::embedding(ids_f, table, y), Error);
  Tensor y_bad = Tensor::empty({1, 3, 5});
  ids.data<int32_t>()[2] = 1;
  EXPECT_THROW(ops::embedding(ids, table, y_bad), Error);
}

// ---- elementwise ---------------------------------------------------------------------------

template <class Op, class Ref>
void check_unary(const char* name, Op op, Ref ref, double tol) {
  Tensor x = random_tensor({3, 7, 129}, -8.0f, 8.0f);
  x.f32()[0] = -100.0f;  // far tails must stay finite and right
  x.f32()[1] = 100.0f;
  x.f32()[2] = 0.0f;
  Tensor y = Tensor::empty(x.shape());
  op(x, y);
  Tensor want = ref_like(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) want.data<double>()[i] = ref(double(x.f32()[i]));
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.f32()[i])) << name << " " << i;
  expect_close(name, y, want, tol);
  // max relative error per element, for values that are not tiny
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    double w = want.data<double>()[i];
    if (std::fabs(w) > 1e-3) worst = std::max(worst, std::fabs(y.f32()[i] - w) / std::fabs(w));
  }
  std::printf("[err] %-40s max elementwise rel=%.3e\n", name, worst);
  EXPECT_LT(worst, 1e-5) << name;
  // in place (y aliases x) gives the same numbers
  Tensor x2 = x.clone();
  op(x2, x2);
  EXPECT_EQ(max_abs_diff(x2, y), 0.0) << name << " in place";
}

TEST(OpsElementwise, SiluMatchesNaive) {
  check_unary("silu", [](const Tensor& x, Tensor& y) { ops::silu(x, y); },
              [](double v) { return v * sigmoid(v); }, 1e-6);
}
TEST(OpsElementwise, ReluSquaredMatchesNaive) {
  check_unary("relu_squared", [](const Tensor& x, Tensor& y) { ops::relu_squared(x, y); },
              [](double v) { return v > 0 ? v * v : 0.0; }, 1e-6);
}
TEST(OpsElementwise, GeluExactMatchesNaive) {
  check_unary("gelu", [](const Tensor& x, Tensor& y) { ops::gelu(x, y); },
              [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }, 1e-6);
}

TEST(OpsElementwise, AddAndSwigluMatchNaive) {
  Tensor a = random_tensor({5, 300}, -6.0f, 6.0f);
  Tensor b = random_tensor({5, 300}, -6.0f, 6.0f);
  Tensor y = Tensor::empty({5, 300});
  ops::add(a, b, y);
  Tensor want = ref_like(a.shape());
  for (int64_t i = 0; i < a.numel(); ++i) want.data<double>()[i] = double(a.f32()[i]) + b.f32()[i];
  expect_close("add", y, want, 1e-7);
  ops::swiglu(a, b, y);
  for (int64_t i = 0; i < a.numel(); ++i) {
    double g = a.f32()[i];
    want.data<double>()[i] = g * sigmoid(g) * b.f32()[i];
  }
  expect_close("swiglu", y, want, 1e-6);
  // aliasing the output with an input is allowed for elementwise ops
  Tensor a2 = a.clone();
  ops::swiglu(a2, b, a2);
  EXPECT_EQ(max_abs_diff(a2, y), 0.0);
}

TEST(OpsElementwise, ShapeMismatchThrows) {
  Tensor a = random_tensor({4, 5});
  Tensor b = random_tensor({5, 4});
  Tensor y = Tensor::empty({4, 5});
  EXPECT_THROW(ops::add(a, b, y), Error);
  EXPECT_THROW(ops::swiglu(a, b, y), Error);
  Tensor y2 = Tensor::empty({20});
  EXPECT_THROW(ops::silu(a, y2), Error);
  EXPECT_THROW(ops::gelu(a, y2), Error);
  EXPECT_THROW(ops::relu_squared(a, y2), Error);
}

// bf16 activations (mixed precision's MLP intermediates) exist on CUDA only: on the CPU they are
// refused with a message that says so, whatever the weights' dtype.
TEST(OpsElementwise, Bf16ActivationsOnTheCpuThrowWithTheReason) {
  const Tensor x16 = random_tensor({4, 16}).to(DType::BF16);
  Tensor y16 = Tensor::empty({4, 16}, DType::BF16);
  const Tensor x32 = random_tensor({4, 16});
  Tensor y32 = Tensor::empty({4, 16});
  EXPECT_THROW(ops::gelu(x16, y16), Error);
  EXPECT_THROW(ops::relu_squared(x16, y32), Error);
  EXPECT_THROW(ops::gelu_backward(x32, x16, y32), Error);
  const Tensor gain = random_tensor({16}, 0.5f, 1.5f), shift = random_tensor({16});
  EXPECT_THROW(ops::rms_norm(x32, gain, 1e-5f, y16), Error);  // mixed precision's bf16 norm output: CUDA only
  EXPECT_THROW(ops::layer_norm(x32, gain, &shift, 1e-5f, true, y16), Error);
  const Tensor w16 = random_tensor({8, 16}).to(DType::BF16);
  Tensor out = Tensor::empty({4, 8});
  try {
    ops::linear(x16, w16, nullptr, out);
    ADD_FAILURE() << "linear took a BF16 x on the CPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected F32 (or BF16 on CUDA with BF16 weights)"), std::string::npos)
        << e.what();
  }
}

// ---- norms ---------------------------------------------------------------------------------

TEST(OpsNorms, RmsNormMatchesNaive) {
  const int64_t D = 1000;
  Tensor x = random_tensor({3, 4, D}, -3.0f, 3.0f);
  Tensor w = random_tensor({D}, 0.5f, 1.5f);
  Tensor y = Tensor::empty(x.shape());
  const float eps = 1e-5f;
  ops::rms_norm(x, w, eps, y);
  Tensor want = ref_like(x.shape());
  for (int64_t r = 0; r < 12; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += double(x.f32()[r * D + i]) * x.f32()[r * D + i];
    double inv = 1.0 / std::sqrt(ss / D + eps);
    for (int64_t i = 0; i < D; ++i) want.data<double>()[r * D + i] = x.f32()[r * D + i] * inv * w.f32()[i];
  }
  expect_close("rms_norm", y, want, 1e-6);
}

void check_layer_norm(bool with_bias, bool zero_centered, float offset) {
  const int64_t D = 777, R = 6;
  Tensor x = random_tensor({R, D}, -2.0f, 2.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += offset;
  Tensor w = random_tensor({D}, -0.5f, 0.5f);
  Tensor b = random_tensor({D});
  Tensor y = Tensor::empty(x.shape());
  const float eps = 1e-5f;
  ops::layer_norm(x, w, with_bias ? &b : nullptr, eps, zero_centered, y);
  Tensor want = ref_like(x.shape());
  for (int64_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < D; ++i) mean += x.f32()[r * D + i];
    mean /= D;
    for (int64_t i = 0; i < D; ++i) var += (x.f32()[r * D + i] - mean) * (x.f32()[r * D + i] - mean);
    var /= D;
    for (int64_t i = 0; i < D; ++i) {
      double g = double(w.f32()[i]) + (zero_centered ? 1.0 : 0.0);
      want.data<double>()[r * D + i] =
          (x.f32()[r * D + i] - mean) / std::sqrt(var + eps) * g + (with_bias ? b.f32()[i] : 0.0);
    }
  }
  char name[96];
  std::snprintf(name, sizeof name, "layer_norm bias=%d 1p=%d offset=%g", with_bias, zero_centered, offset);
  // A mean offset of 100 leaves x with ~7e-6 relative spacing: the fp32 subtraction x - mean
  // then carries that rounding into the result (see docs/numerics.md).
  expect_close(name, y, want, offset != 0.0f ? 2e-5 : 1e-6);
}

TEST(OpsNorms, LayerNormMatchesNaive) {
  check_layer_norm(true, false, 0.0f);
  check_layer_norm(false, false, 0.0f);
  check_layer_norm(true, true, 0.0f);
  check_layer_norm(false, true, 0.0f);
  check_layer_norm(true, true, 100.0f);  // large mean: two-pass variance
}

void check_gated(int64_t D, int64_t group) {
  Tensor x = random_tensor({2, 5, D}, -2.0f, 2.0f);
  Tensor z = random_tensor({2, 5, D}, -4.0f, 4.0f);
  Tensor w = random_tensor({D}, 0.5f, 1.5f);
  Tensor y = Tensor::empty(x.shape());
  const float eps = 1e-5f;
  ops::gated_rms_norm(x, z, w, group, eps, y);
  Tensor want = ref_like(x.shape());
  std::vector<double> g(static_cast<size_t>(D));
  for (int64_t r = 0; r < 10; ++r) {
    for (int64_t i = 0; i < D; ++i) {
      double zi = z.f32()[r * D + i];
      g[size_t(i)] = x.f32()[r * D + i] * zi * sigmoid(zi);
    }
    for (int64_t g0 = 0; g0 < D; g0 += group) {
      double ss = 0;
      for (int64_t i = g0; i < g0 + group; ++i) ss += g[size_t(i)] * g[size_t(i)];
      double inv = 1.0 / std::sqrt(ss / group + eps);
      for (int64_t i = g0; i < g0 + group; ++i) want.data<double>()[r * D + i] = g[size_t(i)] * inv * w.f32()[i];
    }
  }
  char name[64];
  std::snprintf(name, sizeof name, "gated_rms_norm D=%lld group=%lld", (long long)D, (long long)group);
  expect_close(name, y, want, 1e-6);
}

TEST(OpsNorms, GatedRmsNormMatchesNaive) {
  check_gated(96, 96);  // one group
  check_gated(96, 24);  // four groups: the norm must not mix groups
  check_gated(96, 1);
}

TEST(OpsNorms, ErrorsThrow) {
  Tensor x = random_tensor({2, 12});
  Tensor z = random_tensor({2, 12});
  Tensor w = random_tensor({12});
  Tensor w_bad = random_tensor({11});
  Tensor y = Tensor::empty({2, 12});
  EXPECT_THROW(ops::rms_norm(x, w_bad, 1e-5f, y), Error);
  EXPECT_THROW(ops::layer_norm(x, w, &w_bad, 1e-5f, false, y), Error);
  EXPECT_THROW(ops::gated_rms_norm(x, z, w, 5, 1e-5f, y), Error);   // 5 does not divide 12
  EXPECT_THROW(ops::gated_rms_norm(x, z, w, 0, 1e-5f, y), Error);
  Tensor z_bad = random_tensor({2, 11});
  EXPECT_THROW(ops::gated_rms_norm(x, z_bad, w, 4, 1e-5f, y), Error);
  EXPECT_THROW(ops::rms_norm(x, w, -1.0f, y), Error);
}
