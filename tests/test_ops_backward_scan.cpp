// Backward of the two scans, checked in double precision against central finite differences of
// an independent naive per-token forward written here (with document resets), for T spanning
// several chunks and a partial last chunk, with and without packed documents (one boundary on a
// chunk boundary, one inside a chunk). Then the fp32 ops against the double kernels, and the
// packed fp32 forwards against the ops.h forwards.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backward_check.h"
#include "ops/cpu/scan_kernels.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

using namespace mambalm;
using namespace mambalm::testing;
using mambalm::ops::cpu::ScanProblem;
using mambalm::ops::cpu::SsdProblem;

namespace {

std::vector<int32_t> make_seq(int64_t B, int64_t T, const std::vector<std::vector<int64_t>>& starts) {
  std::vector<int32_t> s(size_t(B * T));
  for (int64_t b = 0; b < B; ++b) {
    int32_t id = 7;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t st : starts[size_t(b)])
        if (st == t) ++id;
      s[size_t(b * T + t)] = id;
    }
  }
  return s;
}

// ---- SSD -----------------------------------------------------------------------------------

struct SsdData {
  int64_t B = 2, T = 37, H = 4, P = 3, G = 2, N = 4, chunk = 8;
  Vec x, dt, A, Bm, Cm, D, s0, ry, rs;
  std::vector<int32_t> seq;
  bool packed = false;
};

// Naive recurrence in double: returns loss = <y, ry> + <S_final, rs>.
double ssd_naive_loss(const SsdData& d) {
  const int64_t hpg = d.H / d.G;
  double loss = 0;
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.H; ++h) {
      const int64_t g = h / hpg;
      std::vector<double> S(d.s0.begin() + (b * d.H + h) * d.P * d.N,
                            d.s0.begin() + (b * d.H + h + 1) * d.P * d.N);
      for (int64_t t = 0; t < d.T; ++t) {
        const bool reset = d.packed && t > 0 && d.seq[size_t(b * d.T + t)] != d.seq[size_t(b * d.T + t - 1)];
        const double dtv = d.dt[size_t((b * d.T + t) * d.H + h)];
        const double a = reset ? 0.0 : std::exp(dtv * d.A[size_t(h)]);
        for (int64_t p = 0; p < d.P; ++p) {
          const double xv = d.x[size_t(((b * d.T + t) * d.H + h) * d.P + p)];
          double y = d.D[size_t(h)] * xv;
          for (int64_t n = 0; n < d.N; ++n) {
            double& s = S[size_t(p * d.N + n)];
            s = a * s + dtv * xv * d.Bm[size_t(((b * d.T + t) * d.G + g) * d.N + n)];
            y += s * d.Cm[size_t(((b * d.T + t) * d.G + g) * d.N + n)];
          }
          loss += y * d.ry[size_t(((b * d.T + t) * d.H + h) * d.P + p)];
        }
      }
      for (int64_t k = 0; k < d.P * d.N; ++k) loss += S[size_t(k)] * d.rs[size_t((b * d.H + h) * d.P * d.N + k)];
    }
  return loss;
}

SsdData make_ssd(bool packed) {
  SsdData d;
  d.packed = packed;
  d.x = random_vec(d.B * d.T * d.H * d.P);
  d.dt = random_vec(d.B * d.T * d.H, 0.01, 0.3);
  d.A = random_vec(d.H, 0.0, 2.0);
  for (double& a : d.A) a = -std::exp(a);
  d.Bm = random_vec(d.B * d.T * d.G * d.N);
  d.Cm = random_vec(d.B * d.T * d.G * d.N);
  d.D = random_vec(d.H);
  d.s0 = random_vec(d.B * d.H * d.P * d.N);
  d.ry = random_vec(d.B * d.T * d.H * d.P);
  d.rs = random_vec(d.B * d.H * d.P * d.N);
  // Row 0: documents start at 11 (inside chunk 1) and 16 (a chunk boundary); row 1 at 5 and 33
  // (inside the partial last chunk 32..36).
  d.seq = make_seq(d.B, d.T, {{11, 16}, {5, 33}});
  return d;
}

