// Conformance cases for the column-block ops (group "column_parts"): linear_parts,
// linear_backward_parts, causal_conv1d_parts and causal_conv1d_backward_parts, which read or write
// a [.., N] operand as consecutive column blocks held in separate tensors (Mamba-2's z | xBC | dt).
// Each is checked two ways:
//  - against the CPU op on the same inputs (the CPU composes the whole-width op and the column
//    copies), with the whole-width op's threshold;
//  - against the CUDA whole-width op followed by the column copies: the conv kernels are the same
//    kernels with another addressing, so their results must be bit-identical ("vs whole", exact);
//    a GEMM over a block of weight rows may be blocked differently by cuBLASLt, so linear's
//    "vs whole" rows carry the bf16 GEMM threshold.
// Shapes: the Mamba-2 layers of the study's small models and of the 8B, plus odd blocks (widths
// not multiples of 8, an empty block, K % 8 != 0 and F32 weights, which take the per-block path).
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

// As kGemmBf16 in cases_dense_backward.cpp: bf16 products are exact on both sides, only the
// accumulation order differs (docs/numerics.md, "CUDA vs CPU").
constexpr double kGemmBf16Parts = 1e-7;

Tensor rounded_bf16(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }

std::string widths_str(const std::vector<int64_t>& widths) {
  std::string s;
  for (int64_t w : widths) s += (s.empty() ? "" : "|") + std::to_string(w);
  return s;
}

int64_t sum(const std::vector<int64_t>& v) {
  int64_t s = 0;
  for (int64_t x : v) s += x;
  return s;
}

// "BxTxK"
std::string dims(int64_t B, int64_t T, int64_t K) {
  return std::to_string(B) + "x" + std::to_string(T) + "x" + std::to_string(K);
}

// Blocks of [B, T, w_i] for each width, NaN-poisoned on the GPU.
std::vector<Tensor> gpu_blocks(int64_t B, int64_t T, const std::vector<int64_t>& widths) {
  std::vector<Tensor> out;
  for (int64_t w : widths) out.push_back(poisoned({B, T, w}));
  return out;
}
std::vector<Tensor> cpu_blocks(int64_t B, int64_t T, const std::vector<int64_t>& widths) {
  std::vector<Tensor> out;
  for (int64_t w : widths) out.push_back(Tensor::empty({B, T, w}));
  return out;
}

using Parts = std::initializer_list<Tensor*>;
using ConstParts = std::initializer_list<const Tensor*>;

// The ops take initializer lists; the cases use at most four blocks.
template <typename F>
void with_parts(std::vector<Tensor>& v, F f) {
  switch (v.size()) {
    case 1: f({&v[0]}); break;
    case 2: f({&v[0], &v[1]}); break;
    case 3: f({&v[0], &v[1], &v[2]}); break;
    case 4: f({&v[0], &v[1], &v[2], &v[3]}); break;
    default: throw std::runtime_error("with_parts: 1-4 blocks");
  }
}
template <typename F>
void with_const_parts(const std::vector<Tensor>& v, F f) {
  switch (v.size()) {
    case 1: f({&v[0]}); break;
    case 2: f({&v[0], &v[1]}); break;
    case 3: f({&v[0], &v[1], &v[2]}); break;
    case 4: f({&v[0], &v[1], &v[2], &v[3]}); break;
    default: throw std::runtime_error("with_const_parts: 1-4 blocks");
  }
}

// Worst nmse over the blocks.
double worst(const std::vector<Tensor>& gpu, const std::vector<Tensor>& cpu) {
  double e = 0.0;
  for (size_t i = 0; i < gpu.size(); ++i) {
    if (gpu[i].numel() == 0) continue;
    const double d = nmse(gpu[i], cpu[i]);
    if (std::isnan(d)) return d;
    e = std::max(e, d);
  }
  return e;
}

// The GPU whole-width output split into blocks (the reference layout of the parts).
std::vector<Tensor> split_on_gpu(const Tensor& whole, int64_t B, int64_t T, const std::vector<int64_t>& widths) {
  std::vector<Tensor> out;
  int64_t col = 0;
  for (int64_t w : widths) {
    Tensor p = poisoned({B, T, w});
    if (w > 0) ops::copy_columns(whole, col, p);
    out.push_back(down(p));
    col += w;
  }
  return out;
}

