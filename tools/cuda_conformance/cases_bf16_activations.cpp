// Conformance cases for mixed precision's bf16 activations (group "bf16_activations"): linear and
// linear_backward reading and writing BF16 activations next to BF16 weights, the MLP activations
// and their backwards on BF16 tensors, at the MLP shapes of the GPU training issue (d_model 2048,
// FFN 8192, 8192 rows) plus shapes the tensor cores cannot take (N or K not a multiple of 8, the
// GEMV's one or two rows), which go through fp32 copies; attention forward and backward with BF16
// q, out, dout and gradients (cuDNN reads and writes them in place; documents and the built-in
// kernels go through fp32 copies), rope / rope_backward on BF16, the block norms writing BF16
// and the Mamba in_proj (linear_parts and its backward) reading it. The CPU has no bf16
// activations: it gets the same bf16 values widened to fp32, computes in fp32, and its output is
// rounded to bf16 where the GPU's is. Invalid dtypes must throw.
#include <cmath>
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "harness.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

// Thresholds (normalised MSE), docs/numerics.md "CUDA vs CPU: bf16 activations".
// Elementwise on bf16: both sides widen the same bf16 inputs, compute in fp32 (a few ulp apart:
// erfcf / expf against std::erfc / exp_fast) and round to bf16. The outputs differ only where the
// two fp32 values straddle a rounding boundary: one bf16 ulp (2^-8 relative) on ~2^-14 of the
// elements, nmse ~1e-9. 1e-7 keeps that headroom and still fails an output truncated instead of
// rounded (0.5 ulp on average everywhere: nmse ~1e-6) or any wrong formula (> 1e-4).
constexpr double kBf16Elementwise = 1e-7;
// A bf16 GEMM output: the fp32 sums differ by the accumulation order (kGemmBf16 of the fp32 rows
// allows up to ~1e-4 relative), and the rounding to bf16 turns that into one bf16 ulp on the
// elements that straddle a boundary: up to ~3% of them, nmse <= 0.03 * 2^-16 ~ 5e-7. 1e-6 admits
// it; a wrong layout, leading dimension or dtype gives > 1e-2.
constexpr double kGemmBf16Out = 1e-6;
// fp32 outputs of the bf16 tensor-core GEMMs: kGemmBf16 in cases_dense_backward.cpp.
constexpr double kGemmBf16F32 = 1e-7;

Tensor rounded(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }
// A CUDA tensor of t's values in `dt` (t F32 on the CPU, already bf16-representable for BF16).
Tensor up_as(const Tensor& t, DType dt) { return up(dt == DType::BF16 ? t.to(DType::BF16) : t); }
// nmse of a CUDA output (F32 or BF16) against a CPU F32 reference.
double nmse_any(const Tensor& gpu, const Tensor& cpu) {
  return nmse(gpu.dtype() == DType::F32 ? gpu : up(down(gpu).to(DType::F32)), cpu);
}
const char* name(DType dt) { return dt == DType::BF16 ? "bf16" : "f32"; }

// y = x w^T: x and y in the given dtypes, w bf16.
void check_linear(int64_t B, int64_t T, int64_t K, int64_t N, DType xt, DType yt) {
  Tensor x = rounded(rand_cpu({B, T, K}, -1, 1)), w = rounded(rand_cpu({N, K}, -0.03f, 0.03f));
  Tensor y = Tensor::empty({B, T, N});
  Tensor gx = up_as(x, xt), gw = up(w.to(DType::BF16)), gy = poisoned({B, T, N}, yt);
  auto t = run_pair([&] { ops::linear(x, w, nullptr, y); }, [&] { ops::linear(gx, gw, nullptr, gy); });
  const Tensor want = yt == DType::BF16 ? rounded(y) : y;
  const bool tensor_cores = K % 8 == 0 && N % 8 == 0;
  record("linear", shape_str(x.shape()) + "x" + shape_str(w.shape()) + " x " + name(xt) + " y " + name(yt), "y",
         nmse_any(gy, want), yt == DType::BF16 ? kGemmBf16Out : (tensor_cores ? kGemmBf16F32 : kGemm), t.gpu_ms,
         t.cpu_ms);
}

