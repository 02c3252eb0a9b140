// Conformance cases for the dense training ops (group "dense_backward"): linear_backward (F32
// and BF16 weights), embedding_backward, the elementwise backwards, softplus_dt_backward,
// cross_entropy, adamw_update, squared_norm and nonfinite_flag, at the training shapes of the GPU
// training issue (d_model 2048, vocabulary 50304, B*T = 8192 rows; linear also at the 8B shapes
// d_model 4096 / FFN 16384) plus small odd shapes (tails of vector loops, unaligned views, null
// optional outputs). Accumulated gradients (dw, db, dtable, ddt_bias, the neg_exp dx) start from
// the same random values on both sides, so an assignment where "+=" is due fails; every assigned
// output starts as NaN on the GPU. Ops whose contract promises bit-identical results run twice
// on the GPU ("repeat" rows, exact).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "harness.h"
#include "ops/deferred_zero.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

// dlogits of cross_entropy: grad_scale * exp(l - lse_f) with lse_f the fp32 rounding of the row's
// log-sum-exp. The two backends' lse (double sum of exp_fast terms vs a tree of fp32 partials of
// exp2f terms) agree to ~1e-7 absolute, so lse_f differs by one ulp (2e-6 at |lse| ~ 18 here) on
// a few % of rows; such a row's softmax then moves by 2e-6 relative: nmse ~1e-13 at most (expf vs
// exp_fast adds ~1e-14). 1e-11 keeps ~100x headroom; a missing -grad_scale at one target among
// thousands of rows, or one wrong row statistic, gives > 1e-5.
constexpr double kSoftmaxGrad = 1e-11;
// linear_backward with BF16 weights on the tensor cores, against the CPU's fp32 GEMM of the same
// bf16-rounded operands: the products are exact on both sides, only the accumulation differs. In
// round-to-nearest fp32 that is ~1e-12 (as kGemm's fp32 rows); tensor cores have been measured
// (Fasi et al. 2021, A100) to align and truncate inside each MMA step, which over k up to 50304
// terms could bias a sum by ~1e-4 relative (nmse ~1e-8). 1e-7 admits that; a wrong layout,
// transpose, leading dimension or a dw assigned instead of accumulated gives > 1e-2.
constexpr double kGemmBf16 = 1e-7;
// squared_norm is a scalar: its "nmse" is the squared relative error. Both sides sum exact double
// products in double, in different orders: relative error ~1e-16 sqrt(log n), far below 1e-10
// (nmse 1e-20); one dropped block of 16K elements out of 1e8 is ~1e-4.
constexpr double kSumSquares = 1e-20;

Tensor rounded_bf16(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }

// ||a - b||^2 / ||b||^2 for two CUDA F32 tensors (0 only when every element is equal).
double nmse_gpu(const Tensor& a, const Tensor& b) { return nmse(a, down(b)); }

// An F32 CUDA tensor whose data starts 4 bytes past a 16-byte boundary (vector paths off).
Tensor unaligned_copy(const Tensor& cpu) {
  Tensor big = empty_cuda({cpu.numel() + 1});
  Tensor view = big.slice0(1, cpu.numel() + 1).reshape(cpu.shape());
  copy_tensor(cpu, view);
  return view;
}
Tensor unaligned_poisoned(const Shape& s) {
  Tensor big = poisoned({shape_numel(s) + 1});
  return big.slice0(1, shape_numel(s) + 1).reshape(s);
}

// ---- linear_backward ----------------------------------------------------------------------------

struct LinearGrads {
  bool dx = true, dw = true, db = true;
  bool accumulate_dx = false;  // dx starts from random values on both sides and is added to
};