// ---- linear_parts / linear_backward_parts ------------------------------------------------------

void check_linear_parts(int64_t B, int64_t T, int64_t K, const std::vector<int64_t>& widths, bool bf16, bool bias) {
  const int64_t N = sum(widths), M = B * T;
  Tensor x = rand_cpu({B, T, K}, -1, 1), w = rand_cpu({N, K}, -0.03f, 0.03f), b = rand_cpu({N}, -1, 1);
  // bf16 weights: the CPU multiplies the bf16-rounded operands (what the tensor cores see)
  const bool tensor_cores = bf16 && K % 8 == 0 && M > 2;  // M <= 2: linear.cu's GEMV (kGemvRows), fp32 x
  const Tensor xr = tensor_cores ? rounded_bf16(x) : x, wr = bf16 ? rounded_bf16(w) : w;
  Tensor gx = up(x), gw = bf16 ? up(w.to(DType::BF16)) : up(w), gb = up(b);
  std::vector<Tensor> y = cpu_blocks(B, T, widths), gy = gpu_blocks(B, T, widths);
  const Tensor* pb = bias ? &b : nullptr;
  const Tensor* gpb = bias ? &gb : nullptr;
  auto t = run_pair([&] { with_parts(y, [&](Parts l) { ops::linear_parts(xr, wr, pb, l); }); },
                    [&] { with_parts(gy, [&](Parts l) { ops::linear_parts(gx, gw, gpb, l); }); });
  Tensor whole = poisoned({B, T, N});
  ops::linear(gx, gw, gpb, whole);
  const double limit = tensor_cores ? kGemmBf16Parts : kGemm;
  const std::string sh = dims(B, T, K) + " -> " + widths_str(widths) + (bf16 ? " bf16" : " f32") + (bias ? " +b" : "");
  record("linear_parts", sh, "y", worst(gy, y), limit, t.gpu_ms, t.cpu_ms);
  record("linear_parts", sh, "vs whole", worst(gy, split_on_gpu(whole, B, T, widths)), limit, NAN, NAN);
}

void check_linear_backward_parts(int64_t B, int64_t T, int64_t K, const std::vector<int64_t>& widths, bool bf16) {
  const int64_t N = sum(widths), M = B * T;
  const float a = 1.0f / std::sqrt(float(std::max<int64_t>(M, 1)));
  Tensor x = rand_cpu({B, T, K}, -1, 1), w = rand_cpu({N, K}, -0.03f, 0.03f);
  std::vector<Tensor> dy;
  for (int64_t n : widths) dy.push_back(rand_cpu({B, T, n}, -a, a));
  const Tensor dw0 = rand_cpu({N, K}, -0.5f, 0.5f), db0 = rand_cpu({N}, -0.5f, 0.5f);
  const bool tensor_cores = bf16 && K % 8 == 0;
  // The CPU gets the operands the tensor cores multiply; db sums the unrounded dy on both sides.
  std::vector<Tensor> dyr;
  for (const Tensor& d : dy) dyr.push_back(tensor_cores ? rounded_bf16(d) : d);
  const Tensor xr = tensor_cores ? rounded_bf16(x) : x, wr = bf16 ? rounded_bf16(w) : w;
  Tensor dx = Tensor::empty({B, T, K}), dw = dw0.clone(), db = db0.clone();
  std::vector<Tensor> gdy;
  for (const Tensor& d : dy) gdy.push_back(up(d));
  Tensor gx = up(x), gw = bf16 ? up(w.to(DType::BF16)) : up(w);
  Tensor gdx = poisoned({B, T, K}), gdw = up(dw0), gdb = up(db0);
  auto cpu = [&] {
    with_const_parts(dyr, [&](ConstParts l) { ops::linear_backward_parts(l, xr, wr, &dx, &dw, nullptr); });
    with_const_parts(dy, [&](ConstParts l) { ops::linear_backward_parts(l, x, w, nullptr, nullptr, &db); });
  };
  auto gpu = [&] { with_const_parts(gdy, [&](ConstParts l) { ops::linear_backward_parts(l, gx, gw, &gdx, &gdw, &gdb); }); };
  const Timed t = run_pair(cpu, gpu, false);
  // The whole-width backward on the GPU from the joined dy, from the same starting gradients.
  Tensor dy_whole = Tensor::empty({B, T, N});
  int64_t col = 0;
  for (const Tensor& d : dy) {
    ops::write_columns(d, dy_whole, col);
    col += d.dim(-1);
  }
  Tensor gdy_whole = up(dy_whole), wdx = poisoned({B, T, K}), wdw = up(dw0), wdb = up(db0);
  ops::linear_backward(gdy_whole, gx, gw, &wdx, &wdw, &wdb);
  const double limit = tensor_cores ? kGemmBf16Parts : kGemm;
  const std::string sh = dims(B, T, K) + " <- " + widths_str(widths) + (bf16 ? " bf16" : " f32");
  record("linear_backward_parts", sh, "dx", nmse(gdx, dx), limit, t.gpu_ms, t.cpu_ms);
  record("linear_backward_parts", sh, "dw+=", nmse(gdw, dw), limit, NAN, NAN);
  record("linear_backward_parts", sh, "db+=", nmse(gdb, db), kNorm, NAN, NAN);
  // The same bf16 dy and the same GEMM shapes as the whole-width op: bit-identical.
  const double vs_whole =
      std::max({nmse(gdx, down(wdx)), nmse(gdw, down(wdw)), nmse(gdb, down(wdb))});
  record("linear_backward_parts", sh, "vs whole", vs_whole, kExact, NAN, NAN);
}

