// Backward of the norms, the causal conv (with SiLU, initial state, packed documents) and
// attention (GQA, KV prefix, packed documents): the fp32 ops against central finite differences
// of double-precision naive forwards written here, loss = <forward(inputs), R>. Parameter
// gradients are accumulated onto random initial values.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backward_check.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

using namespace mambalm;
using namespace mambalm::testing;

namespace {
constexpr double kH = 1e-5;
constexpr double kTol = 2e-6;

// A forward's loss sum_i out_i R_i against the naive definition's `want`. The terms have random
// signs and can nearly cancel (one seed gave |loss| = 1.8e-7 against terms of order 1, another
// 6e-7 for the conv): the error is scaled by ||out|| ||R||, the size of the terms
// (Cauchy-Schwarz), not by the loss itself.
void expect_loss_close(const std::string& tag, const Vec& out, const Vec& R, double want) {
  double on = 0, rn = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    on += out[i] * out[i];
    rn += R[i] * R[i];
  }
  const double got = dot(out, R), scale_terms = std::sqrt(on * rn);
  std::printf("[err] %-56s rel=%.3e\n", (tag + "forward (loss)").c_str(), std::fabs(got - want) / scale_terms);
  EXPECT_LT(std::fabs(got - want), 1e-6 * scale_terms) << tag;
}

Vec plus(const Vec& a, const Vec& b) {
  Vec r(a);
  for (size_t i = 0; i < r.size(); ++i) r[i] += b[i];
  return r;
}
double silu_d(double v) { return v / (1 + std::exp(-v)); }
Tensor seq_tensor(int64_t B, int64_t T, const std::vector<std::vector<int64_t>>& starts) {
  Tensor s = Tensor::empty({B, T}, DType::I32);
  for (int64_t b = 0; b < B; ++b) {
    int32_t id = 3;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t st : starts[size_t(b)]) id += st == t;
      s.data<int32_t>()[b * T + t] = id;
    }
  }
  return s;
}
}  // namespace

// ---- norms -----------------------------------------------------------------------------------

TEST(NormBackward, RmsNorm) {
  const int64_t rows = 70, D = 48;  // rows > the 32 row blocks of the dw reduction
  const float eps = 1e-5f;
  Vec x = random_vec(rows * D, -2, 2), w = random_vec(D, 0.5, 1.5), R = random_vec(rows * D);
  auto loss = [&] {
    double l = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double ms = 0;
      for (int64_t i = 0; i < D; ++i) ms += x[size_t(r * D + i)] * x[size_t(r * D + i)];
      const double inv = 1 / std::sqrt(ms / D + eps);
      for (int64_t i = 0; i < D; ++i) l += x[size_t(r * D + i)] * inv * w[size_t(i)] * R[size_t(r * D + i)];
    }
    return l;
  };
  Tensor dx = Tensor::empty({rows, D}), dw = random_tensor({D});
  const Vec dw0 = to_vec(dw);
  ops::rms_norm_backward(to_f32(x, {rows, D}), to_f32(w, {D}), eps, to_f32(R, {rows, D}), dx, &dw);
  expect_grad("rms_norm dx", to_vec(dx), fd_grad(loss, x, kH), kTol);
  expect_grad("rms_norm dw (+=)", to_vec(dw), plus(dw0, fd_grad(loss, w, kH)), kTol);
}

