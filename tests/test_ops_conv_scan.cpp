// CPU ops: causal depthwise conv (full vs streaming, vs naive), Mamba-2 SSD (sequential vs a
// float64 reference, chunked vs sequential for chunk sizes that do and do not divide T, with
// initial and final states, split calls) and the Mamba-1 selective scan (vs float64, split
// calls), plus dispatch error paths. Every input is fresh random data in realistic ranges.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "ops/blas_core.h"
#include "ops/cpu/selective_scan_block.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"
#include "test_util.h"

using namespace mambalm;
using mambalm::testing::max_abs_diff;
using mambalm::testing::random_tensor;
using mambalm::testing::relative_l2;
using mambalm::testing::expect_close;
using mambalm::testing::time_slice;

namespace {

// Writes src ([B, t1-t0, ...]) into rows t0.. of dst ([B, T, ...]).
void time_paste(Tensor& dst, const Tensor& src, int64_t t0) {
  const int64_t B = dst.dim(0), T = dst.dim(1), Ts = src.dim(1), inner = dst.numel() / (B * T);
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(dst.f32() + (b * T + t0) * inner, src.f32() + b * Ts * inner,
                size_t(Ts * inner) * sizeof(float));
}

double silu_d(double v) { return v / (1.0 + std::exp(-v)); }

// Realistic Mamba parameters: A = -exp(U[0, 2]) in [-7.4, -1], dt in [dt_lo, dt_hi].
Tensor random_A(const Shape& s) {
  Tensor a = random_tensor(s, 0.0f, 2.0f);
  for (int64_t i = 0; i < a.numel(); ++i) a.f32()[i] = -std::exp(a.f32()[i]);
  return a;
}

}  // namespace

// ---- causal conv ---------------------------------------------------------------------------

void naive_conv(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* state,
                bool act, Tensor& y /*F64*/, Tensor* new_state /*F64 [B,C,K-1]*/) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  auto input = [&](int64_t b, int64_t tt, int64_t c) -> double {  // tt may be negative
    if (tt >= 0) return x.f32()[(b * T + tt) * C + c];
    if (!state) return 0.0;
    return state->f32()[(b * C + c) * (K - 1) + (tt + K - 1)];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double s = bias ? bias->f32()[c] : 0.0;
        for (int64_t k = 0; k < K; ++k) s += double(w.f32()[c * K + k]) * input(b, t + k - (K - 1), c);
        y.data<double>()[(b * T + t) * C + c] = act ? silu_d(s) : s;
      }
  if (new_state)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < K - 1; ++j)
          new_state->data<double>()[(b * C + c) * (K - 1) + j] = input(b, T - (K - 1) + j, c);
}

void check_conv_naive(int64_t B, int64_t T, int64_t C, int64_t K, bool with_bias, bool with_state,
                      bool act) {
  Tensor x = random_tensor({B, T, C}, -2.0f, 2.0f);
  Tensor w = random_tensor({C, K}, -0.5f, 0.5f);
  Tensor bias = random_tensor({C});
  Tensor state = random_tensor({B, C, K - 1}, -2.0f, 2.0f);
  Tensor state0 = state.clone();
  Tensor y = Tensor::empty({B, T, C});
  ops::causal_conv1d(x, w, with_bias ? &bias : nullptr, nullptr, with_state ? &state : nullptr, act, y);
  Tensor want = Tensor::zeros({B, T, C}, DType::F64);
  Tensor want_state = Tensor::zeros({B, C, K - 1}, DType::F64);
  naive_conv(x, w, with_bias ? &bias : nullptr, with_state ? &state0 : nullptr, act, want, &want_state);
  char name[96];
  std::snprintf(name, sizeof name, "conv T=%lld K=%lld bias=%d state=%d silu=%d", (long long)T,
                (long long)K, with_bias, with_state, act);
  expect_close(name, y, want, 1e-6);
  if (with_state && K > 1) {
    EXPECT_EQ(relative_l2(state, want_state), 0.0) << "the new state is a copy of inputs";
  }
}

TEST(OpsConv, MatchesNaive) {
  check_conv_naive(2, 17, 40, 4, true, true, true);
  check_conv_naive(2, 17, 40, 4, false, false, false);
  check_conv_naive(1, 2, 33, 4, true, true, false);  // T < K-1: new state mixes old state and x
  check_conv_naive(3, 5, 8, 1, true, false, true);   // K = 1: no history
  check_conv_naive(1, 9, 16, 3, false, true, true);
}