// dy is scaled by 1/sqrt(M) so that dw (a sum over M rows) and db land at O(0.3-0.5), the size of
// their random starting values: an assignment instead of "+=" moves them by O(1).
void check_linear_backward(int64_t B, int64_t T, int64_t K, int64_t N, bool bf16, LinearGrads want = {},
                           bool repeat = false) {
  const int64_t M = B * T;
  const float a = 1.0f / std::sqrt(float(std::max<int64_t>(M, 1)));
  Tensor x = rand_cpu({B, T, K}, -1, 1), w = rand_cpu({N, K}, -0.03f, 0.03f), dy = rand_cpu({B, T, N}, -a, a);
  Tensor dw0 = rand_cpu({N, K}, -0.5f, 0.5f), db0 = rand_cpu({N}, -0.5f, 0.5f);
  const Tensor dx0 = rand_cpu({B, T, K}, -0.5f, 0.5f);
  Tensor dx = want.accumulate_dx ? dx0.clone() : Tensor::empty({B, T, K}), dw = dw0.clone(), db = db0.clone();
  // BF16 weights: the CPU gets w, x and dy rounded to bf16 (what the tensor cores multiply), so
  // only the summation differs. db sums the unrounded dy on both sides.
  const Tensor xr = bf16 ? rounded_bf16(x) : x, wr = bf16 ? rounded_bf16(w) : w, dyr = bf16 ? rounded_bf16(dy) : dy;
  Tensor gx = up(x), gw = bf16 ? up(w.to(DType::BF16)) : up(w), gdy = up(dy);
  auto start_dx = [&] { return want.accumulate_dx ? up(dx0) : poisoned({B, T, K}); };
  Tensor gdx = start_dx(), gdw = up(dw0), gdb = up(db0);
  auto cpu = [&] {
    ops::linear_backward(dyr, xr, wr, want.dx ? &dx : nullptr, want.dw ? &dw : nullptr, nullptr, want.accumulate_dx);
    if (want.db) ops::linear_backward(dy, x, w, nullptr, nullptr, &db);
  };
  auto gpu_into = [&](Tensor& ddx, Tensor& ddw, Tensor& ddb) {
    ops::linear_backward(gdy, gx, gw, want.dx ? &ddx : nullptr, want.dw ? &ddw : nullptr, want.db ? &ddb : nullptr,
                         want.accumulate_dx);
  };
  auto t = run_pair(cpu, [&] { gpu_into(gdx, gdw, gdb); }, false);
  Tensor tdx = start_dx(), tdw = up(dw0), tdb = up(db0);  // timing accumulates into copies
  const double g_ms = time_ms([&] { gpu_into(tdx, tdw, tdb); });
  const std::string sh = shape_str(dy.shape()) + "x" + shape_str(w.shape()) + (bf16 ? " bf16" : " f32");
  // bf16 weights with K % 8 == 0 run on the tensor cores; K % 8 != 0 takes the exact fp32 GEMMs
  const double limit = bf16 && K % 8 == 0 ? kGemmBf16 : kGemm;
  if (want.dx) record("linear_backward", sh, want.accumulate_dx ? "dx+=" : "dx", nmse(gdx, dx), limit, g_ms, t.cpu_ms);
  if (want.dw) record("linear_backward", sh, "dw+=", nmse(gdw, dw), limit, want.dx ? NAN : g_ms, NAN);
  // column sums in double on both sides, rounded once: equal up to the order of double additions
  if (want.db) record("linear_backward", sh, "db+=", nmse(gdb, db), kNorm, want.dx || want.dw ? NAN : g_ms, NAN);
  if (repeat) {  // the same call again from the same starting gradients: bit-identical
    Tensor rdx = start_dx(), rdw = up(dw0), rdb = up(db0);
    gpu_into(rdx, rdw, rdb);
    double diff = 0.0;
    if (want.dx) diff += nmse_gpu(rdx, gdx);
    if (want.dw) diff += nmse_gpu(rdw, gdw);
    if (want.db) diff += nmse_gpu(rdb, gdb);
    record("linear_backward", sh, "repeat", diff, kExact, NAN, NAN);
  }
}

// A dw whose zero fill was deferred (ops/deferred_zero.h, what Model::zero_grads does): the GPU's
// dw starts as NaN and is marked, so the GEMM must write it with beta 0 (a read of it gives NaN);
// the CPU's starts at real zeros. x_bf16: x and dy in bf16 (mixed precision's
// linear_backward_bf16_activations path); else fp32 x and dy (the blocks path: tensor cores with
// bf16 weights, cuBLAS sgemm with fp32 ones).
void check_linear_backward_deferred_dw(int64_t M, int64_t K, int64_t N, bool bf16_w, bool x_bf16) {
  const float a = 1.0f / std::sqrt(float(M));
  Tensor x = rand_cpu({M, K}, -1, 1), w = rand_cpu({N, K}, -0.03f, 0.03f), dy = rand_cpu({M, N}, -a, a);
  if (x_bf16) {
    x = rounded_bf16(x);
    dy = rounded_bf16(dy);
  }
  const Tensor xr = bf16_w ? rounded_bf16(x) : x, wr = bf16_w ? rounded_bf16(w) : w, dyr = bf16_w ? rounded_bf16(dy) : dy;
  Tensor dw = Tensor::zeros({N, K});
  ops::linear_backward(dyr, xr, wr, nullptr, &dw, nullptr);
  Tensor gx = x_bf16 ? up(x.to(DType::BF16)) : up(x), gdy = x_bf16 ? up(dy.to(DType::BF16)) : up(dy);
  Tensor gw = bf16_w ? up(w.to(DType::BF16)) : up(w), gdw = poisoned({N, K});
  ops::defer_zero_fill(gdw);
  ops::linear_backward(gdy, gx, gw, nullptr, &gdw, nullptr);
  const bool marked_left = ops::any_deferred_zero();
  ops::settle_all_deferred_zeros();
  const std::string sh = "[" + std::to_string(M) + ", " + std::to_string(N) + "]x[" + std::to_string(N) + ", " +
                         std::to_string(K) + "]" + (bf16_w ? " bf16" : " f32") + (x_bf16 ? " x,dy bf16" : "");
  const double limit = bf16_w && K % 8 == 0 ? kGemmBf16 : kGemm;
  record("linear_backward", sh, "dw deferred 0", marked_left ? INFINITY : nmse(gdw, dw), limit, NAN, NAN);
}

// ---- embedding_backward -------------------------------------------------------------------------