TEST(NormBackward, LayerNormPlainAndZeroCentered) {
  for (bool zc : {false, true}) {
    const int64_t rows = 40, D = 33;
    const float eps = 1e-5f;
    Vec x = random_vec(rows * D, -2, 3), w = random_vec(D, -0.5, 0.5), b = random_vec(D), R = random_vec(rows * D);
    auto loss = [&] {
      double l = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < D; ++i) m += x[size_t(r * D + i)];
        m /= D;
        for (int64_t i = 0; i < D; ++i) v += (x[size_t(r * D + i)] - m) * (x[size_t(r * D + i)] - m);
        const double inv = 1 / std::sqrt(v / D + eps);
        for (int64_t i = 0; i < D; ++i)
          l += ((x[size_t(r * D + i)] - m) * inv * (w[size_t(i)] + (zc ? 1 : 0)) + b[size_t(i)]) * R[size_t(r * D + i)];
      }
      return l;
    };
    Tensor dx = Tensor::empty({rows, D}), dw = random_tensor({D}), db = random_tensor({D});
    const Vec dw0 = to_vec(dw), db0 = to_vec(db);
    ops::layer_norm_backward(to_f32(x, {rows, D}), to_f32(w, {D}), eps, zc, to_f32(R, {rows, D}), dx, &dw, &db);
    const std::string tag = zc ? "layer_norm 1p " : "layer_norm ";
    expect_grad(tag + "dx", to_vec(dx), fd_grad(loss, x, kH), kTol);
    expect_grad(tag + "dw (+=)", to_vec(dw), plus(dw0, fd_grad(loss, w, kH)), kTol);
    expect_grad(tag + "db (+=)", to_vec(db), plus(db0, fd_grad(loss, b, kH)), kTol);
  }
}

// accumulate_dx (a block's residual path) adds the gradient onto dx: the assigned gradient added
// to dx afterwards, up to the compiler contracting the add into the product before it (an FMA
// build skips the rounding of the gradient: at most half an ulp of it, 2^-24 |dnorm|, plus the
// sum's own half ulp), and dw / db unchanged by it.
TEST(NormBackward, AccumulatedDxIsTheAssignedOnePlusDx) {
  const int64_t rows = 23, D = 40;
  const Tensor x = random_tensor({rows, D}, -2.0f, 2.0f), w = random_tensor({D}, 0.5f, 1.5f);
  const Tensor dy = random_tensor({rows, D}), dx0 = random_tensor({rows, D}, -3.0f, 3.0f);
  for (int kind = 0; kind < 3; ++kind) {  // RMSNorm, LayerNorm, LayerNorm1p
    Tensor assigned = Tensor::empty({rows, D}), summed = Tensor::empty({rows, D}), acc = dx0.clone();
    Tensor dw_a = Tensor::empty({D}), dw_b = Tensor::empty({D}), db_a = Tensor::empty({D}), db_b = Tensor::empty({D});
    ops::fill(dw_a, 0.0f), ops::fill(dw_b, 0.0f), ops::fill(db_a, 0.0f), ops::fill(db_b, 0.0f);
    if (kind == 0) {
      ops::rms_norm_backward(x, w, 1e-5f, dy, assigned, &dw_a);
      ops::rms_norm_backward(x, w, 1e-5f, dy, acc, &dw_b, /*accumulate_dx=*/true);
    } else {
      ops::layer_norm_backward(x, w, 1e-5f, kind == 2, dy, assigned, &dw_a, &db_a);
      ops::layer_norm_backward(x, w, 1e-5f, kind == 2, dy, acc, &dw_b, &db_b, /*accumulate_dx=*/true);
    }
    ops::add(dx0, assigned, summed);
    const Vec a = to_vec(acc), s = to_vec(summed), g = to_vec(assigned);
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_LE(std::fabs(a[i] - s[i]), 0x1p-23 * (std::fabs(g[i]) + std::fabs(s[i]))) << "kind " << kind << " at " << i;
    EXPECT_EQ(to_vec(dw_b), to_vec(dw_a)) << "kind " << kind;
    EXPECT_EQ(to_vec(db_b), to_vec(db_a)) << "kind " << kind;
  }
}

