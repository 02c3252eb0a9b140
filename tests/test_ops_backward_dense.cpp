// Backward of linear, embedding, the activations, softplus_dt, rope and cross-entropy: the fp32
// ops against central finite differences of double-precision naive forwards written here, for
// loss = <forward(inputs), R> with a random R. Parameter gradients are accumulated onto random
// initial values, so a "+=" that assigns (or an assign that accumulates) fails.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backward_check.h"
#include "core/error.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {
constexpr double kH = 1e-5;     // FD step (double): error ~1e-10 relative
constexpr double kTol = 2e-6;   // fp32 op vs exact gradient (see docs/numerics.md)

Vec plus(const Vec& a, const Vec& b) {
  Vec r(a);
  for (size_t i = 0; i < r.size(); ++i) r[i] += b[i];
  return r;
}
}  // namespace

TEST(DenseBackward, Linear) {
  const int64_t B = 2, T = 3, K = 37, N = 19;
  Vec x = random_vec(B * T * K), w = random_vec(N * K), b = random_vec(N), R = random_vec(B * T * N);
  auto loss = [&] {
    double l = 0;
    for (int64_t m = 0; m < B * T; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double y = b[size_t(n)];
        for (int64_t k = 0; k < K; ++k) y += x[size_t(m * K + k)] * w[size_t(n * K + k)];
        l += y * R[size_t(m * N + n)];
      }
    return l;
  };
  Tensor dx = Tensor::empty({B, T, K}), dw = random_tensor({N, K}), db = random_tensor({N});
  const Vec dw0 = to_vec(dw), db0 = to_vec(db);
  ops::linear_backward(to_f32(R, {B, T, N}), to_f32(x, {B, T, K}), to_f32(w, {N, K}), &dx, &dw, &db);
  expect_grad("linear dx", to_vec(dx), fd_grad(loss, x, kH), kTol);
  expect_grad("linear dw (+=)", to_vec(dw), plus(dw0, fd_grad(loss, w, kH)), kTol);
  expect_grad("linear db (+=)", to_vec(db), plus(db0, fd_grad(loss, b, kH)), kTol);
  // Optional outputs may be null.
  ops::linear_backward(to_f32(R, {B, T, N}), to_f32(x, {B, T, K}), to_f32(w, {N, K}), &dx, nullptr, nullptr);
  EXPECT_THROW(ops::linear_backward(to_f32(R, {B, T, N}), to_f32(x, {B, T, K}), to_f32(w, {K, N}), &dx,
                                    nullptr, nullptr),
               Error);
}

TEST(DenseBackward, EmbeddingWithRepeatedIds) {
  const int64_t B = 3, T = 50, V = 7, D = 300;  // D spans two column blocks
  Tensor ids = Tensor::empty({B, T}, DType::I32);
  Tensor r = random_tensor({B * T}, 0.0f, float(V));
  for (int64_t i = 0; i < B * T; ++i) ids.data<int32_t>()[i] = std::min<int32_t>(int32_t(r.f32()[i]), V - 1);
  Vec table = random_vec(V * D), R = random_vec(B * T * D);
  auto loss = [&] {
    double l = 0;
    for (int64_t i = 0; i < B * T; ++i)
      for (int64_t d = 0; d < D; ++d) l += table[size_t(ids.data<int32_t>()[i] * D + d)] * R[size_t(i * D + d)];
    return l;
  };
  Tensor dt = random_tensor({V, D});
  const Vec dt0 = to_vec(dt);
  ops::embedding_backward(ids, to_f32(R, {B, T, D}), dt);
  expect_grad("embedding dtable (+=, repeated ids)", to_vec(dt), plus(dt0, fd_grad(loss, table, kH)), kTol);
  ids.data<int32_t>()[5] = int32_t(V);
  EXPECT_THROW(ops::embedding_backward(ids, to_f32(R, {B, T, D}), dt), Error);
}