// Ids drawn from a Zipf law (p(rank k) ~ 1 / (k + 1)^s) over a random permutation of the table,
// as token frequencies are: a few ids repeat hundreds of times (runs across many chunks of the
// sorted list), most appear once or never.
Tensor zipf_ids(int64_t B, int64_t T, int64_t V, double s) {
  std::vector<double> weight(static_cast<size_t>(V));
  for (int64_t k = 0; k < V; ++k) weight[size_t(k)] = 1.0 / std::pow(double(k + 1), s);
  std::discrete_distribution<int64_t> rank(weight.begin(), weight.end());
  std::vector<int32_t> perm(static_cast<size_t>(V));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  Tensor ids = Tensor::empty({B, T}, DType::I32);
  for (int64_t i = 0; i < B * T; ++i) ids.data<int32_t>()[i] = perm[size_t(rank(rng))];
  return ids;
}

// dtable += scatter of dy: the same fp32 values summed in token order, grouped differently (runs
// cut into chunks of 8 sorted entries): nmse ~1e-14 even for an id repeated ~700 times, while one
// lost or doubled token row moves the table by > 1e-6.
void check_embedding_backward(int64_t V, int64_t D, const Tensor& ids, const char* tag) {
  const int64_t B = ids.dim(0), T = ids.dim(1);
  Tensor dy = rand_cpu({B, T, D}, -1, 1), table0 = rand_cpu({V, D}, -1, 1), dtable = table0.clone();
  Tensor gi = up(ids), gdy = up(dy), gdt = up(table0);
  auto t = run_pair([&] { ops::embedding_backward(ids, dy, dtable); }, [&] { ops::embedding_backward(gi, gdy, gdt); },
                    false);
  Tensor tdt = up(table0);
  const double g_ms = time_ms([&] { ops::embedding_backward(gi, gdy, tdt); });
  const std::string sh = "[" + std::to_string(V) + ", " + std::to_string(D) + "] ids" + shape_str(ids.shape()) + " " + tag;
  record("embedding_backward", sh, "dtable+=", nmse(gdt, dtable), kElementwise, g_ms, t.cpu_ms);
  Tensor gdt2 = up(table0);
  ops::embedding_backward(gi, gdy, gdt2);
  record("embedding_backward", sh, "repeat", nmse_gpu(gdt2, gdt), kExact, NAN, NAN);
}

void check_embedding_backward_bad_id(int64_t V, int64_t D) {
  Tensor ids = zipf_ids(2, 33, V, 1.0);
  ids.data<int32_t>()[40] = int32_t(V);
  Tensor gi = up(ids), gdy = up(rand_cpu({2, 33, D}, -1, 1)), gdt = up(rand_cpu({V, D}, -1, 1));
  bool threw = false;
  try {
    ops::embedding_backward(gi, gdy, gdt);
  } catch (const Error&) {
    threw = true;
  }
  record("embedding_backward", "id = V at one position", "throws", threw ? 0.0 : INFINITY, kExact, NAN, NAN);
}

// ---- elementwise backwards ----------------------------------------------------------------------

void check_pointwise_backward(const Shape& s, bool time_it) {
  Tensor x = rand_cpu(s, -8, 8), up_ = rand_cpu(s, -2, 2), dy = rand_cpu(s, -1, 1);
  Tensor dx = Tensor::empty(s), dx2 = Tensor::empty(s);
  Tensor gx = up(x), gu = up(up_), gdy = up(dy);
  const std::string sh = shape_str(s);
  struct Un {
    const char* name;
    void (*f)(const Tensor&, const Tensor&, Tensor&);
    double limit;
  };
  // relu_squared's (2 x) g is the same two roundings on both sides: exact.
  for (Un u : {Un{"silu_backward", ops::silu_backward, kElementwise},
               Un{"relu_squared_backward", ops::relu_squared_backward, kExact},
               Un{"gelu_backward", ops::gelu_backward, kElementwise}}) {
    Tensor gdx = poisoned(s);
    auto t = run_pair([&] { u.f(x, dy, dx); }, [&] { u.f(gx, gdy, gdx); }, time_it);
    record(u.name, sh, "dx", nmse(gdx, dx), u.limit, t.gpu_ms, t.cpu_ms);
    Tensor gin = up(dy);  // dx aliasing dy
    u.f(gx, gin, gin);
    record(u.name, sh, "inplace", nmse(gin, dx), u.limit, NAN, NAN);
  }
  Tensor gdg = poisoned(s), gdu = poisoned(s);
  auto t = run_pair([&] { ops::swiglu_backward(x, up_, dy, dx, dx2); },
                    [&] { ops::swiglu_backward(gx, gu, gdy, gdg, gdu); }, time_it);
  record("swiglu_backward", sh, "dgate", nmse(gdg, dx), kElementwise, t.gpu_ms, t.cpu_ms);
  record("swiglu_backward", sh, "dup", nmse(gdu, dx2), kElementwise, NAN, NAN);
  Tensor gin = up(dy);  // dgate aliasing dy
  Tensor gdu2 = poisoned(s);
  ops::swiglu_backward(gx, gu, gin, gin, gdu2);
  record("swiglu_backward", sh, "inplace", nmse(gin, dx) + nmse(gdu2, dx2), kElementwise, NAN, NAN);
}

