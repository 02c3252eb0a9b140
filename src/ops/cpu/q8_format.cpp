// Quantisation of a weight row to the Q8 block format and back (q8_format.h).
#include "ops/cpu/q8_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/tensor.h"

namespace mambalm::ops::cpu {

void quantize_row_q8(const float* w, int64_t K, uint8_t* out) {
  for (int64_t b = 0; b < q8_blocks(K); ++b) {
    const int64_t k0 = b * kQ8Block, n = std::min(kQ8Block, K - k0);
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(w[k0 + i]));
    // The smallest fp16 >= amax / 127 (round up, so that no |w / d| exceeds 127 and nothing is
    // clamped, also where d is an fp16 subnormal).
    const float want = amax / 127.0f;
    uint16_t d16 = f32_to_f16(want);
    if (f16_to_f32(d16) < want) ++d16;  // positive finite fp16: the next value up
    const float d = f16_to_f32(d16);
    uint8_t* blk = out + b * kQ8BlockBytes;
    std::memcpy(blk, &d16, 2);
    int8_t* q = reinterpret_cast<int8_t*>(blk + 2);
    for (int64_t i = 0; i < kQ8Block; ++i) {
      // |w / d| <= 127 by the choice of d; the clamp is a guard (loaded weights are checked finite).
      const float v = i < n && d > 0.0f ? std::nearbyint(w[k0 + i] / d) : 0.0f;
      q[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void dequantize_row_q8(const uint8_t* row, int64_t K, float* out) {
  for (int64_t b = 0; b < q8_blocks(K); ++b) {
    const uint8_t* blk = row + b * kQ8BlockBytes;
    uint16_t d16;
    std::memcpy(&d16, blk, 2);
    const float d = f16_to_f32(d16);
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
    const int64_t k0 = b * kQ8Block, n = std::min(kQ8Block, K - k0);
    for (int64_t i = 0; i < n; ++i) out[k0 + i] = d * static_cast<float>(q[i]);
  }
}

void quantize_x_for_q8(const float* x, int64_t K, float* scales, int16_t* q) {
  for (int64_t b = 0; b < q8_blocks(K); ++b) {
    const int64_t k0 = b * kQ8Block, n = std::min(kQ8Block, K - k0);
    float amax = 0.0f;
    bool finite = true;
    for (int64_t i = 0; i < n; ++i) {
      const float a = std::fabs(x[k0 + i]);
      finite = finite && a <= std::numeric_limits<float>::max();  // false for inf and NaN
      amax = std::max(amax, a);
    }
    // A block holding inf or NaN gets scale NaN and q = 0, so that the products are NaN, as the
    // fp32 ones would be, rather than a silently finite number.
    const float d = finite ? amax / 32767.0f : std::numeric_limits<float>::quiet_NaN();
    // A scale below the smallest normal float (|x| < 3.9e-34) rounds the block to zeros: 1 / d
    // could be inf there, and 0 * inf NaN.
    const float inv = finite && d >= std::numeric_limits<float>::min() ? 1.0f / d : 0.0f;
    scales[b] = d;
    int16_t* qb = q + k0;
    // x * inv may land a few ulps past 32767 at the block's largest |x|: the clamp keeps it there.
    const int64_t rounded = finite ? n : 0;
    for (int64_t i = 0; i < rounded; ++i)
      qb[i] = static_cast<int16_t>(std::clamp(std::nearbyint(x[k0 + i] * inv), -32767.0f, 32767.0f));
    for (int64_t i = rounded; i < kQ8Block; ++i) qb[i] = 0;
  }
}

void round_x_for_q8(const float* x, int64_t K, float* out) {
  int16_t q[kQ8Block];
  float d;
  for (int64_t b = 0; b < q8_blocks(K); ++b) {
    const int64_t k0 = b * kQ8Block, n = std::min(kQ8Block, K - k0);
    quantize_x_for_q8(x + k0, n, &d, q);
    for (int64_t i = 0; i < n; ++i) out[k0 + i] = d * static_cast<float>(q[i]);
  }
}

}  // namespace mambalm::ops::cpu