// Token by token, a step is its own kernel (conv_step); widths 2 to 5 cover an SLP-vectorised
// history sum that once rounded differently.
class OpsConvStreaming : public ::testing::TestWithParam<int64_t> {};

TEST_P(OpsConvStreaming, TokenByTokenEqualsFullCall) {
  const int64_t B = 2, T = 23, C = 48, K = GetParam();
  Tensor x = random_tensor({B, T, C}, -2.0f, 2.0f);
  Tensor w = random_tensor({C, K}, -0.5f, 0.5f);
  Tensor bias = random_tensor({C});
  Tensor state_full = random_tensor({B, C, K - 1}, -2.0f, 2.0f);
  Tensor state_step = state_full.clone();
  Tensor state_pieces = state_full.clone();
  Tensor y_full = Tensor::empty({B, T, C});
  ops::causal_conv1d(x, w, &bias, nullptr, &state_full, true, y_full);

  Tensor y_step = Tensor::empty({B, T, C});
  for (int64_t t = 0; t < T; ++t) {
    Tensor xt = time_slice(x, t, t + 1);
    Tensor yt = Tensor::empty({B, 1, C});
    ops::causal_conv1d(xt, w, &bias, nullptr, &state_step, true, yt);
    time_paste(y_step, yt, t);
  }
  expect_close("conv token-by-token vs full", y_step, y_full, 1e-6);
  expect_close("conv token-by-token final state", state_step, state_full, 1e-7);
  // Both sum from the bias in k order with the same fused steps (the prefill's K = 4 path in
  // registers, other widths through its row loop), so decode reproduces the prefill's bits.
  EXPECT_EQ(max_abs_diff(y_step, y_full), 0.0) << "K " << K;

  // uneven pieces, including a piece shorter than K-1
  Tensor y_pieces = Tensor::empty({B, T, C});
  const int64_t cuts[] = {0, 2, 3, 11, T};
  for (int i = 0; i + 1 < 5; ++i) {
    Tensor xp = time_slice(x, cuts[i], cuts[i + 1]);
    Tensor yp = Tensor::empty(xp.shape());
    ops::causal_conv1d(xp, w, &bias, nullptr, &state_pieces, true, yp);
    time_paste(y_pieces, yp, cuts[i]);
  }
  expect_close("conv uneven pieces vs full", y_pieces, y_full, 1e-6);
  expect_close("conv uneven pieces final state", state_pieces, state_full, 1e-7);
}

INSTANTIATE_TEST_SUITE_P(Widths, OpsConvStreaming, ::testing::Values(2, 3, 4, 5));

TEST(OpsConv, ErrorsThrow) {
  Tensor x = random_tensor({1, 5, 8});
  Tensor w = random_tensor({8, 4});
  Tensor y = Tensor::empty({1, 5, 8});
  Tensor w_bad = random_tensor({7, 4});
  Tensor state_bad = random_tensor({1, 8, 4});
  Tensor bias_bad = random_tensor({9});
  EXPECT_THROW(ops::causal_conv1d(x, w_bad, nullptr, nullptr, nullptr, false, y), Error);
  EXPECT_THROW(ops::causal_conv1d(x, w, nullptr, nullptr, &state_bad, false, y), Error);
  EXPECT_THROW(ops::causal_conv1d(x, w, &bias_bad, nullptr, nullptr, false, y), Error);
  EXPECT_THROW(ops::causal_conv1d(x, w, nullptr, nullptr, nullptr, false, x), Error);  // y aliases x
  Tensor x2 = random_tensor({5, 8});
  EXPECT_THROW(ops::causal_conv1d(x2, w, nullptr, nullptr, nullptr, false, y), Error);
}

// ---- softplus_dt -----------------------------------------------------------------------------

