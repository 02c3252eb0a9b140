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

// The activations that meet Q8 weights are rounded to 16-bit integers in the weights' blocks of
// 32, so that a block's dot product is a sum of exact int8 x int16 products, done in integer SIMD
// (ops/cpu/gemv_x86.cpp): per block the fp32 scale d = max_i |x_i| / 32767 and
// q_i = round-to-nearest-even(x_i * (1 / d)) in [-32767, 32767] (0 when d is 0), an error of at
// most d / 2, 1/65534 of the block's largest |x|, far below the weights' own (1/254 of theirs).
// Decode (the GEMV) and prefill (sgemm on d q) round x the same way, so both make the same
// products (docs/numerics.md). scales [q8_blocks(K)], q [q8_blocks(K) * 32], zeros past K.
void quantize_x_for_q8(const float* x, int64_t K, float* scales, int16_t* q);
// x [K] -> out [K] = d q, the values the Q8 products see.
void round_x_for_q8(const float* x, int64_t K, float* out);

}  // namespace mambalm::ops::cpu