namespace {
using Act = double (*)(double);
double silu_d(double v) { return v / (1 + std::exp(-v)); }
double relu2_d(double v) { return v > 0 ? v * v : 0; }
double gelu_d(double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }

void check_activation(const char* name, Act f, void (*op)(const Tensor&, const Tensor&, Tensor&)) {
  const int64_t n = 4000;
  Vec x = random_vec(n, -8, 8), R = random_vec(n);
  auto loss = [&] {
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += f(x[size_t(i)]) * R[size_t(i)];
    return l;
  };
  Tensor dx = Tensor::empty({n});
  op(to_f32(x, {n}), to_f32(R, {n}), dx);
  expect_grad(std::string(name) + " dx", to_vec(dx), fd_grad(loss, x, kH), kTol);
  // In place: dx aliases dy.
  Tensor g = to_f32(R, {n});
  op(to_f32(x, {n}), g, g);
  expect_grad(std::string(name) + " dx in place (dx == dy)", to_vec(g), to_vec(dx), 1e-7);
}
}  // namespace

TEST(DenseBackward, Activations) {
  check_activation("silu", silu_d, ops::silu_backward);
  check_activation("relu_squared", relu2_d, ops::relu_squared_backward);
  check_activation("gelu", gelu_d, ops::gelu_backward);
}

TEST(DenseBackward, Swiglu) {
  const int64_t n = 3000;
  Vec g = random_vec(n, -8, 8), u = random_vec(n, -2, 2), R = random_vec(n);
  auto loss = [&] {
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += silu_d(g[size_t(i)]) * u[size_t(i)] * R[size_t(i)];
    return l;
  };
  Tensor dg = Tensor::empty({n}), du = Tensor::empty({n});
  ops::swiglu_backward(to_f32(g, {n}), to_f32(u, {n}), to_f32(R, {n}), dg, du);
  expect_grad("swiglu dgate", to_vec(dg), fd_grad(loss, g, kH), kTol);
  expect_grad("swiglu dup", to_vec(du), fd_grad(loss, u, kH), kTol);
}

TEST(DenseBackward, SoftplusDtRespectsClamp) {
  struct Case { float lo, hi, vmin, vmax; const char* name; };
  for (Case c : {Case{0.01f, 1.0f, -6.0f, 2.0f, "softplus_dt clamped [0.01, 1]"},
                 Case{0.0f, std::numeric_limits<float>::infinity(), -6.0f, 25.0f, "softplus_dt unclamped, linear tail > 20"}}) {
    const int64_t rows = 40, H = 6;
    Vec dt = random_vec(rows * H, c.vmin, c.vmax), bias = random_vec(H, -0.5, 0.5), R = random_vec(rows * H);
    // Every softplus value kept 1e-3 away from the clamp's ends: within the FD step of an end the
    // central difference straddles the kink (seed 16166664996651 put one there: rel_l2 1.3e-4).
    for (size_t i = 0; i < dt.size(); ++i) {
      auto sp = [&] {
        const double v = dt[i] + bias[i % size_t(H)];
        return v > 20 ? v : std::log1p(std::exp(v));
      };
      while (std::abs(sp() - c.lo) < 1e-3 || std::abs(sp() - c.hi) < 1e-3) dt[i] += 0.01;
    }
    auto loss = [&] {
      double l = 0;
      for (int64_t i = 0; i < rows * H; ++i) {
        const double v = dt[size_t(i)] + bias[size_t(i % H)];
        const double sp = v > 20 ? v : std::log1p(std::exp(v));
        l += std::min(std::max(sp, double(c.lo)), double(c.hi)) * R[size_t(i)];
      }
      return l;
    };
    Tensor ddt = Tensor::empty({rows, H}), db = random_tensor({H});
    const Vec db0 = to_vec(db);
    ops::softplus_dt_backward(to_f32(dt, {rows, H}), to_f32(bias, {H}), c.lo, c.hi, to_f32(R, {rows, H}), ddt, &db);
    const Vec fd = fd_grad(loss, dt, kH);
    int zeros = 0;
    for (double v : fd) zeros += v == 0.0;
    std::printf("[info] %s: %d of %lld gradients clamped to 0\n", c.name, zeros, (long long)fd.size());
    expect_grad(std::string(c.name) + " ddt", to_vec(ddt), fd, kTol);
    expect_grad(std::string(c.name) + " ddt_bias (+=)", to_vec(db), plus(db0, fd_grad(loss, bias, kH)), kTol);
  }
}