SsdProblem<double> ssd_problem(const SsdData& d) {
  SsdProblem<double> p;
  p.Bsz = d.B; p.T = d.T; p.H = d.H; p.P = d.P; p.G = d.G; p.N = d.N; p.chunk = d.chunk;
  p.x = d.x.data(); p.dt = d.dt.data(); p.A = d.A.data(); p.Bm = d.Bm.data(); p.Cm = d.Cm.data();
  p.D = d.D.data();
  p.seq_idx = d.packed ? d.seq.data() : nullptr;
  return p;
}

void check_ssd_fd(bool packed) {
  SsdData d = make_ssd(packed);
  const std::string tag = packed ? "ssd packed " : "ssd ";
  // The double chunked forward equals the naive recurrence.
  {
    Vec y(d.x.size()), sf(d.s0.size());
    ops::cpu::ssd_chunked_forward(ssd_problem(d), d.s0.data(), sf.data(), y.data());
    const double got = dot(y, d.ry) + dot(sf, d.rs);
    const double want = ssd_naive_loss(d);
    std::printf("[err] %-56s abs=%.3e\n", (tag + "double chunked forward vs naive (loss)").c_str(), std::fabs(got - want));
    EXPECT_LT(std::fabs(got - want), 1e-10 * (1 + std::fabs(want)));
  }
  Vec dx(d.x.size()), ddt(d.dt.size()), dA(d.A.size(), 0.0), dB(d.Bm.size()), dC(d.Cm.size()),
      dD(d.D.size(), 0.0), ds0(d.s0.size());
  ops::cpu::ssd_chunked_backward(ssd_problem(d), d.s0.data(), d.rs.data(), d.ry.data(), dx.data(),
                                 ddt.data(), dA.data(), dB.data(), dC.data(), dD.data(), ds0.data());
  auto loss = [&] { return ssd_naive_loss(d); };
  const double h = 1e-5, tol = 1e-7;
  expect_grad(tag + "dx (FD, double)", dx, fd_grad(loss, d.x, h), tol);
  expect_grad(tag + "ddt (FD, double)", ddt, fd_grad(loss, d.dt, h), tol);
  expect_grad(tag + "dA (FD, double)", dA, fd_grad(loss, d.A, h), tol);
  expect_grad(tag + "dB (FD, double)", dB, fd_grad(loss, d.Bm, h), tol);
  expect_grad(tag + "dC (FD, double)", dC, fd_grad(loss, d.Cm, h), tol);
  expect_grad(tag + "dD (FD, double)", dD, fd_grad(loss, d.D, h), tol);
  expect_grad(tag + "dinitial_state (FD, double)", ds0, fd_grad(loss, d.s0, h), tol);
}

}  // namespace

TEST(SsdBackward, FiniteDifferencesDoubleAcrossChunks) { check_ssd_fd(false); }
TEST(SsdBackward, FiniteDifferencesDoublePackedDocuments) { check_ssd_fd(true); }