// y = r + x w^T (+ b), the output projection onto the residual stream (linear_onto): x in xt, w
// bf16, y and r fp32. Against the CPU (linear then add), and against CUDA's own linear then add:
// the fused epilogue adds r to the same fp32 sums once, so the second row is expected at 0.
void check_linear_onto(int64_t B, int64_t T, int64_t K, int64_t N, DType xt, bool with_bias) {
  Tensor x = rounded(rand_cpu({B, T, K}, -1, 1)), w = rounded(rand_cpu({N, K}, -0.03f, 0.03f));
  Tensor r = rand_cpu({B, T, N}, -1, 1), b = rand_cpu({N}, -0.5f, 0.5f), y = Tensor::empty({B, T, N});
  Tensor gx = up_as(x, xt), gw = up(w.to(DType::BF16)), gr = up(r), gb = up(b), gy = poisoned({B, T, N});
  const Tensor* bias = with_bias ? &b : nullptr;
  const Tensor* gbias = with_bias ? &gb : nullptr;
  auto t = run_pair([&] { ops::linear_onto(x, w, bias, r, y); }, [&] { ops::linear_onto(gx, gw, gbias, gr, gy); });
  const bool tensor_cores = K % 8 == 0 && N % 8 == 0;
  const std::string sh = shape_str(x.shape()) + "x" + shape_str(w.shape()) + " x " + name(xt) + (with_bias ? " +b" : "");
  record("linear_onto", sh, "y", nmse(gy, y), tensor_cores ? kGemmBf16F32 : kGemm, t.gpu_ms, t.cpu_ms);
  Tensor g_sep = poisoned({B, T, N});
  ops::linear(gx, gw, gbias, g_sep);
  ops::add(gr, g_sep, g_sep);
  record("linear_onto", sh, "y vs linear+add (cuda)", nmse(gy, down(g_sep)), kExact, 0.0, 0.0);
}

// dx = dy w (dx in dxt; with `accumulate` an F32 dx += dy w, as SwiGLU's second product), dw += dy^T
// x, with dy and x in the given dtypes; db (an fp32 column sum of dy) where asked.
void check_linear_backward(int64_t B, int64_t T, int64_t K, int64_t N, DType dyt, DType xt, DType dxt, bool db,
                           bool accumulate = false) {
  const int64_t M = B * T;
  const float a = 1.0f / std::sqrt(float(M));
  Tensor x = rounded(rand_cpu({B, T, K}, -1, 1)), w = rounded(rand_cpu({N, K}, -0.03f, 0.03f));
  Tensor dy = rounded(rand_cpu({B, T, N}, -a, a));
  const Tensor dw0 = rand_cpu({N, K}, -0.5f, 0.5f), db0 = rand_cpu({N}, -0.5f, 0.5f);
  const Tensor dx0 = rand_cpu({B, T, K}, -0.5f, 0.5f);
  Tensor dx = accumulate ? dx0.clone() : Tensor::empty({B, T, K}), dw = dw0.clone(), dbs = db0.clone();
  Tensor gdy = up_as(dy, dyt), gx = up_as(x, xt), gw = up(w.to(DType::BF16));
  Tensor gdx = accumulate ? up(dx0) : poisoned({B, T, K}, dxt), gdw = up(dw0), gdb = up(db0);
  auto t = run_pair([&] { ops::linear_backward(dy, x, w, &dx, &dw, db ? &dbs : nullptr, accumulate); },
                    [&] { ops::linear_backward(gdy, gx, gw, &gdx, &gdw, db ? &gdb : nullptr, accumulate); }, false);
  const std::string sh = shape_str(dy.shape()) + "x" + shape_str(w.shape()) + " dy " + name(dyt) + " x " + name(xt) +
                         " dx " + name(dxt);
  const bool tensor_cores = K % 8 == 0 && N % 8 == 0;
  const double f32_limit = tensor_cores ? kGemmBf16F32 : kGemm;
  record("linear_backward", sh, accumulate ? "dx+=" : "dx", nmse_any(gdx, dxt == DType::BF16 ? rounded(dx) : dx),
         dxt == DType::BF16 ? kGemmBf16Out : f32_limit, NAN, t.cpu_ms);
  record("linear_backward", sh, "dw+=", nmse(gdw, dw), f32_limit, NAN, NAN);
  if (db) record("linear_backward", sh, "db+=", nmse(gdb, dbs), kNorm, NAN, NAN);
}

using Unary = void (*)(const Tensor&, Tensor&);
using UnaryBackward = void (*)(const Tensor&, const Tensor&, Tensor&);

// An activation and its backward on bf16 tensors (contiguous, or one element off alignment: the
// scalar path), dx also aliasing dy.
void check_activation(const char* op, Unary f, UnaryBackward fb, const Shape& s, bool offset) {
  Tensor x = rounded(rand_cpu(s, -6, 6)), dy = rounded(rand_cpu(s, -1, 1));
  Tensor y = Tensor::empty(s), dx = Tensor::empty(s);
  auto bf16_copy = [&](const Tensor& t) {
    if (!offset) return up(t.to(DType::BF16));
    Tensor big = up(rand_cpu({t.numel() + 1}, -1, 1).to(DType::BF16));
    Tensor view = big.slice0(1, t.numel() + 1).reshape(t.shape());
    copy_tensor(t.to(DType::BF16), view);
    return view;
  };
  Tensor gx = bf16_copy(x), gdy = bf16_copy(dy), gy = bf16_copy(x), gdx = bf16_copy(x);
  const std::string sh = shape_str(s) + (offset ? " +2 bytes" : "");
  auto t = run_pair([&] { f(x, y); }, [&] { f(gx, gy); });
  record(op, sh + " bf16", "y", nmse_any(gy, rounded(y)), kBf16Elementwise, t.gpu_ms, t.cpu_ms);
  auto tb = run_pair([&] { fb(x, dy, dx); }, [&] { fb(gx, gdy, gdx); });
  const std::string bop = std::string(op) + "_backward";
  record(bop, sh + " bf16", "dx", nmse_any(gdx, rounded(dx)), kBf16Elementwise, tb.gpu_ms, tb.cpu_ms);
  fb(gx, gdy, gdy);  // dx aliasing dy
  record(bop, sh + " bf16", "inplace", nmse_any(gdy, rounded(dx)), kBf16Elementwise, NAN, NAN);
}

