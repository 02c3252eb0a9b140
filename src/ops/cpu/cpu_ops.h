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

#include "core/tensor.h"
#include "ops/ops.h"

namespace mambalm::ops::cpu {

#include "ops/forward_ops.inc"
#include "ops/backward_ops.inc"

// ---- shared helpers ---------------------------------------------------------------------------

// Elements below which a loop runs on one thread: forking costs more than it saves (a decode
// step's vectors are far smaller).
constexpr int64_t kParallelMin = 1 << 15;

// out[c] += sum_r m[r, c] for a row-major [rows, cols] matrix: threads own column ranges and sum
// each column in row order in double (deterministic). Defined in linear.cpp.
void add_column_sums(const float* m, int64_t rows, int64_t cols, float* out);


// exp(x) in fp32 that the compiler can vectorise (std::exp cannot be, because it may set errno
// and we do not build with -ffast-math). Range reduction x = n ln2 + r with |r| <= ln2/2, a
// degree-7 Taylor polynomial for e^r (truncation < 1e-8 relative), then 2^n through the exponent
// bits. Max relative error ~2-3 ulp against double exp over the whole range. Arguments below
// -87 (where e^x leaves the normal float range) return 0; above 88 saturate at e^88.
// NaN in gives NaN out. Used where an exp sits in a hot inner loop (scans, softmax, SSD decays).
inline float exp_fast(float x) {
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round xc*log2(e) to the nearest integer with the 1.5*2^23 trick (exact, branch-free).
  const float shifter = 12582912.0f;
  float t = xc * 1.44269504088896341f + shifter;
  float n = t - shifter;
  int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(shifter);
  // r = xc - n*ln2 in two steps (Cody-Waite) so r keeps full precision.
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  float scale = std::bit_cast<float>((ni + 127) << 23);
  float result = p * scale;
  result = x < lo ? 0.0f : result;
  return x != x ? x : result;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

}  // namespace mambalm::ops::cpu