// The fp32 op against the double kernel, realistic sizes, chunk sizes that do and do not divide T.
TEST(SsdBackward, Fp32OpMatchesDoubleKernel) {
  for (int64_t chunk : {16, 64}) {
    const int64_t B = 2, T = 150, H = 8, P = 16, G = 2, N = 16;
    Tensor x = random_tensor({B, T, H, P}), dt = random_tensor({B, T, H}, 0.001f, 0.1f);
    Tensor A = random_tensor({H}, 0.0f, 2.0f);
    for (int64_t i = 0; i < H; ++i) A.f32()[i] = -std::exp(A.f32()[i]);
    Tensor Bm = random_tensor({B, T, G, N}), Cm = random_tensor({B, T, G, N}), D = random_tensor({H});
    Tensor s0 = random_tensor({B, H, P, N}), dy = random_tensor({B, T, H, P}), dsf = random_tensor({B, H, P, N});
    std::vector<int32_t> seqv = make_seq(B, T, {{40, 64}, {100}});
    Tensor seq = Tensor::empty({B, T}, DType::I32);
    std::copy(seqv.begin(), seqv.end(), seq.data<int32_t>());

    Tensor dx = Tensor::empty(x.shape()), ddt = Tensor::empty(dt.shape()), dA = random_tensor({H});
    Tensor dB = Tensor::empty(Bm.shape()), dC = Tensor::empty(Cm.shape()), dD = random_tensor({H});
    Tensor ds0 = Tensor::empty(s0.shape());
    const Vec dA0 = to_vec(dA), dD0 = to_vec(dD);
    ops::ssd_chunked_backward(x, dt, A, Bm, Cm, &D, &seq, chunk, &s0, &dsf, dy, dx, ddt, &dA, dB, dC, &dD, &ds0);

    SsdProblem<double> p;
    Vec xv = to_vec(x), dtv = to_vec(dt), Av = to_vec(A), Bv = to_vec(Bm), Cv = to_vec(Cm), Dv = to_vec(D);
    Vec s0v = to_vec(s0), dyv = to_vec(dy), dsfv = to_vec(dsf);
    p.Bsz = B; p.T = T; p.H = H; p.P = P; p.G = G; p.N = N; p.chunk = 32;
    p.x = xv.data(); p.dt = dtv.data(); p.A = Av.data(); p.Bm = Bv.data(); p.Cm = Cv.data(); p.D = Dv.data();
    p.seq_idx = seqv.data();
    Vec rdx(xv.size()), rddt(dtv.size()), rdA = dA0, rdB(Bv.size()), rdC(Cv.size()), rdD = dD0, rds0(s0v.size());
    ops::cpu::ssd_chunked_backward(p, s0v.data(), dsfv.data(), dyv.data(), rdx.data(), rddt.data(),
                                   rdA.data(), rdB.data(), rdC.data(), rdD.data(), rds0.data());
    const std::string tag = "ssd fp32 op (chunk " + std::to_string(chunk) + ") vs double, ";
    expect_grad(tag + "dx", to_vec(dx), rdx, 2e-6);
    expect_grad(tag + "ddt", to_vec(ddt), rddt, 2e-6);
    expect_grad(tag + "dA (+= onto random)", to_vec(dA), rdA, 2e-6);
    expect_grad(tag + "dB", to_vec(dB), rdB, 2e-6);
    expect_grad(tag + "dC", to_vec(dC), rdC, 2e-6);
    expect_grad(tag + "dD (+= onto random)", to_vec(dD), rdD, 2e-6);
    expect_grad(tag + "dinitial_state", to_vec(ds0), rds0, 2e-6);
  }
}

TEST(SsdBackward, PackedForwardWithoutSeqIdxMatchesOpsForward) {
  const int64_t B = 2, T = 75, H = 4, P = 8, G = 2, N = 8;
  Tensor x = random_tensor({B, T, H, P}), dt = random_tensor({B, T, H}, 0.001f, 0.1f);
  Tensor A = random_tensor({H}, -3.0f, -0.5f), Bm = random_tensor({B, T, G, N});
  Tensor Cm = random_tensor({B, T, G, N}), D = random_tensor({H});
  Tensor s1 = random_tensor({B, H, P, N});
  Tensor s2 = s1.clone();
  Tensor y1 = Tensor::empty(x.shape()), y2 = Tensor::empty(x.shape());
  ops::ssd_chunked(x, dt, A, Bm, Cm, &D, nullptr, 16, &s1, y1);
  ops::ssd_chunked(x, dt, A, Bm, Cm, &D, nullptr, 16, &s2, y2);
  expect_grad("ssd_chunked(no seq_idx) y vs ssd_chunked", to_vec(y2), to_vec(y1), 2e-6);
  expect_grad("ssd_chunked(no seq_idx) state vs ssd_chunked", to_vec(s2), to_vec(s1), 2e-6);
}

// ---- selective scan ----------------------------------------------------------------------------