// ---- causal_conv1d_parts / causal_conv1d_backward_parts ---------------------------------------

// With `stateful`, a streaming state goes in and comes out (inference prefill), on both sides
// and beside the whole-width op.
void check_conv_parts(int64_t B, int64_t T, const std::vector<int64_t>& widths, int64_t K, bool docs, bool stateful = false) {
  const int64_t C = sum(widths);
  Tensor x = rand_cpu({B, T, C}, -1, 1), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  Tensor seq = docs ? random_documents(B, T) : Tensor();
  Tensor gx = up(x), gw = up(w), gb = up(b), gseq = docs ? up(seq) : Tensor();
  const Tensor* sq = docs ? &seq : nullptr;
  const Tensor* gsq = docs ? &gseq : nullptr;
  const Tensor state0 = rand_cpu({B, C, K - 1}, -1, 1);
  Tensor st = state0.clone(), gst = up(state0), gst_whole = up(state0);
  Tensor* s = stateful ? &st : nullptr;
  Tensor* gs = stateful ? &gst : nullptr;
  std::vector<Tensor> y = cpu_blocks(B, T, widths), gy = gpu_blocks(B, T, widths);
  // A stateful call advances the state it reads, so the GPU op is not called again for timing:
  // each further call would read the state the previous one left (its y then differs in the
  // first K - 1 steps while the final state agrees).
  auto t = run_pair([&] { with_parts(y, [&](Parts l) { ops::causal_conv1d_parts(x, w, &b, sq, s, true, l); }); },
                    [&] { with_parts(gy, [&](Parts l) { ops::causal_conv1d_parts(gx, gw, &gb, gsq, gs, true, l); }); },
                    /*retime=*/!stateful);
  Tensor whole = poisoned({B, T, C});
  ops::causal_conv1d(gx, gw, &gb, gsq, stateful ? &gst_whole : nullptr, true, whole);
  const std::string sh = dims(B, T, C) + " K" + std::to_string(K) + " -> " + widths_str(widths) + (docs ? " docs" : "") +
                         (stateful ? " state" : "");
  record("causal_conv1d_parts", sh, "y", worst(gy, y), kElementwise, t.gpu_ms, t.cpu_ms);
  record("causal_conv1d_parts", sh, "vs whole", worst(gy, split_on_gpu(whole, B, T, widths)), kExact, NAN, NAN);
  if (stateful) {
    record("causal_conv1d_parts", sh, "state", nmse(gst, st), kExact, NAN, NAN);
    record("causal_conv1d_parts", sh, "state vs whole", nmse(gst, down(gst_whole)), kExact, NAN, NAN);
  }
}

