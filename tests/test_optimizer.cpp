// AdamW against a float64 transcription of torch.optim.AdamW, LR schedules, clipping and the
// non-finite gradient guard.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {

struct Owned {
  Tensor w, g;
  ParamRef ref(const std::string& name, bool decay) {
    return param(name, &w, &g, w.shape(), Init::Normal, decay);
  }
};

TEST(AdamW, MatchesTorchFormulaInDouble) {
  Owned a{random_tensor({7, 5}), Tensor()}, b{random_tensor({11}), Tensor()};
  ParamList params = {a.ref("w", true), b.ref("norm.weight", false)};
  AdamWConfig cfg;
  AdamW opt(params, cfg);
  std::vector<std::vector<double>> w = {{}, {}}, m = {{}, {}}, v = {{}, {}};
  Owned* owned[2] = {&a, &b};
  for (int i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < owned[i]->w.numel(); ++j) w[i].push_back(owned[i]->w.f32()[j]);
    m[i].assign(w[i].size(), 0.0);
    v[i].assign(w[i].size(), 0.0);
  }
  for (int t = 1; t <= 5; ++t) {
    double lr = 1e-2 / t;
    for (int i = 0; i < 2; ++i) {
      owned[i]->g = random_tensor(owned[i]->w.shape());
      params[static_cast<size_t>(i)].grad = &owned[i]->g;
    }
    opt = AdamW(opt);  // copying keeps the state (sanity of value semantics)
    opt.step(lr);
    for (int i = 0; i < 2; ++i) {
      bool decay = i == 0;
      for (size_t j = 0; j < w[i].size(); ++j) {
        double g = owned[i]->g.f32()[j];
        if (decay) w[i][j] *= 1 - lr * cfg.weight_decay;
        m[i][j] = cfg.beta1 * m[i][j] + (1 - cfg.beta1) * g;
        v[i][j] = cfg.beta2 * v[i][j] + (1 - cfg.beta2) * g * g;
        double mh = m[i][j] / (1 - std::pow(cfg.beta1, t)), vh = v[i][j] / (1 - std::pow(cfg.beta2, t));
        w[i][j] -= lr * mh / (std::sqrt(vh) + cfg.eps);
      }
    }
  }
  for (int i = 0; i < 2; ++i)
    for (size_t j = 0; j < w[i].size(); ++j) EXPECT_NEAR(owned[i]->w.f32()[j], w[i][j], 1e-6 * (1 + std::fabs(w[i][j])));
  EXPECT_EQ(opt.steps_taken(), 5);
}

TEST(AdamW, StateRoundTrip) {
  Owned a{random_tensor({4, 3}), random_tensor({4, 3})};
  ParamList params = {a.ref("w", true)};
  AdamW opt(params, AdamWConfig{});
  opt.step(1e-3);
  AdamW copy(params, AdamWConfig{});
  copy.load_state(opt.state_tensors(), opt.steps_taken());
  Tensor before = a.w.clone();
  opt.step(1e-3);
  Tensor after_opt = a.w.clone();
  a.w = before;
  copy.step(1e-3);
  EXPECT_EQ(max_abs_diff(a.w, after_opt), 0.0);
}

// Clipping is folded into the update: a step with grad_scale s equals a step on gradients that
// were multiplied by s first (the same float products, so the same bits).
TEST(AdamW, ClippingFoldsIntoTheUpdate) {
  Owned a{random_tensor({6, 5}), random_tensor({6, 5}, -4, 4)};
  Owned b{a.w.clone(), a.g.clone()};
  for (int64_t j = 0; j < b.g.numel(); ++j) b.g.f32()[j] *= 0.25f;
  AdamW scaled({a.ref("w", true)}, AdamWConfig{}), plain({b.ref("w", true)}, AdamWConfig{});
  scaled.step(1e-2, 0.25);
  plain.step(1e-2);
  EXPECT_EQ(max_abs_diff(a.w, b.w), 0.0);
}

TEST(Gradients, ClipAndNonFiniteGuard) {
  Owned a{random_tensor({10}), random_tensor({10}, 2, 3)};
  ParamList params = {a.ref("layers.0.w", true)};
  double norm = global_grad_norm(params);
  EXPECT_GT(norm, 6.0);
  double want = 0;
  for (int64_t j = 0; j < 10; ++j) want += double(a.g.f32()[j]) * a.g.f32()[j];
  EXPECT_NEAR(norm, std::sqrt(want), 1e-12 * norm);
  EXPECT_NEAR(norm * clip_factor(norm, 1.0), 1.0, 1e-5);
  EXPECT_EQ(clip_factor(0.5, 1.0), 1.0);
  EXPECT_EQ(clip_factor(norm, 0.0), 1.0);  // clipping off
  EXPECT_NO_THROW(check_finite_grads(params));
  a.g.f32()[3] = NAN;
  try {
    check_finite_grads(params);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.w"), std::string::npos);
  }
}

TEST(LrSchedule, WarmupCosineAndWsd) {
  LrSchedule s;
  s.max_lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_steps = 10;
  s.total_steps = 110;
  EXPECT_NEAR(s.at(0), 0.1, 1e-12);
  EXPECT_NEAR(s.at(9), 1.0, 1e-12);
  EXPECT_NEAR(s.at(10), 1.0, 1e-12);
  EXPECT_NEAR(s.at(109), 0.1, 1e-12);
  EXPECT_NEAR(s.at(10 + 99 / 2.0), 0.55, 0.02);
  for (int64_t t = 11; t < 110; ++t) EXPECT_LE(s.at(t), s.at(t - 1) + 1e-12);
  s.kind = ScheduleKind::Wsd;
  s.decay_fraction = 0.2;
  EXPECT_NEAR(s.at(50), 1.0, 1e-12);
  EXPECT_NEAR(s.at(89), 1.0, 1e-12);
  EXPECT_LT(s.at(100), 1.0);
  EXPECT_NEAR(s.at(109), 0.1, 1e-12);
  EXPECT_THROW(parse_schedule("linear-ish"), Error);
}

}  // namespace