TEST(OpsSsd, SoftplusDtMatchesNaiveAndClamps) {
  const int64_t H = 6;
  Tensor dt = random_tensor({2, 9, H}, -8.0f, 30.0f);  // covers the linear (> 20) branch
  Tensor bias = random_tensor({H}, -3.0f, 1.0f);
  Tensor out = Tensor::empty(dt.shape());
  const float lo = 1e-3f, hi = 15.0f;
  ops::softplus_dt(dt, bias, lo, hi, out);
  Tensor want = Tensor::zeros(dt.shape(), DType::F64);
  for (int64_t i = 0; i < dt.numel(); ++i) {
    double v = double(dt.f32()[i]) + bias.f32()[i % H];
    double sp = v > 20 ? v : std::log1p(std::exp(v));
    want.data<double>()[i] = std::min(std::max(sp, double(lo)), double(hi));
  }
  expect_close("softplus_dt", out, want, 1e-6);
  Tensor bias_bad = random_tensor({H + 1});
  EXPECT_THROW(ops::softplus_dt(dt, bias_bad, lo, hi, out), Error);
  EXPECT_THROW(ops::softplus_dt(dt, bias, 2.0f, 1.0f, out), Error);
}

// ---- SSD -----------------------------------------------------------------------------------

struct SsdInputs {
  Tensor x, dt, A, Bm, Cm, D, state;
};

SsdInputs make_ssd(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, float dt_lo,
                   float dt_hi) {
  SsdInputs in;
  in.x = random_tensor({B, T, H, P});
  in.dt = random_tensor({B, T, H}, dt_lo, dt_hi);
  in.A = random_A({H});
  in.Bm = random_tensor({B, T, G, N});
  in.Cm = random_tensor({B, T, G, N});
  in.D = random_tensor({H}, 0.5f, 1.5f);
  in.state = random_tensor({B, H, P, N});
  return in;
}

// Float64 per-token recurrence, written straight from the definition in ops.h.
void naive_ssd(const SsdInputs& in, bool use_D, bool use_state, Tensor& y, Tensor& state_out) {
  const int64_t B = in.x.dim(0), T = in.x.dim(1), H = in.x.dim(2), P = in.x.dim(3);
  const int64_t G = in.Bm.dim(2), N = in.Bm.dim(3);
  std::vector<double> S(size_t(P * N));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / G);
      for (int64_t i = 0; i < P * N; ++i) S[size_t(i)] = use_state ? in.state.f32()[(b * H + h) * P * N + i] : 0.0;
      for (int64_t t = 0; t < T; ++t) {
        const double dt = in.dt.f32()[(b * T + t) * H + h];
        const double a = std::exp(dt * in.A.f32()[h]);
        for (int64_t p = 0; p < P; ++p) {
          const double xv = in.x.f32()[((b * T + t) * H + h) * P + p];
          double acc = 0;
          for (int64_t n = 0; n < N; ++n) {
            double& s = S[size_t(p * N + n)];
            s = a * s + dt * xv * in.Bm.f32()[((b * T + t) * G + g) * N + n];
            acc += s * in.Cm.f32()[((b * T + t) * G + g) * N + n];
          }
          y.data<double>()[((b * T + t) * H + h) * P + p] = acc + (use_D ? in.D.f32()[h] * xv : 0.0);
        }
      }
      for (int64_t i = 0; i < P * N; ++i) state_out.data<double>()[(b * H + h) * P * N + i] = S[size_t(i)];
    }
}

void check_sequential_naive(int64_t G, bool use_D, bool use_state) {
  const int64_t B = 2, T = 37, H = 4, P = 8, N = 16;
  SsdInputs in = make_ssd(B, T, H, P, G, N, 0.001f, 0.3f);
  Tensor y = Tensor::empty({B, T, H, P});
  Tensor state = in.state.clone();
  ops::ssd_sequential(in.x, in.dt, in.A, in.Bm, in.Cm, use_D ? &in.D : nullptr,
                      use_state ? &state : nullptr, y);
  Tensor want = Tensor::zeros(y.shape(), DType::F64);
  Tensor want_state = Tensor::zeros(state.shape(), DType::F64);
  naive_ssd(in, use_D, use_state, want, want_state);
  char name[96];
  std::snprintf(name, sizeof name, "ssd_sequential vs f64 G=%lld D=%d state=%d", (long long)G, use_D, use_state);
  expect_close(name, y, want, 2e-6);
  if (use_state) expect_close(std::string(name) + " final state", state, want_state, 2e-6);
}

TEST(OpsSsd, SequentialMatchesNaiveDouble) {
  check_sequential_naive(1, true, true);
  check_sequential_naive(2, true, true);
  check_sequential_naive(4, false, false);
  check_sequential_naive(2, false, true);
}