// bf16 x and bf16 parts (mixed-precision training: the SSD's inputs, half the bytes): each output
// is the fp32 sum rounded once, so against the CPU's fp32 outputs rounded the same way they differ
// by one bf16 ulp only where the two fp32 sums straddle a rounding boundary (nmse ~1e-9; truncating
// instead of rounding gives ~1e-5 everywhere), and against the whole-width fp32 op rounded they are
// the same bits.
constexpr double kConvBf16 = 1e-6;
void check_conv_parts_bf16(int64_t B, int64_t T, const std::vector<int64_t>& widths, int64_t K, bool docs) {
  const int64_t C = sum(widths);
  const Tensor x = rounded_bf16(rand_cpu({B, T, C}, -1, 1)), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  const Tensor seq = docs ? random_documents(B, T) : Tensor();
  const Tensor gx = up(x.to(DType::BF16)), gw = up(w), gb = up(b), gseq = docs ? up(seq) : Tensor();
  const Tensor* sq = docs ? &seq : nullptr;
  const Tensor* gsq = docs ? &gseq : nullptr;
  std::vector<Tensor> y = cpu_blocks(B, T, widths), gy;
  for (int64_t n : widths) gy.push_back(poisoned({B, T, n}, DType::BF16));
  auto t = run_pair([&] { with_parts(y, [&](Parts l) { ops::causal_conv1d_parts(x, w, &b, sq, nullptr, true, l); }); },
                    [&] { with_parts(gy, [&](Parts l) { ops::causal_conv1d_parts(gx, gw, &gb, gsq, nullptr, true, l); }); });
  Tensor whole = poisoned({B, T, C});  // fp32, whole width (causal_conv1d itself takes an fp32 x only)
  ops::causal_conv1d_parts(gx, gw, &gb, gsq, nullptr, true, {&whole});
  std::vector<Tensor> ref = split_on_gpu(whole, B, T, widths), widened;
  for (size_t i = 0; i < widths.size(); ++i) {
    widened.push_back(up(down(gy[i]).to(DType::F32)));
    y[i] = rounded_bf16(y[i]);
    ref[i] = rounded_bf16(ref[i]);
  }
  const std::string sh = dims(B, T, C) + " K" + std::to_string(K) + " -> " + widths_str(widths) + (docs ? " docs" : "") +
                         " bf16";
  record("causal_conv1d_parts", sh, "y", worst(widened, y), kConvBf16, t.gpu_ms, t.cpu_ms);
  record("causal_conv1d_parts", sh, "vs whole", worst(widened, ref), kExact, NAN, NAN);
}

void check_conv_backward_parts(int64_t B, int64_t T, const std::vector<int64_t>& widths, int64_t K, bool docs) {
  const int64_t C = sum(widths);
  Tensor x = rand_cpu({B, T, C}, -1, 1), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  Tensor seq = docs ? random_documents(B, T) : Tensor();
  std::vector<Tensor> dy;
  for (int64_t n : widths) dy.push_back(rand_cpu({B, T, n}, -1, 1));
  const Tensor dw0 = rand_cpu({C, K}, -1, 1), db0 = rand_cpu({C}, -1, 1);
  Tensor dx = Tensor::empty({B, T, C}), dw = dw0.clone(), db = db0.clone();
  Tensor gx = up(x), gw = up(w), gb = up(b), gseq = docs ? up(seq) : Tensor();
  std::vector<Tensor> gdy;
  for (const Tensor& d : dy) gdy.push_back(up(d));
  Tensor gdx = poisoned({B, T, C}), gdw = up(dw0), gdb = up(db0);
  const Tensor* sq = docs ? &seq : nullptr;
  const Tensor* gsq = docs ? &gseq : nullptr;
  auto t = run_pair(
      [&] {
        with_const_parts(dy, [&](ConstParts l) { ops::causal_conv1d_backward_parts(x, w, &b, sq, true, l, dx, &dw, &db); });
      },
      [&] {
        with_const_parts(gdy,
                         [&](ConstParts l) { ops::causal_conv1d_backward_parts(gx, gw, &gb, gsq, true, l, gdx, &gdw, &gdb); });
      },
      false);
  Tensor dy_whole = Tensor::empty({B, T, C});
  int64_t col = 0;
  for (const Tensor& d : dy) {
    ops::write_columns(d, dy_whole, col);
    col += d.dim(-1);
  }
  Tensor gdy_whole = up(dy_whole), wdx = poisoned({B, T, C}), wdw = up(dw0), wdb = up(db0);
  ops::causal_conv1d_backward(gx, gw, &gb, gsq, nullptr, true, gdy_whole, wdx, &wdw, &wdb, nullptr);
  const std::string sh = dims(B, T, C) + " K" + std::to_string(K) + " <- " + widths_str(widths) + (docs ? " docs" : "");
  record("causal_conv1d_bwd_parts", sh, "dx", nmse(gdx, dx), kElementwise, t.gpu_ms, t.cpu_ms);
  // parameter gradients: sums over B*T rows in two blockings (kParamGrad = kGemm)
  record("causal_conv1d_bwd_parts", sh, "dw+=", nmse(gdw, dw), kGemm, NAN, NAN);
  record("causal_conv1d_bwd_parts", sh, "db+=", nmse(gdb, db), kGemm, NAN, NAN);
  const double vs_whole = std::max({nmse(gdx, down(wdx)), nmse(gdw, down(wdw)), nmse(gdb, down(wdb))});
  record("causal_conv1d_bwd_parts", sh, "vs whole", vs_whole, kExact, NAN, NAN);
}

