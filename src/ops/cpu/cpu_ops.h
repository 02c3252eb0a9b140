// The CPU backend (fp32; the reference every other backend is tested against): the forward and
// backward op lists of ops/ops.h and ops/ops_backward.h, same signatures and semantics.
// ops/dispatch*.cpp have checked dtypes, shapes and devices when these run, so they trust their
// arguments (except data-dependent checks such as embedding ids, which they make).
//
// Files mirror ops/cuda/ by op family: linear, embedding, elementwise, norms, conv, ssd,
// selective_scan, attention, decode, layout, loss (family_backward.cpp for the backward passes
// where a family has a long one).
//
// Also holds the few numeric helpers the CPU kernels share (exp_fast), kept inline so the
// compiler can vectorise the loops that call them.
#pragma once
#include <bit>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "core/tensor.h"
#include "ops/ops.h"

namespace mambalm::ops::cpu {

#include "ops/forward_ops.inc"
#include "ops/backward_ops.inc"

// ---- shared helpers ---------------------------------------------------------------------------

// Elements below which a loop runs on one thread: forking costs more than it saves (a decode
// step's vectors are far smaller).
constexpr int64_t kParallelMin = 1 << 15;

// fn(i) for i in [0, n): split over the OpenMP team when `parallel`, else on this thread
// without entering the OpenMP runtime. A parallel region whose `if` clause is false still builds
// and tears down a team of one (~1.4 us a call on the Zen 5 of bench/NOTES.md), and a decode
// token of a 130M model runs ~100 small ops. for_each_simd vectorises fn's loop (fn must allow
// it: no calls that are not inlined, no dependence between indices); for_each_row does not.
template <class F>
inline void for_each_simd(int64_t n, bool parallel, F&& fn) {
  if (parallel) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) fn(i);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) fn(i);
  }
}
template <class F>
inline void for_each_row(int64_t n, bool parallel, F&& fn) {
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) fn(i);
  } else {
    for (int64_t i = 0; i < n; ++i) fn(i);
  }
}

// out[c] += sum_r m[r, c] for a row-major [rows, cols] matrix: threads own column ranges and sum
// each column in row order in double (deterministic). Defined in linear.cpp.
void add_column_sums(const float* m, int64_t rows, int64_t cols, float* out);

// A buffer of at least n elements per thread that only grows: no allocation per call once warm.
// Tag is a type local to the caller, so that each use has its own buffer.
template <class T, class Tag>
T* thread_buffer(int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// exp_fast's constants, shared with the 16-lane copy in selective_scan_x86.cpp.
struct ExpFastConst {
  static constexpr float kHi = 88.0f, kLo = -87.0f;
  static constexpr float kShifter = 12582912.0f;  // 1.5 * 2^23
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
  // e^r's Taylor coefficients from r^7 down to r^0
  static constexpr float kPoly[8] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                                     1.0f / 6.0f,    0.5f,           1.0f,           1.0f};
};

// exp(x) in fp32 that the compiler can vectorise (std::exp cannot be, because it may set errno
// and we do not build with -ffast-math). Range reduction x = n ln2 + r with |r| <= ln2/2, a
// degree-7 Taylor polynomial for e^r (truncation < 1e-8 relative), then 2^n through the exponent
// bits. Max relative error ~2-3 ulp against double exp over the whole range. Arguments below
// -87 (where e^x leaves the normal float range) return 0; above 88 saturate at e^88.
// NaN in gives NaN out. Used where an exp sits in a hot inner loop (scans, softmax, SSD decays).
inline float exp_fast(float x) {
  using E = ExpFastConst;
  float xc = x > E::kHi ? E::kHi : (x < E::kLo ? E::kLo : x);
  // Round xc*log2(e) to the nearest integer with the 1.5*2^23 trick (exact, branch-free).
  float t = xc * E::kLog2e + E::kShifter;
  float n = t - E::kShifter;
  int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(E::kShifter);
  // r = xc - n*ln2 in two steps (Cody-Waite) so r keeps full precision.
  float r = xc - n * E::kLn2Hi;
  r = r - n * E::kLn2Lo;
  float p = E::kPoly[0];  // written out: the scans' inner loops vectorise around this
  p = p * r + E::kPoly[1];
  p = p * r + E::kPoly[2];
  p = p * r + E::kPoly[3];
  p = p * r + E::kPoly[4];
  p = p * r + E::kPoly[5];
  p = p * r + E::kPoly[6];
  p = p * r + E::kPoly[7];
  float scale = std::bit_cast<float>((ni + 127) << 23);
  float result = p * scale;
  result = x < E::kLo ? 0.0f : result;
  return x != x ? x : result;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

// softplus(v) = log(1 + e^v) as torch.nn.functional.softplus (beta 1, threshold 20: v itself
// above 20), vectorisable: max(v, 0) + log1p(e) with e = exp_fast(-|v|) in (0, 1], and log1p(e)
// = 2 atanh(s), s = e / (2 + e) in (0, 1/3], by its odd series through s^13 (the first term left
// out is below 1.5e-8 of the sum). No 1 + e is formed, so a tiny e keeps its relative precision.
// Max error 2.8 ulp against double over every float v >= -87 (std::log1p(std::exp(v)) in fp32:
// 1.5 ulp); below -87 it returns 0 where the true value is under 1.7e-38. The libm pair it
// replaces cannot be vectorised (~2% of a 1-thread Mamba-1 decode step of mamba-130m's shape,
// perf); a vectorised loop of this takes 2-4 ns a value. NaN in gives NaN out.
inline float softplus_fast(float v) {
  const float e = exp_fast(v > 0.0f ? -v : v);
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float p = 1.0f / 13.0f;
  p = p * s2 + 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  const float l = 2.0f * s + (2.0f * s) * (s2 * p);  // log1p(e)
  const float sp = (v > 0.0f ? v : 0.0f) + l;
  return v > 20.0f ? v : sp;
}

}  // namespace mambalm::ops::cpu
