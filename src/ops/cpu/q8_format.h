// The 8-bit block weight format of the CPU backend (docs/file-formats.md, "Q8 weights in
// memory"). A matrix [N, K] is stored row by row; each row is ceil(K / 32) blocks of 34 bytes:
//   bytes 0-1   the block's scale d as an IEEE fp16 (little-endian)
//   bytes 2-33  32 signed 8-bit values q_i in [-127, 127]
// and weight k of the row is d * q_(k % 32) of block k / 32. d = the smallest fp16 >= max_i
// |w_i| / 127, q_i = round-to-nearest-even(w_i / d) (0 when d is 0), so |w_i - d q_i| <= d / 2.
// A last, partial block holds zeros past K. Symmetric (no offset): weight values centre on zero.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace mambalm::ops::cpu {

constexpr int64_t kQ8Block = kQ8BlockSize;  // weights per block; kQ8BlockBytes: core/tensor.h

inline int64_t q8_blocks(int64_t K) { return (K + kQ8Block - 1) / kQ8Block; }
inline int64_t q8_row_bytes(int64_t K) { return q8_blocks(K) * kQ8BlockBytes; }

// One row of K floats into q8_row_bytes(K) bytes, and back.
void quantize_row_q8(const float* w, int64_t K, uint8_t* out);
void dequantize_row_q8(const uint8_t* row, int64_t K, float* out);

}  // namespace mambalm::ops::cpu