namespace {

struct ScanData {
  int64_t B = 2, T = 37, Di = 20, N = 4, chunk = 8;
  Vec u, delta, A, Bm, Cm, D, z, s0, ry, rs;
  std::vector<int32_t> seq;
  bool packed = false;
};

double scan_naive_loss(const ScanData& d) {
  double loss = 0;
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t c = 0; c < d.Di; ++c) {
      std::vector<double> h(d.s0.begin() + (b * d.Di + c) * d.N, d.s0.begin() + (b * d.Di + c + 1) * d.N);
      for (int64_t t = 0; t < d.T; ++t) {
        const bool reset = d.packed && t > 0 && d.seq[size_t(b * d.T + t)] != d.seq[size_t(b * d.T + t - 1)];
        const size_t r = size_t((b * d.T + t) * d.Di + c);
        double y = d.D[size_t(c)] * d.u[r];
        for (int64_t n = 0; n < d.N; ++n) {
          const double a = std::exp(d.delta[r] * d.A[size_t(c * d.N + n)]);
          h[size_t(n)] = (reset ? 0.0 : a * h[size_t(n)]) + d.delta[r] * d.u[r] * d.Bm[size_t((b * d.T + t) * d.N + n)];
          y += h[size_t(n)] * d.Cm[size_t((b * d.T + t) * d.N + n)];
        }
        y *= d.z[r] / (1 + std::exp(-d.z[r]));
        loss += y * d.ry[r];
      }
      for (int64_t n = 0; n < d.N; ++n) loss += h[size_t(n)] * d.rs[size_t((b * d.Di + c) * d.N + n)];
    }
  return loss;
}

ScanData make_scan(bool packed) {
  ScanData d;
  d.packed = packed;
  d.u = random_vec(d.B * d.T * d.Di);
  d.delta = random_vec(d.B * d.T * d.Di, 0.01, 0.5);
  d.A = random_vec(d.Di * d.N, 0.5, 1.5);
  for (int64_t c = 0; c < d.Di; ++c)
    for (int64_t n = 0; n < d.N; ++n) d.A[size_t(c * d.N + n)] *= -double(n + 1);
  d.Bm = random_vec(d.B * d.T * d.N);
  d.Cm = random_vec(d.B * d.T * d.N);
  d.D = random_vec(d.Di);
  d.z = random_vec(d.B * d.T * d.Di, -3.0, 3.0);
  d.s0 = random_vec(d.B * d.Di * d.N);
  d.ry = random_vec(d.B * d.T * d.Di);
  d.rs = random_vec(d.B * d.Di * d.N);
  d.seq = make_seq(d.B, d.T, {{11, 16}, {5, 33}});
  return d;
}

ScanProblem<double> scan_problem(const ScanData& d) {
  ScanProblem<double> p;
  p.Bsz = d.B; p.T = d.T; p.Di = d.Di; p.N = d.N; p.chunk = d.chunk;
  p.u = d.u.data(); p.delta = d.delta.data(); p.A = d.A.data(); p.Bm = d.Bm.data();
  p.Cm = d.Cm.data(); p.D = d.D.data(); p.z = d.z.data();
  p.seq_idx = d.packed ? d.seq.data() : nullptr;
  return p;
}

void check_scan_fd(bool packed) {
  ScanData d = make_scan(packed);
  const std::string tag = packed ? "scan packed " : "scan ";
  {
    Vec y(d.u.size()), sf(d.s0.size());
    ops::cpu::selective_scan_forward(scan_problem(d), d.s0.data(), sf.data(), y.data());
    const double got = dot(y, d.ry) + dot(sf, d.rs), want = scan_naive_loss(d);
    std::printf("[err] %-56s abs=%.3e\n", (tag + "double forward vs naive (loss)").c_str(), std::fabs(got - want));
    EXPECT_LT(std::fabs(got - want), 1e-10 * (1 + std::fabs(want)));
  }
  Vec du(d.u.size()), ddl(d.delta.size()), dA(d.A.size(), 0.0), dB(d.Bm.size()), dC(d.Cm.size()),
      dD(d.D.size(), 0.0), dz(d.z.size()), ds0(d.s0.size());
  ops::cpu::selective_scan_backward(scan_problem(d), d.s0.data(), d.rs.data(), d.ry.data(), du.data(),
                                    ddl.data(), dA.data(), dB.data(), dC.data(), dD.data(), dz.data(),
                                    ds0.data());
  auto loss = [&] { return scan_naive_loss(d); };
  const double h = 1e-5, tol = 1e-7;
  expect_grad(tag + "du (FD, double)", du, fd_grad(loss, d.u, h), tol);
  expect_grad(tag + "ddelta (FD, double)", ddl, fd_grad(loss, d.delta, h), tol);
  expect_grad(tag + "dA (FD, double)", dA, fd_grad(loss, d.A, h), tol);
  expect_grad(tag + "dB (FD, double)", dB, fd_grad(loss, d.Bm, h), tol);
  expect_grad(tag + "dC (FD, double)", dC, fd_grad(loss, d.Cm, h), tol);
  expect_grad(tag + "dD (FD, double)", dD, fd_grad(loss, d.D, h), tol);
  expect_grad(tag + "dz (FD, double)", dz, fd_grad(loss, d.z, h), tol);
  expect_grad(tag + "dinitial_state (FD, double)", ds0, fd_grad(loss, d.s0, h), tol);
}

}  // namespace