void check_swiglu(const Shape& s) {
  Tensor g = rounded(rand_cpu(s, -6, 6)), u = rounded(rand_cpu(s, -2, 2)), dy = rounded(rand_cpu(s, -1, 1));
  Tensor y = Tensor::empty(s), dg = Tensor::empty(s), du = Tensor::empty(s);
  auto b16 = [](const Tensor& t) { return up(t.to(DType::BF16)); };
  Tensor gg = b16(g), gu = b16(u), gdy = b16(dy), gy = poisoned(s, DType::BF16);
  Tensor gdg = poisoned(s, DType::BF16), gdu = poisoned(s, DType::BF16);
  auto t = run_pair([&] { ops::swiglu(g, u, y); }, [&] { ops::swiglu(gg, gu, gy); });
  record("swiglu", shape_str(s) + " bf16", "y", nmse_any(gy, rounded(y)), kBf16Elementwise, t.gpu_ms, t.cpu_ms);
  auto tb = run_pair([&] { ops::swiglu_backward(g, u, dy, dg, du); },
                     [&] { ops::swiglu_backward(gg, gu, gdy, gdg, gdu); });
  record("swiglu_backward", shape_str(s) + " bf16", "dgate", nmse_any(gdg, rounded(dg)), kBf16Elementwise, tb.gpu_ms,
         tb.cpu_ms);
  record("swiglu_backward", shape_str(s) + " bf16", "dup", nmse_any(gdu, rounded(du)), kBf16Elementwise, NAN, NAN);
}

// Attention with BF16 q / out / dout / dq / dk / dv (and K/V), against the CPU on the same bf16
// values widened: the fp32-activation limits of the bf16 attention paths (2e-5 forward, 1e-4
// backward), since those paths already round q, dout, P and dS to bf16 and cuDNN rounds O and the
// gradients; here every output is rounded to bf16 once (~1.3e-6 of nmse).
void check_attention(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, bool docs, ops::cuda::AttentionBackend mode) {
  constexpr double kFwd = 2e-5, kBwd = 1e-4;
  const auto before = ops::cuda::attention_backend();
  ops::cuda::set_attention_backend(mode);
  Tensor q = rounded(rand_cpu({B, T, Hq, Dh}, -1, 1)), k = rounded(rand_cpu({B, T, Hkv, Dh}, -1, 1));
  Tensor v = rounded(rand_cpu({B, T, Hkv, Dh}, -1, 1)), dout = rounded(rand_cpu({B, T, Hq, Dh}, -1, 1));
  const Tensor seq = docs ? random_documents(B, T) : Tensor();
  const float scale = 1.0f / std::sqrt(float(Dh));
  Tensor o = Tensor::empty({B, T, Hq, Dh}), lse2 = Tensor::empty({B, Hq, T});
  Tensor dq = Tensor::empty(q.shape()), dk = Tensor::empty(k.shape()), dv = Tensor::empty(v.shape());
  auto b16 = [](const Tensor& t) { return up(t.to(DType::BF16)); };
  Tensor gq = b16(q), gk = b16(k), gv = b16(v), gdo = b16(dout), gseq = docs ? up(seq) : Tensor();
  Tensor go = poisoned(q.shape(), DType::BF16), glse2 = poisoned({B, Hq, T});
  Tensor gdq = poisoned(q.shape(), DType::BF16), gdk = poisoned(k.shape(), DType::BF16),
         gdv = poisoned(v.shape(), DType::BF16);
  const Tensor* cs = docs ? &seq : nullptr;
  const Tensor* gs = docs ? &gseq : nullptr;
  auto t = run_pair([&] { ops::attention(q, k, v, cs, scale, o, &lse2); },
                    [&] { ops::attention(gq, gk, gv, gs, scale, go, &glse2); });
  auto tb = run_pair([&] { ops::attention_backward(q, k, v, cs, scale, dout, dq, dk, dv); },
                     [&] { ops::attention_backward(gq, gk, gv, gs, scale, gdo, gdq, gdk, gdv, &go, &glse2); });
  ops::cuda::set_attention_backend(before);
  const std::string sh = "B" + std::to_string(B) + " T" + std::to_string(T) + " h" + std::to_string(Hq) + "/" +
                         std::to_string(Hkv) + " d" + std::to_string(Dh) + (docs ? " docs" : "") +
                         (mode == ops::cuda::AttentionBackend::Own ? " own" : "") + " bf16";
  record("attention", sh, "out", nmse_any(go, rounded(o)), kFwd, t.gpu_ms, t.cpu_ms);
  record("attention", sh, "lse2", nmse(glse2, lse2), kFwd, NAN, NAN);
  record("attention_backward", sh, "dq", nmse_any(gdq, rounded(dq)), kBwd, tb.gpu_ms, tb.cpu_ms);
  record("attention_backward", sh, "dk", nmse_any(gdk, rounded(dk)), kBwd, NAN, NAN);
  record("attention_backward", sh, "dv", nmse_any(gdv, rounded(dv)), kBwd, NAN, NAN);
}

