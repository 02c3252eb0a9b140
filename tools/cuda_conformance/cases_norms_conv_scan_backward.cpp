// Conformance cases for the backward of the norms (RMSNorm, LayerNorm / LayerNorm1p, Mamba-2's
// gated grouped RMSNorm), the causal depthwise conv and the Mamba-1 selective scan: every output
// against the CPU op at the training shapes (norm rows 8192 .. 16384 of D 2048 / 4096; Mamba-2
// d_model 2048: d_inner 4096, G 8, N 128, conv width 6144; Mamba-1 d_inner 1536, N 16; T ~ 300,
// B 2, with and without documents) and at small odd shapes that reach every kernel variant
// (scalar and float4 rows, the generic long-row norm kernel, partial channel blocks, time
// segments and chunks cut by T, every lanes-per-state layout of the scan, null optionals).
//
// Activation gradients are poisoned (NaN) before the call; accumulated gradients (dw, db, dbias,
// dA, dD) are pre-filled with the same random values on both sides, so a kernel that assigns
// instead of adding, or adds twice, fails. Each case also runs the CUDA op a second time from the
// same pre-fill and requires bit-identical results (the reductions are fixed-order, no atomics).
// Timed calls run on separate outputs after the checked call.
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

// Parameter gradients are sums over every row (B T up to 16384 terms): the CPU sums in double
// per block of rows, the CUDA kernels in fp32 over <= a few dozen rows, then in double over the
// partials. Same class as a gemm's length-K dot products in two blockings: kGemm.
constexpr double kParamGrad = kGemm;
// A bf16 output (the gated norm's dz in mixed precision) against the CPU's fp32 value rounded to
// bf16: the two fp32 values differ by a few ulp (summation order of the statistics), so they
// round apart only where they straddle a bf16 rounding boundary: one bf16 ulp (2^-8 relative) on
// ~2^-14 of the elements, nmse ~1e-9. 1e-7 keeps the headroom and fails a truncation (nmse ~1e-6).
constexpr double kBf16Out = 1e-7;

std::string dims(std::initializer_list<int64_t> v, const char* names) {
  // "B2 T300 C6144" from ({2, 300, 6144}, "BTC"): names one letter each
  std::string s;
  size_t i = 0;
  for (int64_t x : v) {
    if (!s.empty()) s += ' ';
    s += names[i++];
    s += std::to_string(x);
  }
  return s;
}

// GPU result bit-identical to a reference GPU result: 0 when equal, else the nmse between them.
double repeat_err(const Tensor& again, const Tensor& first_host) { return nmse(again, first_host); }

// ---- norms ------------------------------------------------------------------------------------

enum class Norm { kRms, kLayer, kLayer1p, kGated };

struct NormSet {
  Tensor x, z, w, dy, dx, dz, dw, db;
};

void run_norm(Norm kind, int64_t group, NormSet& s, bool want_dw, bool want_db) {
  Tensor* dw = want_dw ? &s.dw : nullptr;
  Tensor* db = want_db ? &s.db : nullptr;
  switch (kind) {
    case Norm::kRms: ops::rms_norm_backward(s.x, s.w, 1e-5f, s.dy, s.dx, dw); break;
    case Norm::kLayer: ops::layer_norm_backward(s.x, s.w, 1e-5f, false, s.dy, s.dx, dw, db); break;
    case Norm::kLayer1p: ops::layer_norm_backward(s.x, s.w, 1e-5f, true, s.dy, s.dx, dw, db); break;
    case Norm::kGated: ops::gated_rms_norm_backward(s.x, s.z, s.w, group, 1e-5f, s.dy, s.dx, s.dz, dw); break;
  }
}