// The scalar path: tensors 4 bytes off a 16-byte boundary.
void check_pointwise_unaligned(const Shape& s) {
  Tensor x = rand_cpu(s, -8, 8), dy = rand_cpu(s, -1, 1), dx = Tensor::empty(s);
  Tensor gx = unaligned_copy(x), gdy = unaligned_copy(dy), gdx = unaligned_poisoned(s);
  ops::silu_backward(x, dy, dx);
  ops::silu_backward(gx, gdy, gdx);
  record("silu_backward", shape_str(s) + " unaligned", "dx", nmse(gdx, dx), kElementwise, NAN, NAN);
}

// neg_exp_backward: dx += dy * y (y = -exp(A_log)), dx starting from random values.
void check_neg_exp_backward(const Shape& s) {
  Tensor alog = rand_cpu(s, -3, 3), y = Tensor::empty(s), dy = rand_cpu(s, -1, 1), dx0 = rand_cpu(s, -1, 1);
  ops::neg_exp(alog, y);
  Tensor dx = dx0.clone(), gy = up(y), gdy = up(dy), gdx = up(dx0);
  auto t = run_pair([&] { ops::neg_exp_backward(y, dy, dx); }, [&] { ops::neg_exp_backward(gy, gdy, gdx); }, false);
  record("neg_exp_backward", shape_str(s), "dx+=", nmse(gdx, dx), kElementwise, NAN, t.cpu_ms);
}

// softplus_dt_backward with the clamp active at both ends: dt + bias spans (-18, 24), so softplus
// falls below dt_min = 1e-4 at the bottom and exceeds dt_max = 22 at the top. dt_max sits above
// softplus' linear threshold (20), where both backends compare the same exact value, and at
// dt_min the gradient is ~1e-4 * dy: a mask that flips on a 1-ulp difference of log1p(exp) moves
// nmse by < 1e-13.
void check_softplus_backward(int64_t B, int64_t T, int64_t H, bool bias_grad, bool inplace) {
  const float dt_min = 1e-4f, dt_max = 22.0f;
  Tensor dt = rand_cpu({B, T, H}, -12, 24), bias = rand_cpu({H}, -6, 0), dy = rand_cpu({B, T, H}, -1, 1);
  Tensor db0 = rand_cpu({H}, -1, 1), ddt = Tensor::empty({B, T, H}), db = db0.clone();
  Tensor gdt = up(dt), gb = up(bias), gdy = up(dy), gdb = up(db0);
  Tensor gddt = inplace ? up(dy) : poisoned({B, T, H});
  Tensor& gin = inplace ? gddt : gdy;
  auto t = run_pair([&] { ops::softplus_dt_backward(dt, bias, dt_min, dt_max, dy, ddt, bias_grad ? &db : nullptr); },
                    [&] { ops::softplus_dt_backward(gdt, gb, dt_min, dt_max, gin, gddt, bias_grad ? &gdb : nullptr); },
                    false);
  const std::string sh = shape_str(dt.shape()) + (inplace ? " inplace" : "");
  record("softplus_dt_backward", sh, "ddt", nmse(gddt, ddt), kElementwise, NAN, t.cpu_ms);
  if (!bias_grad) return;
  // double column sums on both sides of ddt values that differ by a few ulp
  record("softplus_dt_backward", sh, "dbias+=", nmse(gdb, db), kNorm, NAN, NAN);
  Tensor gdb2 = up(db0), gddt2 = poisoned({B, T, H});
  ops::softplus_dt_backward(gdt, gb, dt_min, dt_max, gdy, gddt2, &gdb2);
  if (!inplace) record("softplus_dt_backward", sh, "repeat", nmse_gpu(gdb2, gdb) + nmse_gpu(gddt2, gddt), kExact, NAN, NAN);
}

// ---- cross_entropy ------------------------------------------------------------------------------

Tensor random_targets(int64_t N, int64_t V, double ignore_frac) {
  Tensor tg = Tensor::empty({N}, DType::I32);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
  std::bernoulli_distribution ignore(ignore_frac);
  for (int64_t i = 0; i < N; ++i) tg.data<int32_t>()[i] = ignore(rng) ? -1 : pick(rng);
  return tg;
}

enum class GradOut { kNone, kSeparate, kInPlace, kUnaligned };

// Logits U(-8, 8) (lse ~ 15 at V = 50304), ~5% of rows ignored, grad_scale 1/n_valid as the
// training step passes it.
void check_cross_entropy(int64_t N, int64_t V, GradOut mode, bool time_it) {
  Tensor logits = rand_cpu({N, V}, -8, 8), targets = random_targets(N, V, 0.05);
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) valid += targets.data<int32_t>()[i] != -1;
  const float gs = valid > 0 ? 1.0f / float(valid) : 1.0f;
  const bool with_grad = mode != GradOut::kNone;
  Tensor loss = Tensor::empty({N});
  Tensor grad = mode == GradOut::kInPlace ? logits.clone() : (with_grad ? Tensor::empty({N, V}) : Tensor());
  Tensor gl = up(logits), gt = up(targets), gloss = poisoned({N});
  Tensor gg;
  if (mode == GradOut::kSeparate) gg = poisoned({N, V});
  if (mode == GradOut::kUnaligned) gg = unaligned_poisoned({N, V});
  if (mode == GradOut::kInPlace) gg = gl;
  auto cpu = [&] {
    if (mode == GradOut::kInPlace) ops::cross_entropy(grad, targets, gs, loss, &grad);
    else ops::cross_entropy(logits, targets, gs, loss, with_grad ? &grad : nullptr);
  };
  auto t = run_pair(cpu, [&] { ops::cross_entropy(gl, gt, gs, gloss, with_grad ? &gg : nullptr); },
                    time_it && mode != GradOut::kInPlace);
  const char* tag[] = {" loss only", "", " inplace", " dlogits unaligned"};
  const std::string sh = shape_str(logits.shape()) + tag[int(mode)];
  // per-row log-sum-exp: the fp32 losses agree to an ulp (see loss.cu)
  record("cross_entropy", sh, "loss", nmse(gloss, loss), kElementwise, t.gpu_ms, t.cpu_ms);
  if (with_grad) record("cross_entropy", sh, "dlogits", nmse(gg, grad), kSoftmaxGrad, NAN, NAN);
}

