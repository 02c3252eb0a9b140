// Deferred zero fills of gradients (ops/deferred_zero.h): a marked buffer holds NaN garbage here,
// and every way of touching it must give what a real zero fill up front gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "config/presets.h"
#include "model/model.h"
#include "ops/deferred_zero.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"
#include "perturbed_model.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

// A tensor of NaNs: stale bytes that a missed fill would carry into the result.
Tensor garbage(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = std::numeric_limits<float>::quiet_NaN();
  return t;
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.f32(), t.f32() + t.numel()); }

// Equal values (an exact zero's sign may differ: 0 + product against the product alone).
void expect_same(const Tensor& a, const Tensor& b, const char* what) {
  ASSERT_EQ(a.numel(), b.numel()) << what;
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.f32()[i], b.f32()[i]) << what << " at " << i;
}

}  // namespace

TEST(DeferredZero, LinearBackwardWritesAMarkedDwWithoutReadingIt) {
  const int64_t M = 23, K = 37, N = 19;
  const Tensor dy = random_tensor({M, N}), x = random_tensor({M, K}), w = random_tensor({N, K});
  Tensor dx = Tensor::empty({M, K}), want = Tensor::zeros({N, K}), db_want = Tensor::zeros({N});
  ops::linear_backward(dy, x, w, &dx, &want, &db_want);

  Tensor dw = garbage({N, K}), db = garbage({N});
  ops::defer_zero_fill(dw);
  ops::defer_zero_fill(db);
  ops::linear_backward(dy, x, w, &dx, &dw, &db);
  expect_same(dw, want, "dw");
  expect_same(db, db_want, "db (an accumulating op: filled first)");
  EXPECT_FALSE(ops::any_deferred_zero());
  // The mark is used once: the next call adds.
  ops::linear_backward(dy, x, w, &dx, &dw, nullptr);
  for (int64_t i = 0; i < dw.numel(); ++i) ASSERT_EQ(dw.f32()[i], want.f32()[i] + want.f32()[i]);
}

TEST(DeferredZero, PartsAndOtherOpsFillFirst) {
  const int64_t M = 11, K = 16, N1 = 5, N2 = 7;
  const Tensor d1 = random_tensor({M, N1}), d2 = random_tensor({M, N2}), x = random_tensor({M, K});
  const Tensor w = random_tensor({N1 + N2, K});
  Tensor dx = Tensor::empty({M, K}), want = Tensor::zeros({N1 + N2, K});
  ops::linear_backward_parts({&d1, &d2}, x, w, &dx, &want, nullptr);
  Tensor dw = garbage({N1 + N2, K});
  ops::defer_zero_fill(dw);
  ops::linear_backward_parts({&d1, &d2}, x, w, &dx, &dw, nullptr);
  expect_same(dw, want, "linear_backward_parts dw");

  // RMSNorm's dw (+=) on a marked buffer: filled, then added to.
  const Tensor xn = random_tensor({M, K}), gain = random_tensor({K}, 0.5f, 1.5f), dyn = random_tensor({M, K});
  Tensor dxn = Tensor::empty({M, K}), dgain_want = Tensor::zeros({K}), dgain = garbage({K});
  ops::rms_norm_backward(xn, gain, 1e-5f, dyn, dxn, &dgain_want);
  ops::defer_zero_fill(dgain);
  ops::rms_norm_backward(xn, gain, 1e-5f, dyn, dxn, &dgain);
  expect_same(dgain, dgain_want, "rms_norm dw");
  EXPECT_FALSE(ops::any_deferred_zero());
}

TEST(DeferredZero, AViewOfAMarkedTensorSettlesTheWholeTensor) {
  const int64_t M = 9, K = 8, N = 6;
  const Tensor dy = random_tensor({M, N / 2}), x = random_tensor({M, K}), w = random_tensor({N / 2, K});
  Tensor dx = Tensor::empty({M, K}), whole = garbage({N, K});
  ops::defer_zero_fill(whole);
  Tensor top = whole.slice0(0, N / 2);  // dw of half the rows: not the marked tensor itself
  ops::linear_backward(dy, x, w, &dx, &top, nullptr);
  Tensor want = Tensor::zeros({N / 2, K});
  ops::linear_backward(dy, x, w, &dx, &want, nullptr);
  expect_same(top, want, "the view's rows (added onto the fill)");
  for (int64_t i = N / 2 * K; i < N * K; ++i) ASSERT_EQ(whole.f32()[i], 0.0f) << "the rest of the tensor, at " << i;
  EXPECT_FALSE(ops::any_deferred_zero());
}

TEST(DeferredZero, SettleAllFillsAndDropForgets) {
  Tensor a = garbage({5}), b = garbage({3, 4});
  ops::defer_zero_fill(a);
  ops::defer_zero_fill(b);
  ops::drop_deferred_zero(b);  // its owner releases it: no fill
  EXPECT_TRUE(ops::any_deferred_zero());
  ops::settle_all_deferred_zeros();
  EXPECT_FALSE(ops::any_deferred_zero());
  for (float v : values(a)) EXPECT_EQ(v, 0.0f);
  for (float v : values(b)) EXPECT_TRUE(std::isnan(v));
}

// The model's gradients after zero_grads hold the previous step's values; a step after it must
// give the gradients of a model whose buffers were really zero.
TEST(DeferredZero, TrainStepAfterZeroGradsEqualsAFreshStep) {
  for (const char* name : {"hybrid-tiny", "mamba-tiny"}) {
    Model m = perturbed_model(preset_config(name));
    const int64_t V = m.config().vocab_size, B = 2, T = 16;
    Tensor ids = Tensor::empty({B, T}, DType::I32), targets = Tensor::empty({B, T}, DType::I32);
    const Tensor r = random_tensor({2 * B * T}, 0.0f, float(V));
    for (int64_t i = 0; i < B * T; ++i) {
      ids.data<int32_t>()[i] = std::min<int32_t>(int32_t(r.f32()[i]), int32_t(V - 1));
      targets.data<int32_t>()[i] = std::min<int32_t>(int32_t(r.f32()[B * T + i]), int32_t(V - 1));
    }
    m.allocate_grads();  // real zeros
    m.train_step(ids, targets, nullptr);
    std::vector<std::vector<float>> fresh;
    for (const ParamRef& p : m.params()) fresh.push_back(values(*p.grad));
    for (ParamRef& p : m.params())  // stale bytes, as if a fill were skipped
      for (int64_t i = 0; i < p.grad->numel(); ++i) p.grad->f32()[i] = std::numeric_limits<float>::quiet_NaN();
    m.zero_grads();
    m.train_step(ids, targets, nullptr);
    EXPECT_FALSE(ops::any_deferred_zero()) << name;
    for (size_t i = 0; i < fresh.size(); ++i) EXPECT_EQ(values(*m.params()[i].grad), fresh[i]) << name << " " << m.params()[i].name;
    // zero_grads then settle_grads reads as zeros without any step.
    m.zero_grads();
    m.settle_grads();
    for (const ParamRef& p : m.params())
      for (float v : values(*p.grad)) ASSERT_EQ(v, 0.0f) << name << " " << p.name;
  }
}