TEST(SelectiveScanBackward, FiniteDifferencesDoubleAcrossChunks) { check_scan_fd(false); }
TEST(SelectiveScanBackward, FiniteDifferencesDoublePackedDocuments) { check_scan_fd(true); }

TEST(SelectiveScanBackward, Fp32OpMatchesDoubleKernel) {
  const int64_t B = 2, T = 130, Di = 40, N = 16;
  Tensor u = random_tensor({B, T, Di}), delta = random_tensor({B, T, Di}, 0.001f, 0.1f);
  Tensor A = random_tensor({Di, N}, 0.5f, 1.5f);
  for (int64_t c = 0; c < Di; ++c)
    for (int64_t n = 0; n < N; ++n) A.f32()[c * N + n] *= -float(n + 1);
  Tensor Bm = random_tensor({B, T, N}), Cm = random_tensor({B, T, N}), D = random_tensor({Di});
  Tensor z = random_tensor({B, T, Di}, -3.0f, 3.0f), s0 = random_tensor({B, Di, N});
  Tensor dy = random_tensor({B, T, Di}), dsf = random_tensor({B, Di, N});
  std::vector<int32_t> seqv = make_seq(B, T, {{40, 64}, {100}});
  Tensor seq = Tensor::empty({B, T}, DType::I32);
  std::copy(seqv.begin(), seqv.end(), seq.data<int32_t>());
  Tensor du = Tensor::empty(u.shape()), ddl = Tensor::empty(u.shape()), dA = random_tensor({Di, N});
  Tensor dB = Tensor::empty(Bm.shape()), dC = Tensor::empty(Cm.shape()), dD = random_tensor({Di});
  Tensor dz = Tensor::empty(u.shape()), ds0 = Tensor::empty(s0.shape());
  Vec rdA = to_vec(dA), rdD = to_vec(dD);
  ops::selective_scan_backward(u, delta, A, Bm, Cm, &D, &z, &seq, &s0, &dsf, 64, dy, du, ddl, &dA, dB, dC,
                               &dD, &dz, &ds0);
  Vec uv = to_vec(u), dlv = to_vec(delta), Av = to_vec(A), Bv = to_vec(Bm), Cv = to_vec(Cm), Dv = to_vec(D);
  Vec zv = to_vec(z), s0v = to_vec(s0), dyv = to_vec(dy), dsfv = to_vec(dsf);
  ScanProblem<double> p;
  p.Bsz = B; p.T = T; p.Di = Di; p.N = N; p.chunk = 16;
  p.u = uv.data(); p.delta = dlv.data(); p.A = Av.data(); p.Bm = Bv.data(); p.Cm = Cv.data();
  p.D = Dv.data(); p.z = zv.data(); p.seq_idx = seqv.data();
  Vec rdu(uv.size()), rddl(uv.size()), rdB(Bv.size()), rdC(Cv.size()), rdz(uv.size()), rds0(s0v.size());
  ops::cpu::selective_scan_backward(p, s0v.data(), dsfv.data(), dyv.data(), rdu.data(), rddl.data(),
                                    rdA.data(), rdB.data(), rdC.data(), rdD.data(), rdz.data(), rds0.data());
  const std::string tag = "scan fp32 op (chunk 64) vs double (chunk 16), ";
  expect_grad(tag + "du", to_vec(du), rdu, 2e-6);
  expect_grad(tag + "ddelta", to_vec(ddl), rddl, 2e-6);
  expect_grad(tag + "dA (+= onto random)", to_vec(dA), rdA, 2e-6);
  expect_grad(tag + "dB", to_vec(dB), rdB, 2e-6);
  expect_grad(tag + "dC", to_vec(dC), rdC, 2e-6);
  expect_grad(tag + "dD (+= onto random)", to_vec(dD), rdD, 2e-6);
  expect_grad(tag + "dz", to_vec(dz), rdz, 2e-6);
  expect_grad(tag + "dinitial_state", to_vec(ds0), rds0, 2e-6);
}