// chunked vs sequential on the same inputs, for one chunk size
void check_chunked(const SsdInputs& in, int64_t chunk, bool use_D, bool use_state, double tol,
                   const char* tag) {
  Tensor y_seq = Tensor::empty(in.x.shape());
  Tensor y_chk = Tensor::empty(in.x.shape());
  Tensor s_seq = in.state.clone();
  Tensor s_chk = in.state.clone();
  const Tensor* D = use_D ? &in.D : nullptr;
  ops::ssd_sequential(in.x, in.dt, in.A, in.Bm, in.Cm, D, use_state ? &s_seq : nullptr, y_seq);
  ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, D, nullptr, chunk, use_state ? &s_chk : nullptr, y_chk);
  char name[128];
  std::snprintf(name, sizeof name, "ssd chunk=%lld T=%lld G=%lld %s", (long long)chunk,
                (long long)in.x.dim(1), (long long)in.Bm.dim(2), tag);
  expect_close(name, y_chk, y_seq, tol);
  if (use_state) expect_close(std::string(name) + " state", s_chk, s_seq, tol);
}

TEST(OpsSsd, ChunkedEqualsSequentialAnyChunkSize) {
  for (int64_t G : {1, 2}) {
    SsdInputs in = make_ssd(2, 45, 4, 16, G, 32, 0.001f, 0.1f);
    for (int64_t chunk : {1, 5, 8, 9, 15, 16, 45, 64}) check_chunked(in, chunk, true, true, 2e-6, "init state");
    check_chunked(in, 8, false, false, 2e-6, "no state, no D");
    check_chunked(in, 16, true, false, 2e-6, "no state");
  }
}

TEST(OpsSsd, ChunkedEqualsSequentialStrongDecay) {
  // dt up to 1 with A down to -7.4: decays of e^-7 per step, chunk sums reach e^-400 (underflow)
  SsdInputs in = make_ssd(1, 70, 4, 8, 2, 16, 0.01f, 1.0f);
  for (int64_t chunk : {8, 32, 64}) check_chunked(in, chunk, true, true, 2e-6, "strong decay");
}

TEST(OpsSsd, MambaTwoShapesManyHeadsPerGroup) {
  // 8B-like ratios, shrunk: 16 heads in 2 groups, P=16, N=32, chunk 32, T not a multiple
  SsdInputs in = make_ssd(1, 100, 16, 16, 2, 32, 0.001f, 0.1f);
  check_chunked(in, 32, true, true, 2e-6, "H=16 G=2");
}

// Inference with bf16 or 8-bit weights asks for bf16 operands in the chunked SSD's three products
// (Fp32Products::Tf32), which the CPU takes where oneDNN's bf16 GEMM runs (AVX512-BF16). Against
// the float64 recurrence the error is a few bf16 roundings (2^-9 relative) of each product's
// operands, averaged over N or L terms: rel L2 ~1e-3, under the limit of 1e-2 that a dropped
// term, a wrong decay or a transposed operand exceeds by far (O(1)). Elsewhere the products
// stay exact, bit for bit. docs/numerics.md.
TEST(OpsSsd, ChunkedBf16ProductsWithinTheirLimit) {
  const int64_t B = 2, T = 150, H = 8, P = 16, G = 2, N = 32;
  SsdInputs in = make_ssd(B, T, H, P, G, N, 0.001f, 0.2f);
  Tensor want = Tensor::zeros({B, T, H, P}, DType::F64);
  Tensor want_state = Tensor::zeros({B, H, P, N}, DType::F64);
  naive_ssd(in, true, true, want, want_state);
  for (int64_t chunk : {16, 64}) {
    Tensor y_exact = Tensor::empty(in.x.shape()), y_bf16 = Tensor::empty(in.x.shape());
    Tensor s_exact = in.state.clone(), s_bf16 = in.state.clone();
    ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, nullptr, chunk, &s_exact, y_exact, ops::Fp32Products::Exact);
    ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, nullptr, chunk, &s_bf16, y_bf16, ops::Fp32Products::Tf32);
    const std::string tag = "ssd bf16 products chunk " + std::to_string(chunk);
    expect_close(tag + " y vs f64", y_bf16, want, 1e-2);
    expect_close(tag + " state vs f64", s_bf16, want_state, 1e-2);
    expect_close(tag + " exact y vs f64", y_exact, want, 2e-6);
    if (ops::onednn_bf16_prefill()) {
      EXPECT_GT(relative_l2(y_bf16, y_exact), 1e-6) << "the bf16 products did not run";
    } else {
      EXPECT_EQ(relative_l2(y_bf16, y_exact), 0.0) << "without AVX512-BF16 and oneDNN the products stay exact";
    }
  }
}