// x_mean: the rows' mean offset (100 checks that LayerNorm centres before squaring).
// z16 (gated): x, z, dy and dz in bf16, as mixed-precision training has them (the SSD writes x,
// in_proj writes z and reads dz, out_proj's backward writes dy); the CPU gets the same bf16 x, z and
// dy widened, and its dz is rounded for the comparison.
void check_norm(Norm kind, int64_t B, int64_t T, int64_t D, int64_t group, bool want_dw = true,
                bool want_db = true, float x_mean = 0.0f, bool z16 = false) {
  const bool gated = kind == Norm::kGated, layer = kind == Norm::kLayer || kind == Norm::kLayer1p;
  want_db = want_db && layer;
  const Shape s3{B, T, D};
  NormSet c;
  c.x = rand_cpu(s3, x_mean - 2, x_mean + 2);
  c.dy = rand_cpu(s3, -1, 1);
  c.w = kind == Norm::kLayer1p ? rand_cpu({D}, -0.5f, 0.5f) : rand_cpu({D}, 0.5f, 1.5f);
  c.z = gated ? rand_cpu(s3, -4, 4) : Tensor::empty({1});
  if (z16) {
    c.x = c.x.to(DType::BF16).to(DType::F32);
    c.z = c.z.to(DType::BF16).to(DType::F32);
    c.dy = c.dy.to(DType::BF16).to(DType::F32);
  }
  const Tensor dw0 = rand_cpu({D}, -1, 1), db0 = rand_cpu({D}, -1, 1);
  c.dx = Tensor::empty(s3);
  c.dz = gated ? Tensor::empty(s3) : Tensor::empty({1});
  c.dw = dw0.clone();
  c.db = db0.clone();
  auto gpu_set = [&] {
    NormSet g;
    g.x = up(z16 ? c.x.to(DType::BF16) : c.x);
    g.dy = up(z16 ? c.dy.to(DType::BF16) : c.dy);
    g.w = up(c.w);
    g.z = up(z16 ? c.z.to(DType::BF16) : c.z);
    g.dx = poisoned(s3);
    g.dz = gated ? poisoned(s3, z16 ? DType::BF16 : DType::F32) : poisoned({1});
    g.dw = up(dw0);
    g.db = up(db0);
    return g;
  };
  NormSet g = gpu_set();
  const Timed t = run_pair([&] { run_norm(kind, group, c, want_dw, want_db); },
                           [&] { run_norm(kind, group, g, want_dw, want_db); }, false);
  const double e_dx = nmse(g.dx, c.dx);
  const double e_dz = !gated ? 0.0
                      : z16  ? nmse(up(down(g.dz).to(DType::F32)), c.dz.to(DType::BF16).to(DType::F32))
                             : nmse(g.dz, c.dz);
  const double e_dw = want_dw ? nmse(g.dw, c.dw) : 0.0;
  const double e_db = want_db ? nmse(g.db, c.db) : 0.0;
  // again from the same pre-fill: bit-identical
  NormSet g2 = gpu_set();
  run_norm(kind, group, g2, want_dw, want_db);
  double rep = repeat_err(g2.dx, down(g.dx));
  if (gated && !z16) rep = std::max(rep, repeat_err(g2.dz, down(g.dz)));
  if (gated && z16) rep = std::max(rep, repeat_err(up(down(g2.dz).to(DType::F32)), down(g.dz).to(DType::F32)));
  if (want_dw) rep = std::max(rep, repeat_err(g2.dw, down(g.dw)));
  if (want_db) rep = std::max(rep, repeat_err(g2.db, down(g.db)));
  const double g_ms = time_ms([&] { run_norm(kind, group, g2, want_dw, want_db); });

  const char* op = gated ? "gated_rms_norm_bwd" : (layer ? "layer_norm_bwd" : "rms_norm_bwd");
  std::string sh = dims({B * T, D}, "RD");
  if (gated) sh += " g" + std::to_string(group);
  if (kind == Norm::kLayer1p) sh += " 1p";
  if (x_mean != 0.0f) sh += " mean" + std::to_string(int(x_mean));
  if (z16) sh += " x z dy bf16";
  if (!want_dw) sh += " no-dw";
  if (layer && !want_db) sh += " no-db";
  record(op, sh, "dx", e_dx, kNorm, g_ms, t.cpu_ms);
  if (gated) record(op, sh, "dz", e_dz, z16 ? kBf16Out : kNorm, NAN, NAN);
  if (want_dw) record(op, sh, "dw +=", e_dw, kParamGrad, NAN, NAN);
  if (want_db) record(op, sh, "db +=", e_db, kParamGrad, NAN, NAN);
  record(op, sh, "repeat", rep, kExact, NAN, NAN);
}