// Mamba-1's dt = softplus(raw + b): the scan's backward taking the softplus's (ddelta_bias given)
// equals the scan's backward followed by softplus_dt_backward on the raw input, the derivative
// sigmoid(raw + b) taken there as 1 - exp(-dt) (within fp32 rounding of the two formulas).
TEST(SelectiveScanBackward, SoftplusBackwardInsideEqualsTheSeparateOp) {
  const int64_t B = 2, T = 70, Di = 24, N = 16;
  Tensor raw = random_tensor({B, T, Di}, -6.0f, 3.0f), bias = random_tensor({Di}, -2.0f, 2.0f);
  Tensor delta = Tensor::empty(raw.shape());
  ops::softplus_dt(raw, bias, 0.0f, INFINITY, delta);
  Tensor u = random_tensor({B, T, Di}), A = random_tensor({Di, N}, -4.0f, -0.5f);
  Tensor Bm = random_tensor({B, T, N}), Cm = random_tensor({B, T, N}), D = random_tensor({Di});
  Tensor z = random_tensor({B, T, Di}), dy = random_tensor({B, T, Di});
  auto grads = [&](bool inside, Tensor& ddl, Tensor& dbias) {
    Tensor du = Tensor::empty(u.shape()), dB = Tensor::empty(Bm.shape()), dC = Tensor::empty(Cm.shape());
    Tensor dz = Tensor::empty(u.shape());
    ops::selective_scan_backward(u, delta, A, Bm, Cm, &D, &z, nullptr, nullptr, nullptr, 16, dy, du, ddl, nullptr, dB, dC,
                                 nullptr, &dz, nullptr, nullptr, inside ? &dbias : nullptr);
    if (!inside) ops::softplus_dt_backward(raw, bias, 0.0f, INFINITY, ddl, ddl, &dbias);
  };
  Tensor ddl_in = Tensor::empty(u.shape()), ddl_sep = Tensor::empty(u.shape());
  Tensor dbias_in = random_tensor({Di}), dbias_sep = dbias_in.clone();  // += onto the same values
  grads(true, ddl_in, dbias_in);
  grads(false, ddl_sep, dbias_sep);
  expect_grad("ddelta w.r.t. raw, softplus inside vs separate", to_vec(ddl_in), to_vec(ddl_sep), 1e-6);
  expect_grad("ddelta_bias, softplus inside vs separate", to_vec(dbias_in), to_vec(dbias_sep), 1e-6);
}

TEST(SelectiveScanBackward, PackedForwardWithoutSeqIdxMatchesOpsForward) {
  const int64_t B = 2, T = 50, Di = 24, N = 8;
  Tensor u = random_tensor({B, T, Di}), delta = random_tensor({B, T, Di}, 0.001f, 0.1f);
  Tensor A = random_tensor({Di, N}, -4.0f, -0.5f), Bm = random_tensor({B, T, N}), Cm = random_tensor({B, T, N});
  Tensor D = random_tensor({Di}), z = random_tensor({B, T, Di}), s1 = random_tensor({B, Di, N});
  Tensor s2 = s1.clone(), y1 = Tensor::empty(u.shape()), y2 = Tensor::empty(u.shape());
  ops::selective_scan(u, delta, A, Bm, Cm, &D, &z, nullptr, &s1, y1);
  ops::selective_scan(u, delta, A, Bm, Cm, &D, &z, nullptr, &s2, y2);
  expect_grad("selective_scan(no seq_idx) y vs selective_scan", to_vec(y2), to_vec(y1), 1e-6);
  expect_grad("selective_scan(no seq_idx) state", to_vec(s2), to_vec(s1), 1e-6);
}