// rope and rope_backward on BF16: the CPU's fp32 rotation of the same values, rounded (as the
// elementwise ops: one bf16 ulp where the two fp32 results straddle a rounding boundary).
void check_rope(int64_t B, int64_t T, int64_t H, int64_t Dh, int64_t rotary, int64_t pos0) {
  Tensor x = rounded(rand_cpu({B, T, H, Dh}, -1, 1)), xb = x.clone();
  Tensor g = up(x.to(DType::BF16)), gb = up(x.to(DType::BF16));
  auto t = run_pair([&] { ops::rope(x, pos0, rotary, 10000.0); }, [&] { ops::rope(g, pos0, rotary, 10000.0); }, false);
  ops::rope_backward(xb, pos0, rotary, 10000.0);
  ops::rope_backward(gb, pos0, rotary, 10000.0);
  const std::string sh = shape_str(x.shape()) + " rot " + std::to_string(rotary) + " at " + std::to_string(pos0) + " bf16";
  record("rope", sh, "x", nmse_any(g, rounded(x)), kBf16Elementwise, t.gpu_ms, t.cpu_ms);
  record("rope_backward", sh, "dx", nmse_any(gb, rounded(xb)), kBf16Elementwise, NAN, NAN);
}

// gated_rms_norm writing a BF16 y (out_proj's input) from x and z both fp32 or both BF16 (the
// SSD's output and in_proj's in mixed precision): the CPU's fp32 y (from the same x and z values)
// rounded. Group sizes that take each kernel: warps of one / two float4 rounds (128, 256), a block
// of float4s (512), the scalar block (100).
void check_gated_norm(int64_t rows, int64_t D, int64_t group, DType zt = DType::F32) {
  Tensor x = rand_cpu({rows, D}, -2, 2), z = rand_cpu({rows, D}, -3, 3), w = rand_cpu({D}, 0.5f, 1.5f);
  if (zt == DType::BF16) x = rounded(x), z = rounded(z);
  Tensor y = Tensor::empty({rows, D});
  Tensor gx = up_as(x, zt), gz = up_as(z, zt), gw = up(w), gy = poisoned({rows, D}, DType::BF16);
  auto t = run_pair([&] { ops::gated_rms_norm(x, z, w, group, 1e-5f, y); },
                    [&] { ops::gated_rms_norm(gx, gz, gw, group, 1e-5f, gy); });
  record("gated_rms_norm", "[" + std::to_string(rows) + ", " + std::to_string(D) + "] group " + std::to_string(group) +
                               " x z " + name(zt) + " y bf16",
         "y", nmse_any(gy, rounded(y)), kBf16Elementwise, t.gpu_ms, t.cpu_ms);
}

// rms_norm / layer_norm writing a BF16 y (the mixers' input in mixed-precision training) from an
// fp32 x: the CPU's fp32 y rounded. D 2048 over >= 4096 rows takes the warp kernel, fewer rows or a
// width off 4 the block kernel.
void check_norm(int64_t rows, int64_t D, bool layer) {
  Tensor x = rand_cpu({rows, D}, -2, 2), w = rand_cpu({D}, 0.5f, 1.5f), b = rand_cpu({D}, -0.5f, 0.5f);
  Tensor y = Tensor::empty({rows, D});
  Tensor gx = up(x), gw = up(w), gb = up(b), gy = poisoned({rows, D}, DType::BF16);
  auto t = run_pair(
      [&] { layer ? ops::layer_norm(x, w, &b, 1e-5f, true, y) : ops::rms_norm(x, w, 1e-5f, y); },
      [&] { layer ? ops::layer_norm(gx, gw, &gb, 1e-5f, true, gy) : ops::rms_norm(gx, gw, 1e-5f, gy); });
  record(layer ? "layer_norm" : "rms_norm", "[" + std::to_string(rows) + ", " + std::to_string(D) + "] y bf16", "y",
         nmse_any(gy, rounded(y)), kBf16Elementwise, t.gpu_ms, t.cpu_ms);
}