TEST(NormBackward, GatedRmsNormGrouped) {
  const int64_t rows = 30, D = 24, gs = 8;
  const float eps = 1e-5f;
  Vec x = random_vec(rows * D, -2, 2), z = random_vec(rows * D, -4, 4), w = random_vec(D, 0.5, 1.5);
  Vec R = random_vec(rows * D);
  auto loss = [&] {
    double l = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g0 = 0; g0 < D; g0 += gs) {
        double ms = 0;
        std::vector<double> g(static_cast<size_t>(gs));
        for (int64_t i = 0; i < gs; ++i) {
          const size_t k = size_t(r * D + g0 + i);
          g[size_t(i)] = x[k] * silu_d(z[k]);
          ms += g[size_t(i)] * g[size_t(i)];
        }
        const double inv = 1 / std::sqrt(ms / gs + eps);
        for (int64_t i = 0; i < gs; ++i) l += g[size_t(i)] * inv * w[size_t(g0 + i)] * R[size_t(r * D + g0 + i)];
      }
    return l;
  };
  Tensor dx = Tensor::empty({rows, D}), dz = Tensor::empty({rows, D}), dw = random_tensor({D});
  const Vec dw0 = to_vec(dw);
  ops::gated_rms_norm_backward(to_f32(x, {rows, D}), to_f32(z, {rows, D}), to_f32(w, {D}), gs, eps,
                               to_f32(R, {rows, D}), dx, dz, &dw);
  expect_grad("gated_rms_norm (3 groups) dx", to_vec(dx), fd_grad(loss, x, kH), kTol);
  expect_grad("gated_rms_norm (3 groups) dz", to_vec(dz), fd_grad(loss, z, kH), kTol);
  expect_grad("gated_rms_norm (3 groups) dw (+=)", to_vec(dw), plus(dw0, fd_grad(loss, w, kH)), kTol);
}

// dz_col0: the same dz bits in columns [5, 5 + D) of a wider tensor, whose other columns keep
// what they held; a window that does not fit is refused with a one-line error.
TEST(NormBackward, GatedDzIntoColumnsOfAWiderTensor) {
  const int64_t rows = 7, D = 24, gs = 8, W = D + 9;
  const Tensor x = random_tensor({rows, D}), z = random_tensor({rows, D}), w = random_tensor({D});
  const Tensor dy = random_tensor({rows, D});
  Tensor dx = Tensor::empty({rows, D}), dz = Tensor::empty({rows, D}), dw = random_tensor({D});
  Tensor dx2 = Tensor::empty({rows, D}), wide = random_tensor({rows, W}), dw2 = dw.clone();
  const Vec before = to_vec(wide);
  ops::gated_rms_norm_backward(x, z, w, gs, 1e-5f, dy, dx, dz, &dw);
  ops::gated_rms_norm_backward(x, z, w, gs, 1e-5f, dy, dx2, wide, &dw2, /*dz_col0=*/5);
  const Vec got = to_vec(wide), want = to_vec(dz);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < W; ++c) {
      const bool in = c >= 5 && c < 5 + D;
      EXPECT_EQ(got[size_t(r * W + c)], in ? want[size_t(r * D + c - 5)] : before[size_t(r * W + c)]) << r << ", " << c;
    }
  EXPECT_EQ(to_vec(dx2), to_vec(dx));
  EXPECT_EQ(to_vec(dw2), to_vec(dw));
  Tensor narrow = Tensor::empty({rows, D + 4});
  mambalm::testing::expect_error([&] { ops::gated_rms_norm_backward(x, z, w, gs, 1e-5f, dy, dx2, narrow, &dw2, 5); },
                                 {"gated_rms_norm_backward", "has no columns [5, 29)"});
}

// ---- causal conv -------------------------------------------------------------------------------