// The forward's chunk_states are the states entering steps 0, 8, 16, ... (checked against the
// final state of a forward over each prefix, with documents: before a reset at the chunk's first
// step), and a backward given them equals one that recomputes its own checkpoints.
TEST(SelectiveScanBackward, ForwardChunkStatesAreThePrefixStatesAndServeTheBackward) {
  const int64_t B = 2, T = 45, Di = 20, N = 12, K = ops::kScanStateChunk;  // T: a partial last chunk
  Tensor u = random_tensor({B, T, Di}), delta = random_tensor({B, T, Di}, 0.001f, 0.1f);
  Tensor A = random_tensor({Di, N}, -4.0f, -0.5f), Bm = random_tensor({B, T, N}), Cm = random_tensor({B, T, N});
  Tensor D = random_tensor({Di}), z = random_tensor({B, T, Di}, -3.0f, 3.0f), s0 = random_tensor({B, Di, N});
  std::vector<int32_t> seqv = make_seq(B, T, {{16, 21}, {40}});  // starts on a chunk boundary and inside one
  Tensor seq = Tensor::empty({B, T}, DType::I32);
  std::copy(seqv.begin(), seqv.end(), seq.data<int32_t>());
  const int64_t nc = (T + K - 1) / K;
  for (const Tensor* sq : {static_cast<const Tensor*>(nullptr), static_cast<const Tensor*>(&seq)}) {
    const std::string tag = sq ? "documents: " : "one document: ";
    Tensor chunk_states = random_tensor({B, nc, Di, N}), st = s0.clone(), y = Tensor::empty(u.shape());
    ops::selective_scan(u, delta, A, Bm, Cm, &D, &z, sq, &st, y, &chunk_states);
    Tensor y_plain = Tensor::empty(u.shape()), st_plain = s0.clone();
    ops::selective_scan(u, delta, A, Bm, Cm, &D, &z, sq, &st_plain, y_plain);
    expect_grad(tag + "y with chunk states", to_vec(y), to_vec(y_plain), 1e-6);
    for (int64_t c = 0; c < nc; ++c) {
      Tensor h = s0.clone();  // the state after steps 0 .. cK - 1
      if (c > 0) {
        auto prefix = [&](const Tensor& x) {  // x[:, :cK] of a [B, T, C] tensor
          const int64_t C = x.numel() / (B * T), L = c * K;
          Tensor p = Tensor::empty({B, L, C}, x.dtype());
          const size_t row = dtype_size(x.dtype()) * size_t(L * C);
          for (int64_t b = 0; b < B; ++b)
            std::memcpy(static_cast<char*>(p.raw()) + size_t(b) * row,
                        static_cast<const char*>(x.raw()) + size_t(b) * dtype_size(x.dtype()) * size_t(T * C), row);
          return C == 1 ? p.reshape({B, L}) : p;
        };
        Tensor yp = Tensor::empty({B, c * K, Di}), seqp = prefix(seq);
        ops::selective_scan(prefix(u), prefix(delta), A, prefix(Bm), prefix(Cm), &D, nullptr, sq ? &seqp : nullptr, &h,
                            yp);
      }
      Vec got(size_t(B * Di * N));
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < Di * N; ++i) got[size_t(b * Di * N + i)] = chunk_states.f32()[(b * nc + c) * Di * N + i];
      expect_grad(tag + "chunk " + std::to_string(c), got, to_vec(h), 1e-6);
    }
    Tensor dy = random_tensor({B, T, Di}), dsf = random_tensor({B, Di, N});
    auto backward = [&](const Tensor* states, Vec& out) {
      Tensor du = Tensor::empty(u.shape()), ddl = Tensor::empty(u.shape()), dA = Tensor::zeros({Di, N});
      Tensor dB = Tensor::empty(Bm.shape()), dC = Tensor::empty(Cm.shape()), dD = Tensor::zeros({Di});
      Tensor dz = Tensor::empty(u.shape()), ds0 = Tensor::empty(s0.shape());
      ops::selective_scan_backward(u, delta, A, Bm, Cm, &D, &z, sq, &s0, &dsf, 64, dy, du, ddl, &dA, dB, dC, &dD, &dz,
                                   &ds0, states);
      out.clear();
      for (const Tensor* t : {&du, &ddl, &dA, &dB, &dC, &dD, &dz, &ds0}) {
        const Vec v = to_vec(*t);
        out.insert(out.end(), v.begin(), v.end());
      }
    };
    Vec with_states, without;
    backward(&chunk_states, with_states);
    backward(nullptr, without);
    expect_grad(tag + "backward from the forward's chunk states", with_states, without, 1e-6);
  }
}