// Mamba's in_proj on a BF16 x (the block norm's output): linear_parts forward, and
// linear_backward_parts with fp32 dy blocks and an fp32 dx, against the CPU on the same values.
// mid16: the middle part (Mamba-2's conv input x | B | C) is BF16, written by the forward and
// read as a dy block by the backward.
void check_parts(int64_t rows, int64_t K, const std::vector<int64_t>& widths, bool mid16 = false) {
  int64_t N = 0;
  for (int64_t n : widths) N += n;
  const float a = 1.0f / std::sqrt(float(rows));
  Tensor x = rounded(rand_cpu({rows, K}, -1, 1)), w = rounded(rand_cpu({N, K}, -0.03f, 0.03f));
  Tensor gx = up(x.to(DType::BF16)), gw = up(w.to(DType::BF16));
  std::vector<Tensor> ys, gys, dys, gdys;
  for (size_t i = 0; i < widths.size(); ++i) {
    const int64_t n = widths[i];
    const DType dt = mid16 && i == 1 ? DType::BF16 : DType::F32;
    ys.push_back(Tensor::empty({rows, n}));
    gys.push_back(poisoned({rows, n}, dt));
    dys.push_back(rounded(rand_cpu({rows, n}, -a, a)));  // the GPU rounds dy to bf16: the same values
    gdys.push_back(up_as(dys.back(), dt));
  }
  // the op takes an initializer list: up to three parts here
  auto parts = [](std::vector<Tensor>& v) { return std::vector<Tensor*>{&v[0], &v[1], &v[2]}; };
  auto fwd = [](const Tensor& xx, const Tensor& ww, std::vector<Tensor*> p) {
    ops::linear_parts(xx, ww, nullptr, {p[0], p[1], p[2]});
  };
  auto t = run_pair([&] { fwd(x, w, parts(ys)); }, [&] { fwd(gx, gw, parts(gys)); });
  const std::string sh = "[" + std::to_string(rows) + ", " + std::to_string(K) + "] -> " + std::to_string(N) +
                         " in 3 parts, x bf16" + (mid16 ? ", middle part bf16" : "");
  double worst = 0, worst16 = 0;
  for (size_t i = 0; i < ys.size(); ++i) {
    if (gys[i].dtype() == DType::BF16) worst16 = std::max(worst16, nmse_any(gys[i], rounded(ys[i])));
    else worst = std::max(worst, nmse(gys[i], ys[i]));
  }
  record("linear_parts", sh, "y", worst, kGemmBf16F32, t.gpu_ms, t.cpu_ms);
  if (mid16) record("linear_parts", sh, "y bf16 part", worst16, kGemmBf16Out, NAN, NAN);
  const Tensor dw0 = rand_cpu({N, K}, -0.5f, 0.5f);
  Tensor dx = Tensor::empty({rows, K}), dw = dw0.clone();
  Tensor gdx = poisoned({rows, K}), gdw = up(dw0);
  auto bwd = [](std::vector<Tensor>& d, const Tensor& xx, const Tensor& ww, Tensor* ddx, Tensor* ddw) {
    ops::linear_backward_parts({&d[0], &d[1], &d[2]}, xx, ww, ddx, ddw, nullptr);
  };
  auto tb = run_pair([&] { bwd(dys, x, w, &dx, &dw); }, [&] { bwd(gdys, gx, gw, &gdx, &gdw); }, false);
  record("linear_backward_parts", sh, "dx", nmse(gdx, dx), kGemmBf16F32, tb.gpu_ms, tb.cpu_ms);
  record("linear_backward_parts", sh, "dw+=", nmse(gdw, dw), kGemmBf16F32, NAN, NAN);
}