TEST(DenseBackward, RopeIsTheTransposeRotation) {
  const int64_t B = 2, T = 9, H = 3, Dh = 8, rd = 4, pos0 = 1000;
  const double theta = 10000.0;
  Vec x = random_vec(B * T * H * Dh), R = random_vec(B * T * H * Dh);
  auto loss = [&] {
    double l = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
          const size_t o = size_t(((b * T + t) * H + h) * Dh);
          for (int64_t i = 0; i < Dh; ++i) {
            double y = x[o + size_t(i)];
            if (i < rd) {
              const int64_t j = i % (rd / 2);
              const double a = double(pos0 + t) * std::pow(theta, -2.0 * double(j) / double(rd));
              y = i < rd / 2 ? x[o + size_t(i)] * std::cos(a) - x[o + size_t(i + rd / 2)] * std::sin(a)
                             : x[o + size_t(i)] * std::cos(a) + x[o + size_t(i - rd / 2)] * std::sin(a);
            }
            l += y * R[o + size_t(i)];
          }
        }
    return l;
  };
  Tensor g = to_f32(R, {B, T, H, Dh});
  ops::rope_backward(g, pos0, rd, theta);
  expect_grad("rope_backward dx", to_vec(g), fd_grad(loss, x, kH), kTol);
}

TEST(DenseBackward, CrossEntropy) {
  const int64_t N = 9, V = 300;
  Vec logits = random_vec(N * V, -10, 10);
  Tensor targets = Tensor::empty({N}, DType::I32);
  Tensor r = random_tensor({N}, 0.0f, float(V));
  for (int64_t i = 0; i < N; ++i) targets.data<int32_t>()[i] = std::min<int32_t>(int32_t(r.f32()[i]), V - 1);
  targets.data<int32_t>()[3] = -1;  // ignored row
  const float scale = 0.5f;
  auto loss = [&] {
    double sum = 0;
    int cnt = 0;
    for (int64_t i = 0; i < N; ++i) {
      const int32_t t = targets.data<int32_t>()[i];
      if (t < 0) continue;
      double mx = -1e300, s = 0;
      for (int64_t j = 0; j < V; ++j) mx = std::max(mx, logits[size_t(i * V + j)]);
      for (int64_t j = 0; j < V; ++j) s += std::exp(logits[size_t(i * V + j)] - mx);
      sum += mx + std::log(s) - logits[size_t(i * V + t)];
      ++cnt;
    }
    return sum / cnt;
  };
  Tensor lg = to_f32(logits, {N, V});
  Tensor d = Tensor::empty({N, V});
  ops::CrossEntropyResult res = ops::cross_entropy_mean(lg, targets, &d, scale);
  const double want = loss();
  std::printf("[err] %-56s abs=%.3e (loss %.4f)\n", "cross_entropy mean loss vs double", std::fabs(res.mean_loss - want), want);
  EXPECT_LT(std::fabs(res.mean_loss - want), 1e-6 * std::fabs(want));
  EXPECT_EQ(res.n_valid, N - 1);
  Vec fd = fd_grad(loss, logits, kH);
  for (double& v : fd) v *= scale;
  expect_grad("cross_entropy dlogits (grad_scale 0.5)", to_vec(d), fd, kTol);
  for (int64_t j = 0; j < V; ++j) EXPECT_EQ(d.f32()[3 * V + j], 0.0f);
  // dlogits aliasing logits gives the same numbers.
  ops::CrossEntropyResult res2 = ops::cross_entropy_mean(lg, targets, &lg, scale);
  EXPECT_EQ(res2.mean_loss, res.mean_loss);
  expect_grad("cross_entropy dlogits in place (aliasing logits)", to_vec(lg), to_vec(d), 1e-7);
  // Extreme logits stay finite (log-softmax with max subtraction).
  Tensor big = to_f32(logits, {N, V});
  for (int64_t i = 0; i < N * V; ++i) big.f32()[i] *= 1000.0f;
  ops::CrossEntropyResult res3 = ops::cross_entropy_mean(big, targets, &d, 1.0f);
  EXPECT_TRUE(std::isfinite(res3.mean_loss));
  targets.data<int32_t>()[0] = int32_t(V);
  EXPECT_THROW(ops::cross_entropy_mean(lg, targets, &d, 1.0f), Error);
}