// dlogits in BF16 (mixed precision's head): each value must be exactly the round-to-nearest of
// the GPU's own fp32 gradient (the same kernel, so the same fp32 value), and the loss the same.
// unaligned: dlogits rows start 2 bytes off an 8-byte boundary (the scalar store path).
void check_cross_entropy_bf16(int64_t N, int64_t V, bool unaligned) {
  Tensor logits = rand_cpu({N, V}, -8, 8), targets = random_targets(N, V, 0.05);
  Tensor gl = up(logits), gt = up(targets), loss32 = poisoned({N}), loss16 = poisoned({N});
  Tensor g32 = poisoned({N, V});
  Tensor big = poisoned({N * V + 1}, DType::BF16);
  Tensor g16 = unaligned ? big.slice0(1, N * V + 1).reshape({N, V}) : big.slice0(0, N * V).reshape({N, V});
  ops::cross_entropy(gl, gt, 0.01f, loss32, &g32);
  ops::cross_entropy(gl, gt, 0.01f, loss16, &g16);
  const Tensor want = down(g32).to(DType::BF16).to(DType::F32), got = down(g16).to(DType::F32);
  const std::string sh = shape_str(logits.shape()) + " dlogits bf16" + (unaligned ? " unaligned" : "");
  record("cross_entropy", sh, "= bf16(f32 dlogits)", nmse(got, want), kExact, NAN, NAN);
  record("cross_entropy", sh, "loss", nmse(loss16, down(loss32)), kExact, NAN, NAN);
}

void check_cross_entropy_bad_target(int32_t bad) {
  const int64_t N = 16, V = 1000;
  Tensor logits = rand_cpu({N, V}, -8, 8), targets = random_targets(N, V, 0.2);
  targets.data<int32_t>()[11] = bad;
  Tensor gl = up(logits), gt = up(targets), gloss = poisoned({N});
  bool threw = false;
  try {
    ops::cross_entropy(gl, gt, 1.0f, gloss, &gl);
  } catch (const Error&) {
    threw = true;
  }
  // and nothing was written: the logits (the in-place gradient buffer) are intact
  const double intact = threw ? nmse(gl, logits) : INFINITY;
  record("cross_entropy", "target " + std::to_string(bad) + " of " + std::to_string(V), "throws",
         threw ? intact : INFINITY, kExact, NAN, NAN);
}

// ---- optimizer ----------------------------------------------------------------------------------

enum class CopyOut { kNone, kSelf, kBF16, kF32 };

// One AdamW step at step 10 (bias corrections 0.65 and 0.40), lr 3e-4, clipping factor 0.7;
// master, m, v, grad at the sizes training sees. The same fp32 formula on both sides (FMA
// contraction may differ): master, m and v within a few ulp. A BF16 copy must be exactly the
// round-to-nearest-even of the GPU's own new master.
void check_adamw(const Shape& s, bool decay, CopyOut copy, bool unaligned = false) {
  Tensor w0 = rand_cpu(s, -0.5f, 0.5f), g = rand_cpu(s, -1e-2f, 1e-2f);
  Tensor m0 = rand_cpu(s, -1e-2f, 1e-2f), v0 = rand_cpu(s, 0.0f, 1e-4f);
  ops::AdamWStep st;
  const double lr = 3e-4, wd = 0.1, t = 10;
  st.step_size = float(lr / (1.0 - std::pow(0.9, t)));
  st.inv_sqrt_bias2 = float(1.0 / std::sqrt(1.0 - std::pow(0.95, t)));
  st.shrink = decay ? float(1.0 - lr * wd) : 1.0f;
  st.grad_scale = 0.7f;
  Tensor w = w0.clone(), m = m0.clone(), v = v0.clone();
  auto mk = [&](const Tensor& c) { return unaligned ? unaligned_copy(c) : up(c); };
  Tensor gw = mk(w0), gg = mk(g), gm = mk(m0), gv = mk(v0);
  Tensor gcopy;
  if (copy == CopyOut::kBF16) gcopy = poisoned(s, DType::BF16);
  if (copy == CopyOut::kF32) gcopy = poisoned(s);
  Tensor* gc = copy == CopyOut::kSelf ? &gw : (gcopy.defined() ? &gcopy : nullptr);
  auto tm = run_pair([&] { ops::adamw_update(w, copy == CopyOut::kSelf ? &w : nullptr, g, m, v, st); },
                     [&] { ops::adamw_update(gw, gc, gg, gm, gv, st); }, false);
  Tensor tw = up(w0), tg2 = up(g), tm2 = up(m0), tv = up(v0), tcopy;
  if (copy == CopyOut::kBF16) tcopy = poisoned(s, DType::BF16);
  if (copy == CopyOut::kF32) tcopy = poisoned(s);
  Tensor* tc = copy == CopyOut::kSelf ? &tw : (tcopy.defined() ? &tcopy : nullptr);
  const double g_ms = time_ms([&] { ops::adamw_update(tw, tc, tg2, tm2, tv, st); });
  const char* ctag[] = {"", " copy=self", " copy=bf16", " copy=f32"};
  const std::string sh = shape_str(s) + (decay ? " wd" : " no wd") + ctag[int(copy)] + (unaligned ? " unaligned" : "");
  record("adamw_update", sh, "master", nmse(gw, w), kElementwise, g_ms, tm.cpu_ms);
  record("adamw_update", sh, "m", nmse(gm, m), kElementwise, NAN, NAN);
  record("adamw_update", sh, "v", nmse(gv, v), kElementwise, NAN, NAN);
  if (copy == CopyOut::kBF16) {
    const Tensor want = rounded_bf16(down(gw)), got = down(gcopy).to(DType::F32);
    record("adamw_update", sh, "copy", nmse(up(got), want), kExact, NAN, NAN);
  }
  if (copy == CopyOut::kF32) record("adamw_update", sh, "copy", nmse_gpu(gcopy, gw), kExact, NAN, NAN);
}