// Mamba-2's conv in mixed precision: causal_conv1d_parts reading a BF16 x into fp32 parts (the
// SSD's xs | B | C), and its backward writing a BF16 dx from fp32 dy parts. Against the CPU on the
// same values widened (dx rounded as the GPU's), and against the CUDA fp32 kernels on the widened
// x: the same kernels reading bf16, so y, dw, db and the rounded dx must be bit-identical.
// (Kernel widths above 6, which Mamba does not use, have no backward on CUDA.)
void check_conv_parts_bf16(int64_t B, int64_t T, const std::vector<int64_t>& widths, int64_t K, bool docs) {
  int64_t C = 0;
  for (int64_t n : widths) C += n;
  Tensor x = rounded(rand_cpu({B, T, C}, -1, 1)), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  const Tensor seq = docs ? random_documents(B, T) : Tensor();
  Tensor gx16 = up(x.to(DType::BF16)), gx32 = up(x), gw = up(w), gb = up(b), gseq = docs ? up(seq) : Tensor();
  const Tensor* sq = docs ? &seq : nullptr;
  const Tensor* gsq = docs ? &gseq : nullptr;
  std::vector<Tensor> y, gy, gy32, dy, gdy;
  for (int64_t n : widths) {
    y.push_back(Tensor::empty({B, T, n}));
    gy.push_back(poisoned({B, T, n}));
    gy32.push_back(poisoned({B, T, n}));
    dy.push_back(rand_cpu({B, T, n}, -1, 1));
    gdy.push_back(up(dy.back()));
  }
  auto fwd = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb, const Tensor* s, std::vector<Tensor>& o) {
    ops::causal_conv1d_parts(xx, ww, &bb, s, nullptr, true, {&o[0], &o[1], &o[2]});
  };
  auto t = run_pair([&] { fwd(x, w, b, sq, y); }, [&] { fwd(gx16, gw, gb, gsq, gy); });
  fwd(gx32, gw, gb, gsq, gy32);
  const std::string sh = std::to_string(B) + "x" + std::to_string(T) + "x" + std::to_string(C) + " K" +
                         std::to_string(K) + (docs ? " docs" : "") + " x bf16";
  double worst = 0, vs_f32 = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    worst = std::max(worst, nmse(gy[i], y[i]));
    vs_f32 = std::max(vs_f32, nmse(gy[i], down(gy32[i])));
  }
  record("causal_conv1d_parts", sh, "y", worst, kElementwise, t.gpu_ms, t.cpu_ms);
  record("causal_conv1d_parts", sh, "vs f32 x", vs_f32, kExact, NAN, NAN);

  const Tensor dw0 = rand_cpu({C, K}, -1, 1), db0 = rand_cpu({C}, -1, 1);
  Tensor dx = Tensor::empty({B, T, C}), dw = dw0.clone(), db = db0.clone();
  Tensor gdx = poisoned({B, T, C}, DType::BF16), gdw = up(dw0), gdb = up(db0);
  Tensor gdx32 = poisoned({B, T, C}), gdw32 = up(dw0), gdb32 = up(db0);
  auto bwd = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb, const Tensor* s, const std::vector<Tensor>& d,
                 Tensor& ddx, Tensor& ddw, Tensor& ddb) {
    ops::causal_conv1d_backward_parts(xx, ww, &bb, s, true, {&d[0], &d[1], &d[2]}, ddx, &ddw, &ddb);
  };
  auto tb = run_pair([&] { bwd(x, w, b, sq, dy, dx, dw, db); }, [&] { bwd(gx16, gw, gb, gsq, gdy, gdx, gdw, gdb); },
                     false);
  bwd(gx32, gw, gb, gsq, gdy, gdx32, gdw32, gdb32);
  record("causal_conv1d_bwd_parts", sh, "dx bf16", nmse_any(gdx, rounded(dx)), kBf16Elementwise, tb.gpu_ms, tb.cpu_ms);
  record("causal_conv1d_bwd_parts", sh, "dw+=", nmse(gdw, dw), kGemm, NAN, NAN);
  record("causal_conv1d_bwd_parts", sh, "db+=", nmse(gdb, db), kGemm, NAN, NAN);
  const double bwd_vs_f32 = std::max({nmse_any(gdx, rounded(down(gdx32))), nmse(gdw, down(gdw32)), nmse(gdb, down(gdb32))});
  record("causal_conv1d_bwd_parts", sh, "vs f32 x", bwd_vs_f32, kExact, NAN, NAN);
}

void check_throws(const std::string& what, const std::function<void()>& f) {
  bool threw = false;
  try {
    f();
  } catch (const Error&) {
    threw = true;
  }
  record("bf16 activations", what, "throws", threw ? 0.0 : INFINITY, kExact, NAN, NAN);
}