// A zero state passed in (a prefill from the start) skips its first chunk's C S_prev^T: the same
// bits as no state at all.
TEST(OpsSsd, ChunkedZeroStateEqualsNoStateBitForBit) {
  SsdInputs in = make_ssd(1, 90, 4, 16, 2, 32, 0.001f, 0.2f);
  for (ops::Fp32Products products : {ops::Fp32Products::Exact, ops::Fp32Products::Tf32}) {
    Tensor y_none = Tensor::empty(in.x.shape()), y_zero = Tensor::empty(in.x.shape());
    Tensor zero = Tensor::zeros(in.state.shape());
    ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, nullptr, 32, nullptr, y_none, products);
    ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, nullptr, 32, &zero, y_zero, products);
    EXPECT_EQ(max_abs_diff(y_zero, y_none), 0.0);
  }
}

// A config's chunk above the CPU's cap (checkpoints made for GPUs carry 128 or 256) runs as the
// cap, 64: the same bits as asking for 64 (ops/cpu/scan_kernels.h cpu_ssd_chunk), forward with a
// state, forward with documents and backward. Without the cap chunk 256 regroups the sums.
TEST(OpsSsd, CpuRunsLongChunksAsItsCapBitForBit) {
  const int64_t B = 2, T = 300, H = 4, P = 16, G = 2, N = 32;
  SsdInputs in = make_ssd(B, T, H, P, G, N, 0.001f, 0.2f);
  Tensor seq_idx = Tensor::empty({B, T}, DType::I32);  // documents [0, 130) and [130, 300)
  for (int64_t i = 0; i < B * T; ++i) seq_idx.data<int32_t>()[i] = (i % T) < 130 ? 0 : 1;
  auto forward = [&](int64_t chunk, const Tensor* docs) {
    Tensor y = Tensor::empty(in.x.shape()), s = in.state.clone();
    ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, docs, chunk, docs ? nullptr : &s, y);
    return std::make_pair(y, s);
  };
  const Tensor* const variants[] = {nullptr, &seq_idx};
  for (const Tensor* docs : variants) {
    auto [y64, s64] = forward(64, docs);
    auto [y256, s256] = forward(256, docs);
    EXPECT_EQ(max_abs_diff(y256, y64), 0.0) << (docs ? "with documents" : "with a state");
    EXPECT_EQ(max_abs_diff(s256, s64), 0.0) << (docs ? "with documents" : "with a state");
  }
  Tensor dy = random_tensor(in.x.shape());
  auto backward = [&](int64_t chunk) {
    std::vector<Tensor> g = {Tensor::empty(in.x.shape()), Tensor::empty(in.dt.shape()), Tensor::zeros({H}),
                             Tensor::empty(in.Bm.shape()), Tensor::empty(in.Cm.shape()), Tensor::zeros({H})};
    ops::ssd_chunked_backward(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, nullptr, chunk, nullptr, nullptr, dy, g[0], g[1],
                              &g[2], g[3], g[4], &g[5], nullptr);
    return g;
  };
  const std::vector<Tensor> g64 = backward(64), g256 = backward(256);
  for (size_t i = 0; i < g64.size(); ++i) EXPECT_EQ(max_abs_diff(g256[i], g64[i]), 0.0) << "gradient " << i;
}