void check_squared_norm(const Shape& s, bool unaligned = false) {
  Tensor x = rand_cpu(s, -1, 1);
  Tensor out = Tensor::empty({1}, DType::F64), gx = unaligned ? unaligned_copy(x) : up(x);
  Tensor gout = poisoned({1}, DType::F64);
  auto t = run_pair([&] { ops::squared_norm(x, out); }, [&] { ops::squared_norm(gx, gout); });
  const double c = out.data<double>()[0], g = down(gout).data<double>()[0];
  const double rel2 = std::isfinite(g) ? (g - c) * (g - c) / (c * c) : NAN;
  const std::string sh = shape_str(s) + (unaligned ? " unaligned" : "");
  record("squared_norm", sh, "sum x^2", rel2, kSumSquares, t.gpu_ms, t.cpu_ms);
  Tensor gout2 = poisoned({1}, DType::F64);
  ops::squared_norm(gx, gout2);
  const double g2 = down(gout2).data<double>()[0];
  record("squared_norm", sh, "repeat", std::memcmp(&g, &g2, sizeof(double)) == 0 ? 0.0 : INFINITY, kExact, NAN, NAN);
}

// fill_each, squared_norm_each and adamw_update_each against the one-tensor ops, both on the GPU:
// 40 parameters (two launch groups of up to 32) of assorted sizes (empty, tails of 1-3, several
// blocks, unaligned views), copy kinds and decay. Each result must be bit-identical.
void check_optimizer_lists() {
  std::mt19937_64 pick(17);
  const int64_t sizes[] = {0, 1, 3, 5, 512, 1001, 4096, 4097, 65536 + 3, 1 << 20, 3 * (1 << 20) + 1};
  std::vector<Shape> shapes;
  for (int i = 0; i < 40; ++i) shapes.push_back({sizes[pick() % std::size(sizes)]});
  ops::AdamWStep st;
  st.step_size = 3e-4f / (1.0f - 0.3487f);
  st.inv_sqrt_bias2 = 1.0f / std::sqrt(1.0f - 0.5987f);
  st.grad_scale = 0.7f;
  struct Side {
    std::vector<Tensor> w, g, m, v, copy;
  } one, each;
  std::vector<int> copy_kind;  // 0 none, 1 bf16, 2 f32
  std::vector<bool> unaligned;
  for (const Shape& s : shapes) {
    copy_kind.push_back(int(pick() % 3));
    unaligned.push_back(pick() % 4 == 0);
    const Tensor w0 = rand_cpu(s, -0.5f, 0.5f), g = rand_cpu(s, -1e-2f, 1e-2f), m0 = rand_cpu(s, -1e-2f, 1e-2f),
                 v0 = rand_cpu(s, 0.0f, 1e-4f);
    for (Side* side : {&one, &each}) {
      auto mk = [&](const Tensor& c) { return unaligned.back() ? unaligned_copy(c) : up(c); };
      side->w.push_back(mk(w0));
      side->g.push_back(mk(g));
      side->m.push_back(mk(m0));
      side->v.push_back(mk(v0));
      side->copy.push_back(copy_kind.back() == 1 ? poisoned(s, DType::BF16) : copy_kind.back() == 2 ? poisoned(s) : Tensor{});
    }
  }
  const size_t n = shapes.size();
  // squared norms of the gradients
  Tensor norms_one = poisoned({int64_t(n)}, DType::F64), norms_each = poisoned({int64_t(n)}, DType::F64);
  std::vector<const Tensor*> gs;
  for (size_t i = 0; i < n; ++i) {
    Tensor o = norms_one.slice0(int64_t(i), int64_t(i) + 1);
    ops::squared_norm(one.g[i], o);
    gs.push_back(&each.g[i]);
  }
  ops::squared_norm_each(gs, norms_each);
  const Tensor a = down(norms_one), b = down(norms_each);
  record("squared_norm_each", std::to_string(n) + " tensors", "== squared_norm",
         std::memcmp(a.raw(), b.raw(), n * sizeof(double)) == 0 ? 0.0 : INFINITY, kExact, NAN, NAN);
  // AdamW steps
  std::vector<ops::AdamWSlot> slots;
  for (size_t i = 0; i < n; ++i) {
    const float shrink = i % 3 == 0 ? 1.0f : float(1.0 - 3e-4 * 0.1);
    st.shrink = shrink;
    ops::adamw_update(one.w[i], one.copy[i].defined() ? &one.copy[i] : nullptr, one.g[i], one.m[i], one.v[i], st);
    slots.push_back({&each.w[i], each.copy[i].defined() ? &each.copy[i] : nullptr, &each.g[i], &each.m[i], &each.v[i], shrink});
  }
  ops::adamw_update_each(slots, st);
  auto same = [](const Tensor& x, const Tensor& y) {
    if (!x.defined()) return true;
    const Tensor hx = down(x), hy = down(y);
    return std::memcmp(hx.raw(), hy.raw(), hx.nbytes()) == 0;
  };
  bool all_same = true;
  for (size_t i = 0; i < n; ++i)
    all_same = all_same && same(one.w[i], each.w[i]) && same(one.m[i], each.m[i]) && same(one.v[i], each.v[i]) &&
               same(one.copy[i], each.copy[i]);
  record("adamw_update_each", std::to_string(n) + " tensors", "== adamw_update", all_same ? 0.0 : INFINITY, kExact, NAN, NAN);
  // fill the masters
  std::vector<Tensor*> ws;
  for (size_t i = 0; i < n; ++i) {
    ops::fill(one.w[i], 0.25f);
    ws.push_back(&each.w[i]);
  }
  ops::fill_each(ws, 0.25f);
  all_same = true;
  for (size_t i = 0; i < n; ++i) all_same = all_same && same(one.w[i], each.w[i]);
  record("fill_each", std::to_string(n) + " tensors", "== fill", all_same ? 0.0 : INFINITY, kExact, NAN, NAN);
}