namespace {
void check_conv(bool act, bool with_state, bool packed) {
  const int64_t B = 2, T = 23, C = 70, K = 4;  // C spans two channel blocks
  Vec x = random_vec(B * T * C), w = random_vec(C * K), bias = random_vec(C), s0 = random_vec(B * C * (K - 1));
  Vec R = random_vec(B * T * C);
  Tensor seq = seq_tensor(B, T, {{2, 9}, {15}});
  const int32_t* sq = seq.data<int32_t>();
  auto loss = [&] {
    double l = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < C; ++c) {
          double y = bias[size_t(c)];
          for (int64_t k = 0; k < K; ++k) {
            const int64_t s = t + k - (K - 1);
            if (packed && sq[b * T + std::max<int64_t>(s, 0)] != sq[b * T + t]) continue;
            const double in = s >= 0 ? x[size_t((b * T + s) * C + c)]
                                     : (with_state ? s0[size_t((b * C + c) * (K - 1) + s + K - 1)] : 0.0);
            y += w[size_t(c * K + k)] * in;
          }
          l += (act ? silu_d(y) : y) * R[size_t((b * T + t) * C + c)];
        }
    return l;
  };
  Tensor xs = to_f32(x, {B, T, C}), ws = to_f32(w, {C, K}), bs = to_f32(bias, {C}), ss = to_f32(s0, {B, C, K - 1});
  Tensor dx = Tensor::empty({B, T, C}), dw = random_tensor({C, K}), db = random_tensor({C});
  Tensor ds = Tensor::empty({B, C, K - 1});
  const Vec dw0 = to_vec(dw), db0 = to_vec(db);
  ops::causal_conv1d_backward(xs, ws, &bs, packed ? &seq : nullptr, with_state ? &ss : nullptr, act,
                              to_f32(R, {B, T, C}), dx, &dw, &db, with_state ? &ds : nullptr);
  const std::string tag = std::string("conv") + (act ? " silu" : "") + (with_state ? " state" : "") +
                          (packed ? " packed" : "") + " ";
  expect_grad(tag + "dx", to_vec(dx), fd_grad(loss, x, kH), kTol);
  expect_grad(tag + "dw (+=)", to_vec(dw), plus(dw0, fd_grad(loss, w, kH)), kTol);
  expect_grad(tag + "dbias (+=)", to_vec(db), plus(db0, fd_grad(loss, bias, kH)), kTol);
  if (with_state) expect_grad(tag + "dinitial_state", to_vec(ds), fd_grad(loss, s0, kH), kTol);
  // The packed forward against the same naive definition (loss value).
  Tensor y = Tensor::empty({B, T, C});
  Tensor st = ss.clone();
  ops::causal_conv1d(xs, ws, &bs, packed ? &seq : nullptr, with_state ? &st : nullptr, act, y);
  expect_loss_close(tag, to_vec(y), R, loss());
}
}  // namespace

TEST(ConvBackward, AllVariants) {
  check_conv(true, false, false);
  check_conv(false, true, false);
  check_conv(true, true, true);
  check_conv(true, false, true);
}

TEST(ConvBackward, PackedForwardWithoutSeqIdxMatchesOpsForward) {
  const int64_t B = 2, T = 30, C = 40, K = 4;
  Tensor x = random_tensor({B, T, C}), w = random_tensor({C, K}), b = random_tensor({C});
  Tensor s1 = random_tensor({B, C, K - 1});
  Tensor s2 = s1.clone(), y1 = Tensor::empty({B, T, C}), y2 = Tensor::empty({B, T, C});
  ops::causal_conv1d(x, w, &b, nullptr, &s1, true, y1);
  ops::causal_conv1d(x, w, &b, nullptr, &s2, true, y2);
  expect_grad("causal_conv1d(no seq_idx) y vs causal_conv1d", to_vec(y2), to_vec(y1), 1e-7);
  expect_grad("causal_conv1d(no seq_idx) state", to_vec(s2), to_vec(s1), 1e-7);
}