// Mamba-2's in_proj gradient as one [B, T, Di + C + H] tensor: the gated norm's dz into columns
// [0, Di) (dz_col0), the conv's dx into [Di, Di + C) (dx_col0), the fp32 dt gradient into the
// rest (write_columns, rounded when the tensor is bf16). The same kernels with another row
// stride: the wide tensor must hold exactly the ops' own outputs (and dt rounded to nearest even),
// except where the wide rows end the gated norm's 4-wide vectors (W % 4 != 0 with Di % 4 == 0):
// then its scalar kernel runs, whose sums go in another order (the norm's CUDA-vs-CPU limit).
void check_wide_in_proj_gradient(int64_t B, int64_t T, int64_t Di, int64_t groups, const std::vector<int64_t>& conv_widths,
                                 int64_t H, bool bf16) {
  const DType at = bf16 ? DType::BF16 : DType::F32;
  const int64_t C = sum(conv_widths), W = Di + C + H, K = 4;
  auto act = [&](const Shape& s, float lo, float hi) { return up(rounded_bf16(rand_cpu(s, lo, hi)).to(at)); };
  const Tensor gx = act({B, T, Di}, -2, 2), gz = act({B, T, Di}, -3, 3), gdy = act({B, T, Di}, -1, 1);
  const Tensor gw = up(rand_cpu({Di}, 0.5f, 1.5f));
  Tensor dx1 = poisoned({B, T, Di}), dx2 = poisoned({B, T, Di}), dz = poisoned({B, T, Di}, at);
  Tensor dw1 = up(Tensor::zeros({Di})), dw2 = up(Tensor::zeros({Di}));
  Tensor wide = poisoned({B, T, W}, at);
  ops::gated_rms_norm_backward(gx, gz, gw, Di / groups, 1e-5f, gdy, dx1, dz, &dw1);
  ops::gated_rms_norm_backward(gx, gz, gw, Di / groups, 1e-5f, gdy, dx2, wide, &dw2, /*dz_col0=*/0);
  const Tensor cx = act({B, T, C}, -1, 1), cw = up(rand_cpu({C, K}, -0.5f, 0.5f)), cb = up(rand_cpu({C}, -1, 1));
  std::vector<Tensor> cdy;
  for (int64_t n : conv_widths) cdy.push_back(up(rand_cpu({B, T, n}, -1, 1)));
  Tensor cdx = poisoned({B, T, C}, at), cdw1 = up(Tensor::zeros({C, K})), cdw2 = up(Tensor::zeros({C, K}));
  ops::causal_conv1d_backward_parts(cx, cw, &cb, nullptr, true, {&cdy[0], &cdy[1], &cdy[2]}, cdx, &cdw1, nullptr);
  ops::causal_conv1d_backward_parts(cx, cw, &cb, nullptr, true, {&cdy[0], &cdy[1], &cdy[2]}, wide, &cdw2, nullptr,
                                    /*dx_col0=*/Di);
  const Tensor ddt = rand_cpu({B, T, H}, -1, 1);
  ops::write_columns(up(ddt), wide, Di + C);
  // what the columns must hold, built on the CPU in fp32
  Tensor want = Tensor::empty({B, T, W});
  ops::write_columns(down(dz).to(DType::F32), want, 0);
  ops::write_columns(down(cdx).to(DType::F32), want, Di);
  ops::write_columns(bf16 ? rounded_bf16(ddt) : ddt, want, Di + C);
  const std::string sh = dims(B, T, W) + " = " + std::to_string(Di) + "|" + widths_str(conv_widths) + "|" +
                         std::to_string(H) + (bf16 ? " bf16" : " f32");
  const double limit = Di % 4 == 0 && W % 4 != 0 ? 1e-12 : kExact;
  record("in_proj gradient columns", sh, "vs own outputs", nmse(up(down(wide).to(DType::F32)), want), limit, NAN, NAN);
  const double others = std::max({nmse(dx2, down(dx1)), nmse(dw2, down(dw1)), nmse(cdw2, down(cdw1))});
  record("in_proj gradient columns", sh, "dx, dw the same", others, limit, NAN, NAN);
}