// ---- causal conv --------------------------------------------------------------------------------

struct ConvSet {
  Tensor x, w, b, seq, st, dy, dx, dw, db, dst;
};

struct ConvOpts {
  bool docs = false, state = true, silu = true, bias = true, want_dw = true, want_db = true, want_dst = true;
};

void run_conv(ConvSet& s, const ConvOpts& o) {
  ops::causal_conv1d_backward(s.x, s.w, o.bias ? &s.b : nullptr, o.docs ? &s.seq : nullptr,
                              o.state ? &s.st : nullptr, o.silu, s.dy, s.dx, o.want_dw ? &s.dw : nullptr,
                              o.want_db ? &s.db : nullptr, o.want_dst ? &s.dst : nullptr);
}

void check_conv_backward(int64_t B, int64_t T, int64_t C, int64_t K, const ConvOpts& o) {
  const Shape s3{B, T, C}, ss{B, C, K - 1};
  ConvSet c;
  c.x = rand_cpu(s3, -1, 1);
  c.w = rand_cpu({C, K}, -0.5f, 0.5f);
  c.b = rand_cpu({C}, -1, 1);
  c.seq = o.docs ? random_documents(B, T) : Tensor::empty({B, T}, DType::I32);
  c.st = rand_cpu(ss, -1, 1);
  c.dy = rand_cpu(s3, -1, 1);
  const Tensor dw0 = rand_cpu({C, K}, -1, 1), db0 = rand_cpu({C}, -1, 1);
  c.dx = Tensor::empty(s3);
  c.dw = dw0.clone();
  c.db = db0.clone();
  c.dst = Tensor::empty(ss);
  auto gpu_set = [&] {
    ConvSet g;
    g.x = up(c.x);
    g.w = up(c.w);
    g.b = up(c.b);
    g.seq = up(c.seq);
    g.st = up(c.st);
    g.dy = up(c.dy);
    g.dx = poisoned(s3);
    g.dw = up(dw0);
    g.db = up(db0);
    g.dst = poisoned(ss);
    return g;
  };
  ConvSet g = gpu_set();
  const Timed t = run_pair([&] { run_conv(c, o); }, [&] { run_conv(g, o); }, false);
  const double e_dx = nmse(g.dx, c.dx);
  const double e_dw = o.want_dw ? nmse(g.dw, c.dw) : 0.0;
  const double e_db = o.want_db ? nmse(g.db, c.db) : 0.0;
  const double e_ds = o.want_dst && K > 1 ? nmse(g.dst, c.dst) : 0.0;
  ConvSet g2 = gpu_set();
  run_conv(g2, o);
  double rep = repeat_err(g2.dx, down(g.dx));
  if (o.want_dw) rep = std::max(rep, repeat_err(g2.dw, down(g.dw)));
  if (o.want_db) rep = std::max(rep, repeat_err(g2.db, down(g.db)));
  const double g_ms = time_ms([&] { run_conv(g2, o); });

  std::string sh = dims({B, T, C, K}, "BTCK");
  if (o.docs) sh += " docs";
  if (!o.state) sh += " s0";
  if (!o.silu) sh += " linear";
  if (!o.bias) sh += " no-bias";
  const char* op = "causal_conv1d_bwd";
  record(op, sh, "dx", e_dx, kElementwise, g_ms, t.cpu_ms);
  if (o.want_dst && K > 1) record(op, sh, "dinit", e_ds, kElementwise, NAN, NAN);
  if (o.want_dw) record(op, sh, "dw +=", e_dw, kParamGrad, NAN, NAN);
  if (o.want_db) record(op, sh, "dbias +=", e_db, kParamGrad, NAN, NAN);
  record(op, sh, "repeat", rep, kExact, NAN, NAN);
}