// causal_conv1d_parts writes each column block in place (conv.cpp) where the whole-width op's
// result would be split: the same bits, and the same final state, with and without a state, over
// a prefill (T > 1), a decode step (T = 1) and documents; an empty block and uneven widths.
TEST(ConvParts, SameBitsAsTheWholeWidthOpSplit) {
  const int64_t B = 2, K = 4;
  const std::vector<int64_t> widths = {24, 0, 9, 7};
  const int64_t C = 40;
  for (const int64_t T : {int64_t{1}, int64_t{29}}) {
    for (const bool stateful : {false, true}) {
      for (const bool docs : {false, true}) {
        Tensor x = random_tensor({B, T, C}), w = random_tensor({C, K}), b = random_tensor({C});
        Tensor seq = Tensor::empty({B, T}, DType::I32);
        for (int64_t i = 0; i < B * T; ++i) seq.data<int32_t>()[i] = static_cast<int32_t>((i % T) / 11);
        const Tensor* sq = docs ? &seq : nullptr;
        const Tensor state0 = random_tensor({B, C, K - 1});
        Tensor s_whole = state0.clone(), s_parts = state0.clone();
        Tensor whole = Tensor::empty({B, T, C});
        ops::causal_conv1d(x, w, &b, sq, stateful ? &s_whole : nullptr, true, whole);
        std::vector<Tensor> want, got;
        for (int64_t n : widths) {
          want.push_back(Tensor::empty({B, T, n}));
          got.push_back(Tensor::empty({B, T, n}));
        }
        ops::split_columns(whole, {&want[0], &want[1], &want[2], &want[3]});
        ops::causal_conv1d_parts(x, w, &b, sq, stateful ? &s_parts : nullptr, true, {&got[0], &got[1], &got[2], &got[3]});
        const std::string what = "T " + std::to_string(T) + (stateful ? " state" : "") + (docs ? " docs" : "");
        for (size_t i = 0; i < widths.size(); ++i) EXPECT_EQ(to_vec(got[i]), to_vec(want[i])) << what << " block " << i;
        EXPECT_EQ(to_vec(s_parts), to_vec(s_whole)) << what;
        if (stateful) {
          EXPECT_NE(to_vec(s_parts), to_vec(state0)) << what << ": the state must move";
        }
      }
    }
  }
}

// dx_col0: the conv's dx in columns [3, 3 + C) of a wider tensor, the same bits as its own dx;
// write_columns puts another block after it.
TEST(ConvParts, BackwardDxIntoColumnsOfAWiderTensor) {
  const int64_t B = 2, T = 29, C = 40, K = 4, W = C + 3 + 6;
  const Tensor x = random_tensor({B, T, C}), w = random_tensor({C, K}), b = random_tensor({C});
  std::vector<Tensor> dy = {random_tensor({B, T, 24}), random_tensor({B, T, 16})};
  Tensor dx = Tensor::empty({B, T, C}), dw = Tensor::zeros({C, K}), db = Tensor::zeros({C});
  Tensor wide = random_tensor({B, T, W}), dw2 = Tensor::zeros({C, K}), db2 = Tensor::zeros({C});
  ops::causal_conv1d_backward_parts(x, w, &b, nullptr, true, {&dy[0], &dy[1]}, dx, &dw, &db);
  ops::causal_conv1d_backward_parts(x, w, &b, nullptr, true, {&dy[0], &dy[1]}, wide, &dw2, &db2, /*dx_col0=*/3);
  const Tensor tail = random_tensor({B, T, 6});
  ops::write_columns(tail, wide, 3 + C);
  const Vec got = to_vec(wide), want = to_vec(dx), t6 = to_vec(tail);
  for (int64_t r = 0; r < B * T; ++r) {
    for (int64_t c = 0; c < C; ++c) EXPECT_EQ(got[size_t(r * W + 3 + c)], want[size_t(r * C + c)]) << r << ", " << c;
    for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(got[size_t(r * W + 3 + C + c)], t6[size_t(r * 6 + c)]) << r << ", " << c;
  }
  EXPECT_EQ(to_vec(dw2), to_vec(dw));
  EXPECT_EQ(to_vec(db2), to_vec(db));
}

// ---- attention ---------------------------------------------------------------------------------