// A clean tensor, then one NaN / +inf / -inf at a random place or in the scalar tail.
void check_nonfinite(const Shape& s) {
  Tensor x = rand_cpu(s, -1, 1);
  const int64_t n = x.numel();
  auto compare = [&](const Tensor& xc, const std::string& what) {
    Tensor out = Tensor::empty({1}, DType::I32), gout = poisoned({1}, DType::I32), gx = up(xc);
    ops::nonfinite_flag(xc, out);
    ops::nonfinite_flag(gx, gout);
    const int32_t c = out.data<int32_t>()[0], g = down(gout).data<int32_t>()[0];
    record("nonfinite_flag", shape_str(s) + " " + what, "flag", g == c ? 0.0 : INFINITY, kExact, NAN, NAN);
  };
  compare(x, "finite");
  std::uniform_int_distribution<int64_t> where(0, n - 1);
  Tensor a = x.clone();
  a.f32()[where(rng)] = NAN;
  compare(a, "NaN");
  Tensor b = x.clone();
  b.f32()[n - 1] = INFINITY;
  compare(b, "+inf last");
  Tensor c = x.clone();
  c.f32()[where(rng)] = -INFINITY;
  compare(c, "-inf");
}

void run_dense_backward(bool quick) {
  // Training shapes: d_model 2048, vocabulary 50304, B*T = 8192 (quick: 2 x 77 rows).
  const int64_t B = quick ? 2 : 4, T = quick ? 77 : 2048, d = 2048, V = 50304;
  const int64_t B8 = 2, T8 = quick ? 77 : 200, d8 = 4096, ffn8 = 16384;  // the 8B layer shapes

  // linear_backward: the LM head (bf16 weights; training computes it on row chunks, here all
  // rows at once), a d_model projection in exact fp32, the 8B FFN both ways and both precisions.
  check_linear_backward(B, T, d, V, true, {true, true, false}, true);
  check_linear_backward(B, T, d, d, false);
  check_linear_backward(B8, T8, d8, ffn8, true, {}, true);
  check_linear_backward(B8, T8, ffn8, d8, true);
  check_linear_backward(B8, T8, d8, ffn8, false);
  // odd shapes: M = 111 rows, N = 21 (dy rounded into padded rows), K = 40; K = 37 (bf16 weights
  // through the exact fp32 fallback); null outputs; N = 1
  check_linear_backward(3, 37, 40, 21, true, {}, true);
  check_linear_backward(3, 37, 37, 21, true, {}, true);
  check_linear_backward(3, 37, 37, 21, false, {}, true);
  check_linear_backward(3, 37, 40, 21, true, {false, true, true});
  // accumulate_dx (x's gradient from several products, as attention's q / k / v): dx +=
  check_linear_backward(B, T, d, d, true, {true, true, true, true}, true);
  check_linear_backward(3, 37, 40, 21, true, {true, true, false, true}, true);
  check_linear_backward(3, 37, 37, 21, true, {true, false, false, true});
  check_linear_backward(3, 37, 37, 21, false, {true, true, true, true});
  check_linear_backward(3, 37, 40, 21, true, {true, false, false});
  check_linear_backward(3, 37, 40, 21, false, {false, false, true});
  check_linear_backward(1, 5, 64, 1, true);
  // a deferred zero fill of dw, on each GEMM path (beta 0)
  check_linear_backward_deferred_dw(B * T, d, d, true, true);
  check_linear_backward_deferred_dw(B * T, d, d, true, false);
  check_linear_backward_deferred_dw(111, 40, 21, true, false);
  check_linear_backward_deferred_dw(111, 37, 21, true, false);
  check_linear_backward_deferred_dw(111, 40, 24, false, false);

  // embedding_backward: Zipf-distributed ids (repeats across many chunks), odd D (scalar path),
  // one id everywhere (one run through every chunk), fewer tokens than a chunk.
  check_embedding_backward(V, d, zipf_ids(B, T, V, 1.0), "zipf 1.0");
  check_embedding_backward(1000, 37, zipf_ids(3, 37, 1000, 1.2), "zipf 1.2");
  {
    Tensor same = Tensor::empty({2, 300}, DType::I32);
    for (int64_t i = 0; i < 600; ++i) same.data<int32_t>()[i] = 7;
    check_embedding_backward(64, 64, same, "one id");
  }
  check_embedding_backward(64, 8, zipf_ids(1, 5, 64, 1.0), "5 tokens");
  check_embedding_backward_bad_id(1000, 64);

  // elementwise: the d_model-2048 MLP's hidden width at 8192 rows, odd sizes (vector tail),
  // unaligned views (scalar path)
  check_pointwise_backward({B, T, 4 * d}, true);
  check_pointwise_backward({3, 37, 11}, false);
  check_pointwise_unaligned({3, 37, 11});
  check_neg_exp_backward({128});
  check_neg_exp_backward({3, 1001});
  // softplus_dt: H = 64 (d_model 2048 Mamba-2), H = 128 (8B), odd H = 5 (scalar column path)
  check_softplus_backward(B, T, 64, true, false);
  check_softplus_backward(B, T, 64, true, true);
  check_softplus_backward(B8, T8, 128, true, false);
  check_softplus_backward(3, 37, 5, true, false);
  check_softplus_backward(3, 37, 5, false, false);

  // cross_entropy: the training chunk's shape (rows kept in shared memory), in place as the
  // training step runs it, loss only, rows longer than shared memory (256K classes, second pass
  // from global), an odd vocabulary (unaligned rows), a dlogits buffer of another alignment, tiny V
  const int64_t ce_rows = quick ? 512 : B * T;
  check_cross_entropy(ce_rows, V, GradOut::kSeparate, true);
  check_cross_entropy(ce_rows, V, GradOut::kInPlace, false);
  check_cross_entropy(ce_rows, V, GradOut::kNone, true);
  check_cross_entropy(quick ? 8 : 64, 262144, GradOut::kInPlace, false);
  check_cross_entropy(33, 50257, GradOut::kSeparate, false);
  check_cross_entropy(33, 50257, GradOut::kUnaligned, false);
  check_cross_entropy(7, 5, GradOut::kSeparate, false);
  check_cross_entropy_bf16(33, 50304, false);  // the shared-memory row kernel
  check_cross_entropy_bf16(33, 50257, true);
  check_cross_entropy_bf16(65, 8192, false);   // the register kernel
  check_cross_entropy_bf16(9, 12, true);
  // the register kernel's row lengths (V % 4 == 0, up to 32K): the study's 8K vocabulary, 32K, a
  // row shorter than its threads' quads, and unaligned dlogits (the shared-memory kernel)
  check_cross_entropy(ce_rows, 8192, GradOut::kSeparate, true);
  check_cross_entropy(ce_rows, 8192, GradOut::kInPlace, false);
  check_cross_entropy(301, 32000, GradOut::kInPlace, false);
  check_cross_entropy(301, 32000, GradOut::kNone, false);
  check_cross_entropy(301, 12, GradOut::kSeparate, false);
  check_cross_entropy(301, 8192, GradOut::kUnaligned, false);
  check_cross_entropy_bad_target(1000);
  check_cross_entropy_bad_target(-2);

  // optimizer: a d_model projection and the embedding table, with and without decay and each
  // kind of copy; odd sizes (vector tail) and unaligned views (scalar path)
  check_adamw({d, d}, true, CopyOut::kBF16);
  check_adamw({d, d}, false, CopyOut::kNone);
  check_adamw({d, d}, true, CopyOut::kSelf);
  check_adamw({d, d}, true, CopyOut::kF32);
  if (!quick) check_adamw({V, d}, true, CopyOut::kBF16);
  check_adamw({1001}, true, CopyOut::kBF16);
  check_adamw({1001}, false, CopyOut::kBF16, true);
  check_squared_norm({quick ? d : V, d});
  check_squared_norm({1001});
  check_squared_norm({1001}, true);
  check_optimizer_lists();
  check_nonfinite({d, d});
  check_nonfinite({1001});
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("dense_backward", run_dense_backward);

}  // namespace conformance