// The forward's windowed kernel (conv.cu) at widths and lengths the core group does not reach:
// odd K, T across several time segments with documents, and the per-element kernel for K > 6.
void check_conv_forward(int64_t B, int64_t T, int64_t C, int64_t K, bool docs) {
  const Shape s3{B, T, C};
  Tensor x = rand_cpu(s3, -1, 1), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  Tensor seq = random_documents(B, T), st = rand_cpu({B, C, K - 1}, -1, 1), y = Tensor::empty(s3);
  Tensor gx = up(x), gw = up(w), gb = up(b), gseq = up(seq), gst = up(st), gy = poisoned(s3);
  Tensor st_cpu = st.clone();
  const Tensor* sq = docs ? &seq : nullptr;
  const Tensor* gsq = docs ? &gseq : nullptr;
  const Timed t = run_pair([&] { ops::causal_conv1d(x, w, &b, sq, &st_cpu, true, y); },
                           [&] { ops::causal_conv1d(gx, gw, &gb, gsq, &gst, true, gy); }, false);
  const std::string sh = dims({B, T, C, K}, "BTCK") + (docs ? " docs" : "");
  record("causal_conv1d", sh, "y", nmse(gy, y), kElementwise, NAN, t.cpu_ms);
  record("causal_conv1d", sh, "state", nmse(gst, st_cpu), kExact, NAN, NAN);
}

// ---- selective scan -----------------------------------------------------------------------------

struct ScanSet {
  Tensor u, delta, A, Bm, Cm, D, z, seq, h0, dhT, dy, chunk_states;
  Tensor du, ddelta, dA, dBm, dCm, dD, dz, dh0, dbias;
};

struct ScanOpts {
  bool docs = false, z = true, D = true, h0 = true, dhT = true, want_dA = true, want_dD = true, want_dh0 = true;
  bool forward_states = false;  // the backward reads the forward's chunk_states (as training runs it)
  bool softplus_bias = false;   // delta is softplus(raw + bias): ddelta w.r.t. raw, ddelta_bias += (Mamba-1's dt)
  int64_t chunk = 64;
};

void run_scan(ScanSet& s, const ScanOpts& o) {
  ops::selective_scan_backward(s.u, s.delta, s.A, s.Bm, s.Cm, o.D ? &s.D : nullptr, o.z ? &s.z : nullptr,
                               o.docs ? &s.seq : nullptr, o.h0 ? &s.h0 : nullptr, o.dhT ? &s.dhT : nullptr, o.chunk,
                               s.dy, s.du, s.ddelta, o.want_dA ? &s.dA : nullptr, s.dBm, s.dCm,
                               o.want_dD ? &s.dD : nullptr, o.z ? &s.dz : nullptr, o.want_dh0 ? &s.dh0 : nullptr,
                               o.forward_states ? &s.chunk_states : nullptr, o.softplus_bias ? &s.dbias : nullptr);
}