void check_invalid_dtypes() {
  const Tensor x16 = up(rand_cpu({4, 16}, -1, 1).to(DType::BF16)), w32 = up(rand_cpu({8, 16}, -1, 1));
  const Tensor w16 = up(rand_cpu({8, 16}, -1, 1).to(DType::BF16));
  Tensor y32 = poisoned({4, 8}), y16 = poisoned({4, 8}, DType::BF16), x32 = up(rand_cpu({4, 16}, -1, 1));
  check_throws("linear: bf16 x with f32 weights", [&] { ops::linear(x16, w32, nullptr, y32); });
  check_throws("linear: bf16 y with f32 weights", [&] { ops::linear(x32, w32, nullptr, y16); });
  Tensor dx16 = poisoned({4, 16}, DType::BF16);
  check_throws("linear_backward: accumulate into a bf16 dx",
               [&] { ops::linear_backward(y16, x16, w16, &dx16, nullptr, nullptr, true); });
  check_throws("linear_parts: bf16 x with f32 weights", [&] { ops::linear_parts(x16, w32, nullptr, {&y32}); });
  check_throws("linear_parts: a bf16 part with f32 weights", [&] { ops::linear_parts(x32, w32, nullptr, {&y16}); });
  // the conv reads a bf16 x only into fp32 parts, and its backward writes dx in x's dtype
  const Tensor cx16 = up(rand_cpu({1, 4, 16}, -1, 1).to(DType::BF16)), cw = up(rand_cpu({16, 4}, -1, 1));
  Tensor cy16 = poisoned({1, 4, 16}, DType::BF16), cy32 = poisoned({1, 4, 16}), cdx32 = poisoned({1, 4, 16});
  check_throws("causal_conv1d_parts: a bf16 part", [&] { ops::causal_conv1d_parts(cx16, cw, nullptr, nullptr, nullptr, true, {&cy16}); });
  check_throws("causal_conv1d: bf16 x (the streaming path)",
               [&] { ops::causal_conv1d(cx16, cw, nullptr, nullptr, nullptr, true, cy32); });
  check_throws("causal_conv1d_backward_parts: f32 dx for a bf16 x",
               [&] { ops::causal_conv1d_backward_parts(cx16, cw, nullptr, nullptr, true, {&cy32}, cdx32, nullptr, nullptr); });
  const Tensor g32 = up(rand_cpu({16}, 0.5f, 1.5f));
  Tensor n16 = poisoned({4, 16}, DType::BF16);
  check_throws("rms_norm: bf16 x", [&] { ops::rms_norm(x16, g32, 1e-5f, n16); });
  check_throws("rms_norm: bf16 y over its own f32 x", [&] {
    Tensor wide = up(rand_cpu({4, 16}, -1, 1));
    Tensor alias = Tensor::view_of(wide.raw(), {4, 16}, DType::BF16, nullptr, Device::CUDA);
    ops::rms_norm(wide, g32, 1e-5f, alias);
  });
  check_throws("gelu: bf16 x, f32 y", [&] { ops::gelu(x16, y32); });
  Tensor gdx32 = poisoned({4, 16}), gdz32 = poisoned({4, 16});
  check_throws("gated_rms_norm_backward: f32 dz for a bf16 x, z and dy",
               [&] { ops::gated_rms_norm_backward(x16, x16, g32, 8, 1e-5f, x16, gdx32, gdz32, nullptr); });
  check_throws("gated_rms_norm_backward: f32 dy for a bf16 x and z",
               [&] { ops::gated_rms_norm_backward(x16, x16, g32, 8, 1e-5f, x32, gdx32, dx16, nullptr); });
  check_throws("gated_rms_norm: f32 x with a bf16 z", [&] { ops::gated_rms_norm(x32, x16, g32, 8, 1e-5f, n16); });
  check_throws("gelu_backward: f32 dy for a bf16 x",
               [&] { ops::gelu_backward(x16, x32, dx16); });
  const Tensor c16 = rand_cpu({4, 16}, -1, 1).to(DType::BF16);
  Tensor c16y = Tensor::empty({4, 16}, DType::BF16);
  check_throws("gelu: bf16 on the CPU", [&] { ops::gelu(c16, c16y); });
  const Tensor cw16 = rand_cpu({8, 16}, -1, 1).to(DType::BF16);
  Tensor cy = Tensor::empty({4, 8});
  check_throws("linear: bf16 x on the CPU", [&] { ops::linear(c16, cw16, nullptr, cy); });
  const Tensor q16 = up(rand_cpu({1, 8, 2, 64}, -1, 1).to(DType::BF16)), k32 = up(rand_cpu({1, 8, 2, 64}, -1, 1));
  Tensor o16 = poisoned({1, 8, 2, 64}, DType::BF16), o32 = poisoned({1, 8, 2, 64});
  check_throws("attention: bf16 q with f32 keys", [&] { ops::attention(q16, k32, k32, nullptr, 0.125f, o16); });
  const Tensor k16 = up(rand_cpu({1, 8, 2, 64}, -1, 1).to(DType::BF16));
  check_throws("attention: bf16 q, f32 out", [&] { ops::attention(q16, k16, k16, nullptr, 0.125f, o32); });
}