TEST(OpsSsd, SplitCallsWithStateEqualOneCall) {
  const int64_t B = 2, T = 45, H = 4, P = 8, G = 2, N = 16;
  SsdInputs in = make_ssd(B, T, H, P, G, N, 0.001f, 0.1f);
  Tensor y_one = Tensor::empty({B, T, H, P});
  Tensor s_one = in.state.clone();
  ops::ssd_sequential(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, &s_one, y_one);
  for (int variant = 0; variant < 2; ++variant) {  // 0: sequential pieces, 1: chunked pieces
    Tensor y = Tensor::empty({B, T, H, P});
    Tensor s = in.state.clone();
    const int64_t cuts[] = {0, 20, 21, T};  // a 1-token piece in the middle, as in decode
    for (int i = 0; i < 3; ++i) {
      const int64_t t0 = cuts[i], t1 = cuts[i + 1];
      Tensor x = time_slice(in.x, t0, t1), dt = time_slice(in.dt, t0, t1);
      Tensor Bm = time_slice(in.Bm, t0, t1), Cm = time_slice(in.Cm, t0, t1);
      Tensor yp = Tensor::empty(x.shape());
      if (variant == 0) {
        ops::ssd_sequential(x, dt, in.A, Bm, Cm, &in.D, &s, yp);
      } else {
        ops::ssd_chunked(x, dt, in.A, Bm, Cm, &in.D, nullptr, 8, &s, yp);
      }
      time_paste(y, yp, t0);
    }
    std::string tag = variant == 0 ? "ssd_sequential split 20+1+24" : "ssd_chunked(8) split 20+1+24";
    expect_close(tag, y, y_one, variant == 0 ? 1e-6 : 2e-6);
    expect_close(tag + " state", s, s_one, variant == 0 ? 1e-6 : 2e-6);
  }
}

TEST(OpsSsd, ErrorsThrow) {
  SsdInputs in = make_ssd(1, 6, 4, 8, 2, 16, 0.001f, 0.1f);
  Tensor y = Tensor::empty({1, 6, 4, 8});
  Tensor B3 = random_tensor({1, 6, 3, 16});  // 4 heads, 3 groups
  Tensor C3 = random_tensor({1, 6, 3, 16});
  EXPECT_THROW(ops::ssd_sequential(in.x, in.dt, in.A, B3, C3, nullptr, nullptr, y), Error);
  Tensor state_bad = random_tensor({1, 4, 8, 15});
  EXPECT_THROW(ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, nullptr, nullptr, 4, &state_bad, y), Error);
  EXPECT_THROW(ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, nullptr, nullptr, 0, nullptr, y), Error);
  Tensor dt_bad = random_tensor({1, 6, 3});
  EXPECT_THROW(ops::ssd_sequential(in.x, dt_bad, in.A, in.Bm, in.Cm, nullptr, nullptr, y), Error);
  Tensor C_bad = random_tensor({1, 6, 2, 8});
  EXPECT_THROW(ops::ssd_sequential(in.x, in.dt, in.A, in.Bm, C_bad, nullptr, nullptr, y), Error);
  Tensor D_bad = random_tensor({3});
  EXPECT_THROW(ops::ssd_sequential(in.x, in.dt, in.A, in.Bm, in.Cm, &D_bad, nullptr, y), Error);
  Tensor x_copy = in.x.clone();
  EXPECT_THROW(ops::ssd_sequential(x_copy, in.dt, in.A, in.Bm, in.Cm, nullptr, nullptr, x_copy), Error);
}

TEST(OpsSsd, SpeedChunkedVsSequential) {
  // The brief's shape: B=1, T=2048, H=8, P=64, G=1, N=64. Printed, not asserted (shared CI
  // machines are noisy); the results are compared so the test can still fail.
  SsdInputs in = make_ssd(1, 2048, 8, 64, 1, 64, 0.001f, 0.1f);
  Tensor y_seq = Tensor::empty(in.x.shape());
  Tensor s_seq = in.state.clone();
  auto t0 = std::chrono::steady_clock::now();
  ops::ssd_sequential(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, &s_seq, y_seq);
  auto t1 = std::chrono::steady_clock::now();
  double ms_seq = std::chrono::duration<double, std::milli>(t1 - t0).count();
  std::printf("[time] ssd_sequential B=1 T=2048 H=8 P=64 G=1 N=64: %.2f ms\n", ms_seq);
  for (int64_t chunk : {64, 128, 256}) {
    Tensor y = Tensor::empty(in.x.shape());
    Tensor s = in.state.clone();
    auto c0 = std::chrono::steady_clock::now();
    ops::ssd_chunked(in.x, in.dt, in.A, in.Bm, in.Cm, &in.D, nullptr, chunk, &s, y);
    auto c1 = std::chrono::steady_clock::now();
    std::printf("[time] ssd_chunked(chunk=%lld) same shape: %.2f ms\n", (long long)chunk,
                std::chrono::duration<double, std::milli>(c1 - c0).count());
    expect_close("ssd chunked vs sequential T=2048 chunk=" + std::to_string(chunk), y, y_seq, 1e-5);
    expect_close("ssd chunked vs sequential T=2048 state", s, s_seq, 1e-5);
  }
}