void check_scan_backward(int64_t B, int64_t T, int64_t Di, int64_t N, const ScanOpts& o) {
  const Shape sd{B, T, Di}, sn{B, T, N}, ss{B, Di, N};
  ScanSet c;
  c.u = rand_cpu(sd, -1, 1);
  c.delta = rand_cpu(sd, 0.001f, 0.1f);  // softplus'ed dt at Mamba-1's init range
  c.A = rand_cpu({Di, N}, -8.0f, -0.5f);  // A = -exp(A_log), A_log init log(1..N)
  c.Bm = rand_cpu(sn, -1, 1);
  c.Cm = rand_cpu(sn, -1, 1);
  c.D = rand_cpu({Di}, 0.5f, 1.5f);
  c.z = rand_cpu(sd, -2, 2);
  c.seq = o.docs ? random_documents(B, T) : Tensor::empty({B, T}, DType::I32);
  c.h0 = rand_cpu(ss, -0.5f, 0.5f);
  c.dhT = rand_cpu(ss, -0.5f, 0.5f);
  c.dy = rand_cpu(sd, -1, 1);
  if (o.forward_states) {  // the CPU forward's, given to both backwards
    c.chunk_states = Tensor::empty({B, (T + ops::kScanStateChunk - 1) / ops::kScanStateChunk, Di, N});
    Tensor y = Tensor::empty(sd), h = c.h0.clone();
    ops::selective_scan(c.u, c.delta, c.A, c.Bm, c.Cm, o.D ? &c.D : nullptr, o.z ? &c.z : nullptr,
                        o.docs ? &c.seq : nullptr, o.h0 ? &h : nullptr, y, &c.chunk_states);
  }
  const Tensor dA0 = rand_cpu({Di, N}, -1, 1), dD0 = rand_cpu({Di}, -1, 1);
  c.du = Tensor::empty(sd);
  c.ddelta = Tensor::empty(sd);
  c.dz = Tensor::empty(sd);
  c.dBm = Tensor::empty(sn);
  c.dCm = Tensor::empty(sn);
  c.dh0 = Tensor::empty(ss);
  c.dA = dA0.clone();
  c.dD = dD0.clone();
  const Tensor dbias0 = rand_cpu({Di}, -1, 1);
  c.dbias = dbias0.clone();
  auto gpu_set = [&] {
    ScanSet g;
    for (auto [dst, src] : std::vector<std::pair<Tensor*, const Tensor*>>{
             {&g.u, &c.u}, {&g.delta, &c.delta}, {&g.A, &c.A}, {&g.Bm, &c.Bm}, {&g.Cm, &c.Cm}, {&g.D, &c.D},
             {&g.z, &c.z}, {&g.seq, &c.seq}, {&g.h0, &c.h0}, {&g.dhT, &c.dhT}, {&g.dy, &c.dy}})
      *dst = up(*src);
    if (o.forward_states) g.chunk_states = up(c.chunk_states);
    g.du = poisoned(sd);
    g.ddelta = poisoned(sd);
    g.dz = poisoned(sd);
    g.dBm = poisoned(sn);
    g.dCm = poisoned(sn);
    g.dh0 = poisoned(ss);
    g.dA = up(dA0);
    g.dD = up(dD0);
    g.dbias = up(dbias0);
    return g;
  };
  ScanSet g = gpu_set();
  const Timed t = run_pair([&] { run_scan(c, o); }, [&] { run_scan(g, o); }, false);
  struct Out {
    const char* name;
    Tensor ScanSet::*m;
    bool on;
    double limit;
  };
  const std::vector<Out> outs{{"du", &ScanSet::du, true, kScan},
                              {"ddelta", &ScanSet::ddelta, true, kScan},
                              {"dz", &ScanSet::dz, o.z, kScan},
                              {"dB", &ScanSet::dBm, true, kScan},
                              {"dC", &ScanSet::dCm, true, kScan},
                              {"dinit", &ScanSet::dh0, o.want_dh0, kScan},
                              {"dA +=", &ScanSet::dA, o.want_dA, kScan},
                              {"dD +=", &ScanSet::dD, o.want_dD, kScan},
                              {"dbias +=", &ScanSet::dbias, o.softplus_bias, kScan}};
  std::vector<double> errs;
  for (const Out& x : outs) errs.push_back(x.on ? nmse(g.*x.m, c.*x.m) : 0.0);
  ScanSet g2 = gpu_set();
  run_scan(g2, o);
  double rep = 0.0;
  for (const Out& x : outs)
    if (x.on) rep = std::max(rep, repeat_err(g2.*x.m, down(g.*x.m)));
  const double g_ms = time_ms([&] { run_scan(g2, o); });

  std::string sh = dims({B, T, Di, N}, "BTDN") + " c" + std::to_string(o.chunk);
  if (o.docs) sh += " docs";
  if (!o.z) sh += " no-z";
  if (!o.D) sh += " no-D";
  if (!o.h0) sh += " h0=0";
  if (!o.dhT) sh += " dhT=0";
  if (o.forward_states) sh += " fwd-states";
  if (o.softplus_bias) sh += " softplus";
  const char* op = "selective_scan_bwd";
  bool first = true;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!outs[i].on) continue;
    record(op, sh, outs[i].name, errs[i], outs[i].limit, first ? g_ms : NAN, first ? t.cpu_ms : NAN);
    first = false;
  }
  record(op, sh, "repeat", rep, kExact, NAN, NAN);
}