void run_bf16_activations(bool quick) {
  const int64_t B = 4, T = quick ? 512 : 2048, d = 2048, F = 4 * d;  // 8192 rows unless quick
  // The MLP's products: W_up (x f32 -> up bf16), W_down (h bf16 -> y f32) and their backwards
  check_linear(B, T, d, F, DType::F32, DType::BF16);
  check_linear(B, T, F, d, DType::BF16, DType::F32);
  check_linear(B, T, d, F, DType::BF16, DType::BF16);
  // W_down written onto the residual stream (and attention's W_o, Mamba's out_proj)
  check_linear_onto(B, T, F, d, DType::BF16, false);
  check_linear_onto(B, T / 4, d, d, DType::F32, false);
  check_linear_onto(3, 37, 64, 48, DType::BF16, true);   // bias: the product, then the add
  check_linear_onto(3, 37, 40, 21, DType::BF16, false);  // off the tensor cores
  check_linear_onto(1, 2, 64, 48, DType::F32, false);    // the GEMV's rows
  check_linear_backward(B, T, F, d, DType::F32, DType::BF16, DType::BF16, false);  // W_down: dh bf16
  check_linear_backward(B, T, d, F, DType::BF16, DType::F32, DType::F32, false);   // W_up: dup bf16
  check_linear_backward(B, T / 4, d, F, DType::BF16, DType::F32, DType::F32, false, true);  // SwiGLU's W_up
  // Through fp32 copies: N or K off the tensor cores' multiple of 8, the GEMV's rows, db
  check_linear(3, 37, 40, 21, DType::BF16, DType::BF16);
  check_linear(3, 37, 21, 40, DType::BF16, DType::F32);
  check_linear(1, 2, 64, 48, DType::BF16, DType::BF16);
  check_linear(1, 1, 64, 48, DType::F32, DType::BF16);
  check_linear_backward(3, 37, 40, 21, DType::BF16, DType::BF16, DType::BF16, false);
  check_linear_backward(3, 37, 21, 40, DType::BF16, DType::BF16, DType::F32, false);
  check_linear_backward(3, 37, 64, 48, DType::BF16, DType::BF16, DType::BF16, true);
  check_linear_backward(3, 37, 21, 40, DType::BF16, DType::F32, DType::F32, false, true);
  // The activations at the MLP's hidden width, odd sizes (scalar tail), off alignment
  struct Act {
    const char* op;
    Unary f;
    UnaryBackward fb;
  };
  for (Act a : {Act{"relu_squared", ops::relu_squared, ops::relu_squared_backward},
                Act{"gelu", ops::gelu, ops::gelu_backward}, Act{"silu", ops::silu, ops::silu_backward}}) {
    check_activation(a.op, a.f, a.fb, {B, T, F}, false);
    check_activation(a.op, a.f, a.fb, {3, 37, 11}, false);
    check_activation(a.op, a.f, a.fb, {3, 37, 12}, true);
  }
  check_swiglu({B, T / 4, F});
  check_swiglu({3, 37, 11});
  // Attention: the training call (cuDNN where it loads), documents and the built-in kernels
  // (through fp32 copies), GQA 32/8 at head dim 128 and MHA at 64
  using ops::cuda::AttentionBackend;
  check_attention(2, quick ? 256 : 1024, 32, 8, 128, false, AttentionBackend::Auto);
  check_attention(2, 256, 8, 8, 64, false, AttentionBackend::Auto);
  check_attention(2, 200, 8, 2, 128, true, AttentionBackend::Auto);
  check_attention(2, 256, 8, 2, 128, false, AttentionBackend::Own);
  check_gated_norm(B * T, 4096, 512);  // Mamba-2 at d_model 2048: 8 groups of 512
  check_gated_norm(37, 1024, 128);
  check_gated_norm(37, 1024, 256);
  check_gated_norm(37, 300, 100);
  check_gated_norm(B * T, 4096, 512, DType::BF16);  // x, z bf16: the SSD's and in_proj's outputs in mixed precision
  check_gated_norm(37, 1024, 128, DType::BF16);
  check_gated_norm(37, 1024, 256, DType::BF16);
  check_gated_norm(37, 300, 100, DType::BF16);
  // The block norms' bf16 output and the Mamba in_proj that reads it (Mamba-2 at d_model 2048:
  // z 4096 | xBC 6144 | dt 64)
  for (bool layer : {false, true}) {
    check_norm(B * T, d, layer);
    check_norm(8192, d, layer);
    check_norm(37, 512, layer);
    check_norm(37, 1002, layer);
  }
  check_parts(B * T, d, {4096, 6144, 64});
  check_parts(37, 64, {40, 24, 16});
  check_parts(37, 60, {40, 20, 4});  // K off the multiple of 8: the fp32 GEMMs on a widened x
  // Mamba-2's conv input in bf16: in_proj writes it, the conv reads it, its gradient returns
  check_parts(B * T, d, {4096, 6144, 64}, true);
  check_parts(37, 64, {40, 20, 4}, true);  // a part off the multiple of 8: linear's fp32 copy
  check_parts(37, 64, {36, 24, 4}, true);  // a bf16 part of whole vectors at a column off them
  check_parts(37, 60, {40, 24, 4}, true);  // K off the multiple of 8
  check_conv_parts_bf16(B, T, {4096, 1024, 1024}, 4, false);
  check_conv_parts_bf16(2, 300, {256, 64, 64}, 4, true);
  check_conv_parts_bf16(3, 77, {33, 7, 24}, 3, true);
  check_rope(2, 77, 8, 128, 128, 0);
  check_rope(3, 37, 6, 80, 40, 12345);
  check_invalid_dtypes();
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("bf16_activations", run_bf16_activations);

}  // namespace conformance