// ---- Mamba-1 selective scan --------------------------------------------------------------

struct ScanInputs {
  Tensor u, delta, A, Bm, Cm, D, z, state;
};

ScanInputs make_scan(int64_t B, int64_t T, int64_t Di, int64_t N) {
  ScanInputs in;
  in.u = random_tensor({B, T, Di});
  in.delta = random_tensor({B, T, Di}, 0.001f, 0.3f);
  // Mamba-1 init A = -(1..N) per channel, perturbed so channels differ
  in.A = random_tensor({Di, N}, 0.8f, 1.2f);
  for (int64_t d = 0; d < Di; ++d)
    for (int64_t n = 0; n < N; ++n) in.A.f32()[d * N + n] *= -float(n + 1);
  in.Bm = random_tensor({B, T, N});
  in.Cm = random_tensor({B, T, N});
  in.D = random_tensor({Di}, 0.5f, 1.5f);
  in.z = random_tensor({B, T, Di}, -3.0f, 3.0f);
  in.state = random_tensor({B, Di, N});
  return in;
}

void naive_scan(const ScanInputs& in, bool use_D, bool use_z, bool use_state, Tensor& y, Tensor& s_out) {
  const int64_t B = in.u.dim(0), T = in.u.dim(1), Di = in.u.dim(2), N = in.A.dim(1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < Di; ++d) {
      std::vector<double> h(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) h[size_t(n)] = use_state ? in.state.f32()[(b * Di + d) * N + n] : 0.0;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t i = (b * T + t) * Di + d;
        const double dl = in.delta.f32()[i], u = in.u.f32()[i];
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          h[size_t(n)] = std::exp(dl * in.A.f32()[d * N + n]) * h[size_t(n)] + dl * u * in.Bm.f32()[(b * T + t) * N + n];
          acc += h[size_t(n)] * in.Cm.f32()[(b * T + t) * N + n];
        }
        if (use_D) acc += in.D.f32()[d] * u;
        if (use_z) acc *= silu_d(in.z.f32()[i]);
        y.data<double>()[i] = acc;
      }
      for (int64_t n = 0; n < N; ++n) s_out.data<double>()[(b * Di + d) * N + n] = h[size_t(n)];
    }
}

TEST(OpsSelectiveScan, MatchesNaiveDouble) {
  const int64_t B = 2, T = 41, Di = 37, N = 16;  // Di not a multiple of the channel block
  ScanInputs in = make_scan(B, T, Di, N);
  for (int variant = 0; variant < 2; ++variant) {
    const bool full = variant == 0;
    Tensor y = Tensor::empty({B, T, Di});
    Tensor s = in.state.clone();
    ops::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, full ? &in.D : nullptr,
                        full ? &in.z : nullptr, nullptr, full ? &s : nullptr, y);
    Tensor want = Tensor::zeros(y.shape(), DType::F64);
    Tensor want_s = Tensor::zeros(s.shape(), DType::F64);
    naive_scan(in, full, full, full, want, want_s);
    expect_close(full ? "selective_scan D,z,state vs f64" : "selective_scan bare vs f64", y, want, 2e-6);
    if (full) expect_close("selective_scan final state vs f64", s, want_s, 2e-6);
  }
}