// accumulate_dx (training's residual path: dh += the norm's gradient): against the CPU's
// accumulated dx from the same random dx0, and bit-identical to the GPU's assigned dx plus dx0.
void check_norm_accumulate(Norm kind, int64_t rows, int64_t D) {
  const Shape s2{rows, D};
  const Tensor x = rand_cpu(s2, -2, 2), dy = rand_cpu(s2, -1, 1), dx0 = rand_cpu(s2, -3, 3);
  const Tensor w = kind == Norm::kLayer1p ? rand_cpu({D}, -0.5f, 0.5f) : rand_cpu({D}, 0.5f, 1.5f);
  auto call = [&](const Tensor& xx, const Tensor& ww, const Tensor& dd, Tensor& dx, bool acc) {
    if (kind == Norm::kRms) ops::rms_norm_backward(xx, ww, 1e-5f, dd, dx, nullptr, acc);
    else ops::layer_norm_backward(xx, ww, 1e-5f, kind == Norm::kLayer1p, dd, dx, nullptr, nullptr, acc);
  };
  Tensor c = dx0.clone();
  const Tensor gx = up(x), gw = up(w), gdy = up(dy);
  Tensor g = up(dx0), assigned = poisoned(s2), summed = poisoned(s2);
  const Timed t = run_pair([&] { call(x, w, dy, c, true); }, [&] { call(gx, gw, gdy, g, true); }, false);
  call(gx, gw, gdy, assigned, false);
  ops::add(up(dx0), assigned, summed);
  const char* op = kind == Norm::kRms ? "rms_norm_bwd" : "layer_norm_bwd";
  const std::string sh = dims({rows, D}, "RD") + (kind == Norm::kLayer1p ? " 1p" : "") + " dx +=";
  record(op, sh, "dx", nmse(g, c), kNorm, t.gpu_ms, t.cpu_ms);
  record(op, sh, "= dx0 + dx", repeat_err(g, down(summed)), kExact, NAN, NAN);
}

