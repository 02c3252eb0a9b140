// The AArch64 decode GEMV kernels (gemv.h), with Advanced SIMD (part of the base architecture,
// so no target attribute is needed). Compiled only in an AArch64 build; bf16 weights are widened
// to fp32 exactly and multiplied in fp32, Q8 weights meet x rounded to int16 per block (gemv.h
// x_as_q8) in integer multiply-adds.
#include "ops/cpu/gemv.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include <cstring>

#include "ops/cpu/q8_format.h"

namespace mambalm::ops::cpu {
namespace {

inline float32x4_t bf16x4(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }

inline float q8_scale(const uint8_t* blk) {
  uint16_t d16;
  std::memcpy(&d16, blk, 2);
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(d16))), 0);
}

float dot_f32(const float* w, const float* x, int64_t K) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    a0 = vfmaq_f32(a0, vld1q_f32(w + k), vld1q_f32(x + k));
    a1 = vfmaq_f32(a1, vld1q_f32(w + k + 4), vld1q_f32(x + k + 4));
    a2 = vfmaq_f32(a2, vld1q_f32(w + k + 8), vld1q_f32(x + k + 8));
    a3 = vfmaq_f32(a3, vld1q_f32(w + k + 12), vld1q_f32(x + k + 12));
  }
  for (; k + 4 <= K; k += 4) a0 = vfmaq_f32(a0, vld1q_f32(w + k), vld1q_f32(x + k));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  for (; k < K; ++k) s += w[k] * x[k];
  return s;
}

float dot_bf16(const uint16_t* w, const float* x, int64_t K) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    a0 = vfmaq_f32(a0, bf16x4(w + k), vld1q_f32(x + k));
    a1 = vfmaq_f32(a1, bf16x4(w + k + 4), vld1q_f32(x + k + 4));
    a2 = vfmaq_f32(a2, bf16x4(w + k + 8), vld1q_f32(x + k + 8));
    a3 = vfmaq_f32(a3, bf16x4(w + k + 12), vld1q_f32(x + k + 12));
  }
  for (; k + 4 <= K; k += 4) a0 = vfmaq_f32(a0, bf16x4(w + k), vld1q_f32(x + k));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  for (; k < K; ++k) {
    const uint32_t bits = static_cast<uint32_t>(w[k]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    s += f * x[k];
  }
  return s;
}

// A Q8 row against one row of x as rounded by x_as_q8 (blocks zero-padded past K): per block the
// exact integer sum of 32 int8 x int16 products (weights widened to int16, products accumulated
// in int32 lanes), then (dw dx) times it in fp32, in block order as the scalar reference.
float dot_q8x16(const uint8_t* row, const int16_t* qx, const float* dx, int64_t blocks) {
  float acc = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = row + b * kQ8BlockBytes;
    const int8_t* qw = reinterpret_cast<const int8_t*>(blk + 2);
    const int16_t* xb = qx + b * kQ8Block;
    int32x4_t s = vdupq_n_s32(0);
    for (int h = 0; h < 2; ++h) {
      const int8x16_t w8 = vld1q_s8(qw + 16 * h);
      const int16x8_t lo = vmovl_s8(vget_low_s8(w8)), hi = vmovl_high_s8(w8);
      const int16x8_t x0 = vld1q_s16(xb + 16 * h), x1 = vld1q_s16(xb + 16 * h + 8);
      s = vmlal_s16(s, vget_low_s16(lo), vget_low_s16(x0));
      s = vmlal_high_s16(s, lo, x0);
      s = vmlal_s16(s, vget_low_s16(hi), vget_low_s16(x1));
      s = vmlal_high_s16(s, hi, x1);
    }
    acc += (q8_scale(blk) * dx[b]) * static_cast<float>(vaddvq_s32(s));
  }
  return acc;
}

template <class Dot>
void for_rows(const void* w, int64_t N, int64_t K, int64_t row_bytes, const float* x, int64_t M, const float* bias,
              float* y, int64_t n0, int64_t n1, Dot dot) {
  for (int64_t n = n0; n < n1; ++n) {
    const auto* wr = static_cast<const uint8_t*>(w) + n * row_bytes;
    for (int64_t m = 0; m < M; ++m) y[m * N + n] = dot(wr, x + m * K) + (bias ? bias[n] : 0.0f);
  }
}

void rows_f32(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias, float* y, int64_t n0,
              int64_t n1) {
  for_rows(w, N, K, K * 4, x, M, bias, y, n0, n1,
           [K](const uint8_t* r, const float* xm) { return dot_f32(reinterpret_cast<const float*>(r), xm, K); });
}
void rows_bf16(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias, float* y, int64_t n0,
               int64_t n1) {
  for_rows(w, N, K, K * 2, x, M, bias, y, n0, n1,
           [K](const uint8_t* r, const float* xm) { return dot_bf16(reinterpret_cast<const uint16_t*>(r), xm, K); });
}
void rows_q8(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias, float* y, int64_t n0,
             int64_t n1) {
  q8_rows(w, N, K, x, M, bias, y, n0, n1, dot_q8x16);
}

}  // namespace

GemvKernels gemv_kernels_neon() { return {rows_f32, rows_bf16, rows_q8}; }

}  // namespace mambalm::ops::cpu

#else

namespace mambalm::ops::cpu {
GemvKernels gemv_kernels_neon() { return {}; }
}  // namespace mambalm::ops::cpu

#endif