// Every block kernel this machine runs, against float64: Di = 37 is two whole blocks of 16 (the
// AVX-512 kernel) and a tail of 5 (the portable loop), N = 16 (Mamba-1's) and 32 (two vectors a
// state row); one call of T = 41 steps and T single steps (decode) from the same state. Some
// channels decay fast enough (delta A < -87) to take exp's zero below its range.
TEST(OpsSelectiveScan, EveryKernelMatchesNaiveDouble) {
  const int64_t B = 2, T = 41, Di = 37;
  for (int64_t N : {16, 32}) {
    ScanInputs in = make_scan(B, T, Di, N);
    for (int64_t n = 0; n < N; ++n) in.A.f32()[3 * N + n] *= 400.0f;  // channel 3: delta A down to ~ -4000
    Tensor want = Tensor::zeros({B, T, Di}, DType::F64);
    Tensor want_s = Tensor::zeros(in.state.shape(), DType::F64);
    naive_scan(in, true, true, true, want, want_s);
    for (ops::cpu::Isa isa : {ops::cpu::Isa::Scalar, ops::cpu::Isa::Avx2, ops::cpu::Isa::Avx512, ops::cpu::Isa::Neon}) {
      if (!ops::cpu::isa_supported(isa)) continue;
      const std::string name = std::string("selective_scan ") + ops::cpu::isa_name(isa) + " N=" + std::to_string(N);
      Tensor y = Tensor::empty({B, T, Di});
      Tensor s = in.state.clone();
      ops::cpu::selective_scan_isa(isa, in.u, in.delta, in.A, in.Bm, in.Cm, &in.D, &in.z, &s, y);
      expect_close(name + " vs f64", y, want, 2e-6);
      expect_close(name + " state vs f64", s, want_s, 2e-6);
      Tensor y_steps = Tensor::empty({B, T, Di});
      Tensor s_steps = in.state.clone();
      for (int64_t t = 0; t < T; ++t) {
        Tensor u = time_slice(in.u, t, t + 1), dl = time_slice(in.delta, t, t + 1), z = time_slice(in.z, t, t + 1);
        Tensor Bm = time_slice(in.Bm, t, t + 1), Cm = time_slice(in.Cm, t, t + 1);
        Tensor yt = Tensor::empty(u.shape());
        ops::cpu::selective_scan_isa(isa, u, dl, in.A, Bm, Cm, &in.D, &z, &s_steps, yt);
        time_paste(y_steps, yt, t);
      }
      // the same kernel on the same values: a step at a time gives the one call's bits
      EXPECT_EQ(max_abs_diff(y_steps, y), 0.0) << name;
      EXPECT_EQ(max_abs_diff(s_steps, s), 0.0) << name;
    }
  }
}

TEST(OpsSelectiveScan, SplitCallsWithStateEqualOneCall) {
  const int64_t B = 2, T = 30, Di = 20, N = 8;
  ScanInputs in = make_scan(B, T, Di, N);
  Tensor y_one = Tensor::empty({B, T, Di});
  Tensor s_one = in.state.clone();
  ops::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, &in.D, &in.z, nullptr, &s_one, y_one);
  Tensor y = Tensor::empty({B, T, Di});
  Tensor s = in.state.clone();
  const int64_t cuts[] = {0, 11, 12, T};
  for (int i = 0; i < 3; ++i) {
    const int64_t t0 = cuts[i], t1 = cuts[i + 1];
    Tensor u = time_slice(in.u, t0, t1), dl = time_slice(in.delta, t0, t1), z = time_slice(in.z, t0, t1);
    Tensor Bm = time_slice(in.Bm, t0, t1), Cm = time_slice(in.Cm, t0, t1);
    Tensor yp = Tensor::empty(u.shape());
    ops::selective_scan(u, dl, in.A, Bm, Cm, &in.D, &z, nullptr, &s, yp);
    time_paste(y, yp, t0);
  }
  expect_close("selective_scan split 11+1+18", y, y_one, 1e-6);
  expect_close("selective_scan split state", s, s_one, 1e-6);
}

TEST(OpsSelectiveScan, ErrorsThrow) {
  ScanInputs in = make_scan(1, 5, 8, 4);
  Tensor y = Tensor::empty({1, 5, 8});
  Tensor A_bad = random_tensor({7, 4});
  Tensor B_bad = random_tensor({1, 5, 5});
  Tensor s_bad = random_tensor({1, 8, 5});
  Tensor z_bad = random_tensor({1, 4, 8});
  EXPECT_THROW(ops::selective_scan(in.u, in.delta, A_bad, in.Bm, in.Cm, nullptr, nullptr, nullptr, nullptr, y), Error);
  EXPECT_THROW(ops::selective_scan(in.u, in.delta, in.A, B_bad, in.Cm, nullptr, nullptr, nullptr, nullptr, y), Error);
  EXPECT_THROW(ops::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, nullptr, nullptr, nullptr, &s_bad, y), Error);
  EXPECT_THROW(ops::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, nullptr, &z_bad, nullptr, nullptr, y), Error);
}