void run_norms_conv_scan_backward(bool quick) {
  // ---- norms: training shapes (rows = B T), then odd shapes reaching every kernel variant
  const int64_t rows = quick ? 2048 : 8192;
  check_norm(Norm::kRms, 4, rows / 4, 2048, 0);
  check_norm(Norm::kRms, 2, rows / 2, 4096, 0);
  check_norm(Norm::kLayer1p, 4, rows / 4, 2048, 0);
  check_norm(Norm::kLayer1p, 2, rows / 2, 4096, 0);
  check_norm(Norm::kLayer, 2, rows / 2, 4096, 0, true, true, 100.0f);
  check_norm(Norm::kGated, 2, rows / 2, 4096, 512);  // d_inner 4096, 8 groups
  check_norm(Norm::kGated, 2, rows / 2, 4096, 4096);  // one group: 1024-thread rows
  check_norm(Norm::kGated, 2, rows / 2, 1024, 128);   // Mamba-2 at d_model 512: one warp per (row, group)
  check_norm(Norm::kGated, 2, rows / 2, 2048, 256);   // two float4 a lane
  check_norm(Norm::kGated, 3, 5, 6 * 36, 36);         // lanes past the group's end
  check_norm(Norm::kGated, 3, 5, 6 * 36, 36, false);  // no dw
  if (!quick) {
    check_norm(Norm::kRms, 4, 4096, 4096, 0);     // B T = 16384: the bandwidth figure
    check_norm(Norm::kLayer1p, 4, 4096, 4096, 0);
    check_norm(Norm::kRms, 2, 4096, 8192, 0);     // 1024-thread rows
    check_norm(Norm::kGated, 4, 4096, 8192, 1024);  // Mamba-2 8B: d_inner 8192, 8 groups
  }
  check_norm(Norm::kRms, 3, 7, 37, 0);                      // scalar rows, one warp of a 128-thread block
  check_norm(Norm::kRms, 1, 5, 37, 0, false);              // dx only
  check_norm(Norm::kLayer, 3, 11, 1003, 0);                 // scalar, 256 threads
  check_norm(Norm::kLayer1p, 2, 9, 2050, 0, false, true);   // scalar E = 8; db without dw
  check_norm(Norm::kLayer, 2, 9, 96, 0, true, false);       // float4, partial block; dw without db
  check_norm(Norm::kRms, 1, 3, 9000, 0);                    // above the register rows: generic kernel
  check_norm(Norm::kLayer1p, 1, 3, 9001, 0);
  check_norm(Norm::kGated, 3, 5, 3 * 37, 37);               // odd groups, scalar
  check_norm(Norm::kGated, 2, 3, 2 * 5000, 5000);           // generic kernel, two groups
  check_norm(Norm::kGated, 1, 300, 8 * 64, 64, false);      // rows split over several blocks, no dw
  // x, z, dy and dz in bf16 (mixed precision): each kernel once
  check_norm(Norm::kGated, 2, 300, 4096, 512, true, true, 0.0f, true);  // register rows, float4
  check_norm(Norm::kGated, 2, 300, 1024, 128, true, true, 0.0f, true);  // one warp per (row, group)
  check_norm(Norm::kGated, 3, 5, 3 * 37, 37, true, true, 0.0f, true);   // scalar register rows
  check_norm(Norm::kGated, 2, 3, 2 * 5000, 5000, true, true, 0.0f, true);  // generic kernel
  // dx accumulated: every kernel variant (float4 and scalar register rows, E 8, the generic kernel)
  for (Norm k : {Norm::kRms, Norm::kLayer1p}) {
    check_norm_accumulate(k, rows, 2048);
    check_norm_accumulate(k, 37, 4096);
    check_norm_accumulate(k, 37, 1003);
    check_norm_accumulate(k, 5, 9001);
  }

  // ---- causal conv: Mamba-2 at d_model 2048 (d_inner 4096, G 8, N 128: C 6144) and the 8B width
  const int64_t T = quick ? 77 : 300;
  check_conv_backward(2, T, 4096 + 2 * 8 * 128, 4, {});
  check_conv_backward(2, T, 4096 + 2 * 8 * 128, 4, {.docs = true});
  check_conv_backward(2, T, 4096 + 2 * 8 * 128, 4, {.docs = true, .state = false});
  check_conv_backward(2, T, 8192 + 2 * 8 * 128, 4, {.docs = true});
  if (!quick) {
    check_conv_backward(1, 1100, 8192 + 2 * 8 * 128, 4, {.docs = true});  // 128-step segments
    check_conv_backward(4, 4096, 8192 + 2 * 8 * 128, 4, {.docs = true});  // B T = 16384: bandwidth
  }
  check_conv_backward(3, 5, 37, 4, {});                          // T < one segment
  check_conv_backward(2, 2, 37, 4, {});                          // T < K - 1: history reaches past the end
  check_conv_backward(3, 130, 45, 4, {.docs = true});           // three segments
  check_conv_backward(2, 67, 130, 3, {.docs = true, .silu = false, .bias = false});
  check_conv_backward(2, 65, 33, 5, {.state = false, .want_dw = false, .want_dst = false});
  check_conv_backward(2, 19, 33, 2, {.docs = true, .want_db = false});
  check_conv_backward(2, 9, 33, 1, {});                          // no history
  check_conv_backward(1, 70, 200, 6, {.docs = true});
  // the windowed forward at widths and lengths the core group does not reach
  check_conv_forward(3, 130, 45, 3, true);
  check_conv_forward(2, 67, 130, 5, false);
  check_conv_forward(2, 19, 33, 7, true);  // K > 6: the per-element kernel

  // ---- selective scan: Mamba-1 d_model 768 (d_inner 1536, N 16)
  check_scan_backward(2, T, 1536, 16, {.docs = true});
  check_scan_backward(2, T, 1536, 16, {});
  if (!quick) check_scan_backward(8, 2048, 1536, 16, {.docs = true});  // B T = 16384
  check_scan_backward(3, 29, 37, 70, {.docs = true, .chunk = 7});  // NK 4, partial channel block
  check_scan_backward(2, 33, 37, 16, {.docs = true, .h0 = false, .dhT = false});
  check_scan_backward(2, 17, 21, 5, {.z = false, .D = false, .want_dA = false, .want_dD = false,
                                     .want_dh0 = false});
  check_scan_backward(1, 40, 9, 32, {.docs = true});   // channel layout, 4 lanes, one partial block
  check_scan_backward(2, 23, 10, 40, {.want_dD = false});  // NK 2
  check_scan_backward(1, 11, 3, 200, {.docs = true});  // NK 8
  check_scan_backward(2, 1, 19, 16, {});                // one step
  // the channel layout's other lane counts and padding, and the study's mamba-small shape
  check_scan_backward(2, 45, 70, 32, {.docs = true});    // 4 lanes per channel
  check_scan_backward(3, 30, 130, 12, {.docs = true});   // 2 lanes, 4 padded states, 3 blocks
  check_scan_backward(2, 21, 65, 8, {.h0 = false});      // 1 lane
  check_scan_backward(4, 1024, 1024, 16, {.docs = true});
  // from the forward's chunk states (training): documents, a partial last chunk, padded states,
  // no initial state, and the warp layout (N > 32), which keeps its own checkpoints
  check_scan_backward(4, 1024, 1024, 16, {.docs = true, .forward_states = true});
  check_scan_backward(3, 30, 130, 12, {.docs = true, .forward_states = true});
  check_scan_backward(2, 21, 65, 8, {.h0 = false, .forward_states = true});
  check_scan_backward(2, 23, 10, 40, {.forward_states = true});
  if (!quick) check_scan_backward(8, 2048, 1536, 16, {.docs = true, .forward_states = true});
  // the softplus's backward taken inside (Mamba-1 training): channel layout with and without the
  // forward's states, partial channel blocks and lanes, and the warp layout's separate pass
  check_scan_backward(4, 1024, 1024, 16, {.docs = true, .forward_states = true, .softplus_bias = true});
  check_scan_backward(3, 30, 130, 12, {.docs = true, .softplus_bias = true});
  check_scan_backward(2, 21, 65, 8, {.h0 = false, .forward_states = true, .softplus_bias = true});
  check_scan_backward(2, 23, 10, 40, {.softplus_bias = true});
  check_scan_backward(1, 11, 3, 200, {.docs = true, .softplus_bias = true});
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("norms_conv_scan_backward", run_norms_conv_scan_backward);

}  // namespace conformance