namespace {
void check_attention(int64_t T, int64_t S, bool packed) {
  const int64_t B = 2, Hq = 2, Hkv = 1, Dh = 4, grp = Hq / Hkv;  // GQA: 2 query heads per KV head
  const float scale = 0.35f;
  Vec q = random_vec(B * T * Hq * Dh, -2, 2), k = random_vec(B * S * Hkv * Dh, -2, 2), v = random_vec(B * S * Hkv * Dh);
  Vec R = random_vec(B * T * Hq * Dh);
  Tensor seq = seq_tensor(B, S, {{S / 3, S / 3 + 1}, {S - T + 2}});
  const int32_t* sq = seq.data<int32_t>();
  auto loss = [&] {
    double l = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hq; ++h)
        for (int64_t i = 0; i < T; ++i) {
          const int64_t pos = S - T + i, kh = h / grp;
          std::vector<double> p(size_t(S), 0.0);
          double mx = -1e300, sum = 0;
          auto vis = [&](int64_t j) { return j <= pos && (!packed || sq[b * S + j] == sq[b * S + pos]); };
          for (int64_t j = 0; j < S; ++j) {
            if (!vis(j)) continue;
            double s = 0;
            for (int64_t d = 0; d < Dh; ++d)
              s += q[size_t(((b * T + i) * Hq + h) * Dh + d)] * k[size_t(((b * S + j) * Hkv + kh) * Dh + d)];
            p[size_t(j)] = s * scale;
            mx = std::max(mx, p[size_t(j)]);
          }
          for (int64_t j = 0; j < S; ++j) {
            p[size_t(j)] = vis(j) ? std::exp(p[size_t(j)] - mx) : 0.0;
            sum += p[size_t(j)];
          }
          for (int64_t d = 0; d < Dh; ++d) {
            double o = 0;
            for (int64_t j = 0; j < S; ++j) o += p[size_t(j)] / sum * v[size_t(((b * S + j) * Hkv + kh) * Dh + d)];
            l += o * R[size_t(((b * T + i) * Hq + h) * Dh + d)];
          }
        }
    return l;
  };
  Tensor qs = to_f32(q, {B, T, Hq, Dh}), ks = to_f32(k, {B, S, Hkv, Dh}), vs = to_f32(v, {B, S, Hkv, Dh});
  Tensor dq = Tensor::empty(qs.shape()), dk = random_tensor(ks.shape()), dv = random_tensor(vs.shape());
  ops::attention_backward(qs, ks, vs, packed ? &seq : nullptr, scale, to_f32(R, {B, T, Hq, Dh}), dq, dk, dv);
  const std::string tag = "attention T=" + std::to_string(T) + " S=" + std::to_string(S) + (packed ? " packed " : " ");
  expect_grad(tag + "dq", to_vec(dq), fd_grad(loss, q, kH), kTol);
  expect_grad(tag + "dk", to_vec(dk), fd_grad(loss, k, kH), kTol);
  expect_grad(tag + "dv", to_vec(dv), fd_grad(loss, v, kH), kTol);
  Tensor out = Tensor::empty(qs.shape());
  ops::attention(qs, ks, vs, packed ? &seq : nullptr, scale, out);
  expect_loss_close(tag, to_vec(out), R, loss());
}
}  // namespace

TEST(AttentionBackward, CausalGqa) {
  check_attention(70, 70, false);  // two query / key blocks of 64
  check_attention(20, 31, false);  // KV prefix
}
TEST(AttentionBackward, PackedDocuments) {
  check_attention(70, 70, true);
  check_attention(20, 31, true);
}

TEST(AttentionBackward, PackedForwardWithoutSeqIdxMatchesOpsForward) {
  const int64_t B = 2, T = 40, S = 50, Hq = 4, Hkv = 1, Dh = 16;
  Tensor q = random_tensor({B, T, Hq, Dh}), k = random_tensor({B, S, Hkv, Dh}), v = random_tensor({B, S, Hkv, Dh});
  Tensor o1 = Tensor::empty(q.shape()), o2 = Tensor::empty(q.shape());
  ops::attention(q, k, v, nullptr, 0.25f, o1);
  ops::attention(q, k, v, nullptr, 0.25f, o2);
  expect_grad("attention(no seq_idx) vs attention", to_vec(o2), to_vec(o1), 1e-6);
}