void run_column_parts(bool quick) {
  const int64_t T = quick ? 131 : 1024;
  // mamba2-26m-like layer: d 512 -> z 1024 | xBC 1024+2*128 | dt 16
  check_linear_parts(2, T, 512, {1024, 1280, 16}, true, false);
  check_linear_parts(2, T, 512, {1024, 1280, 16}, true, true);
  check_linear_parts(2, 37, 72, {40, 3, 0, 29}, true, true);    // odd widths, an empty block
  check_linear_parts(2, 37, 70, {40, 3, 29}, true, false);      // K % 8 != 0: one linear per block
  check_linear_parts(2, 37, 64, {40, 3, 29}, false, true);      // F32 weights
  check_linear_parts(1, 3, 512, {1024, 1280, 16}, true, false); // 3 rows: the tensor cores
  check_linear_parts(1, 2, 512, {1024, 1280, 16}, true, false); // GEMV-sized M: one GEMV per block
  // the 8B layer: d 4096 -> z 8192 | xBC 8192+2*8*128 | dt 128
  if (!quick) check_linear_parts(1, 512, 4096, {8192, 10240, 128}, true, false);
  check_linear_backward_parts(2, T, 512, {1024, 1280, 16}, true);
  check_linear_backward_parts(2, 37, 72, {40, 3, 29}, true);
  check_linear_backward_parts(2, 37, 64, {40, 3, 29}, false);
  if (!quick) check_linear_backward_parts(1, 512, 4096, {8192, 10240, 128}, true);
  check_conv_parts(2, T, {1024, 128, 128}, 4, false);
  check_conv_parts(2, T, {1024, 128, 128}, 4, true);
  check_conv_parts(3, 77, {33, 0, 7, 24}, 3, true);
  check_conv_parts(2, 50, {16, 16}, 8, false);  // K > 6: whole-width scratch and copies
  check_conv_parts(2, T, {1024, 128, 128}, 4, false, /*stateful=*/true);  // inference prefill
  check_conv_parts(2, 50, {16, 16}, 8, false, /*stateful=*/true);
  // bf16 parts from a bf16 x (mixed-precision training): the study's layer, documents, odd blocks
  // (one channel a thread), K > 6 (the whole-width scratch in bf16)
  check_conv_parts_bf16(2, T, {1024, 128, 128}, 4, false);
  check_conv_parts_bf16(2, T, {1024, 128, 128}, 4, true);
  check_conv_parts_bf16(3, 77, {33, 0, 7, 24}, 3, true);
  check_conv_parts_bf16(2, 50, {16, 16}, 8, false);
  check_conv_backward_parts(2, T, {1024, 128, 128}, 4, false);
  check_conv_backward_parts(2, T, {1024, 128, 128}, 4, true);
  check_conv_backward_parts(3, 77, {33, 7, 24}, 3, true);
  // mamba2-26m-like (vectors and channel pairs), then odd widths (scalar stores, single channels)
  check_wide_in_proj_gradient(2, T, 1024, 8, {1024, 128, 128}, 16, true);
  check_wide_in_proj_gradient(2, T, 1024, 8, {1024, 128, 128}, 16, false);
  check_wide_in_proj_gradient(2, 37, 24, 3, {24, 5, 6}, 5, true);   // W 64: the same vectors
  check_wide_in_proj_gradient(2, 37, 24, 3, {24, 5, 6}, 3, true);   // W 62: the scalar norm kernel
  check_wide_in_proj_gradient(2, 37, 24, 3, {24, 5, 6}, 3, false);
  check_wide_in_proj_gradient(2, 37, 22, 2, {22, 5, 6}, 3, false);  // Di 22: scalar both times
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("column_parts", run_column_parts);

}  // namespace conformance
