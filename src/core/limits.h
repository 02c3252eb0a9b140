// The bounds every size, id and count is checked against where it enters (a file, a flag), and
// the checked arithmetic for products of them. One place, so that a number from outside can
// never reach an allocation or an index unchecked, and the bounds are the same everywhere.
//
// The bounds are far above any real model (the study's 8B: d_model 4096, vocab 256K, 56 layers)
// and far below int64 overflow: each product of two bounded sizes fits, and the sums over a model
// are checked with the helpers below.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace mambalm::limits {

// Any single model dimension: d_model, intermediate sizes, head counts, d_inner, dt_rank.
constexpr int64_t kMaxWidth = int64_t{1} << 24;
// Token ids are int32 everywhere; vocabularies stay well below that so id + 1 and id * width fit.
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxTokenId = kMaxVocab - 1;
// Residual blocks of a model (the 8B hybrid has 56).
constexpr int64_t kMaxLayers = int64_t{1} << 16;
// Small per-layer sizes: SSM state, head dims, conv kernel, SSD chunk.
constexpr int64_t kMaxSmallDim = int64_t{1} << 16;
// Parameters of a whole model (~17.6 trillion); sums of per-tensor counts stay far from 2^63.
constexpr int64_t kMaxParameters = int64_t{1} << 44;
// Tokens in one sequence, sequences in one micro-batch, and tokens of one optimizer step.
constexpr int64_t kMaxSequence = int64_t{1} << 24;
constexpr int64_t kMaxBatch = int64_t{1} << 24;
constexpr int64_t kMaxTokensPerStep = int64_t{1} << 40;
// Bytes of one tensor (2^62: any larger count of bytes cannot be addressed anyway).
constexpr int64_t kMaxTensorBytes = int64_t{1} << 62;

// a * b for non-negative a, b; throws naming `where` and `what` when the product exceeds `max`
// (or int64). Never wraps.
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& where, const std::string& what,
                           int64_t max = INT64_MAX) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > max)
    fail(where, what + " is too large (" + std::to_string(a) + " x " + std::to_string(b) + ")",
         "a size in the input is out of range");
  return r;
}

// a + b for non-negative a, b, with the same contract as checked_mul.
inline int64_t checked_add(int64_t a, int64_t b, const std::string& where, const std::string& what,
                           int64_t max = INT64_MAX) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r) || r > max)
    fail(where, what + " is too large (" + std::to_string(a) + " + " + std::to_string(b) + ")",
         "a size in the input is out of range");
  return r;
}

// `value` itself when it lies in [lo, hi]; otherwise an error naming the field and the range.
inline int64_t in_range(int64_t value, int64_t lo, int64_t hi, const std::string& where, const std::string& field) {
  if (value < lo || value > hi)
    fail(where, field + " " + std::to_string(value) + " is out of range [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "]");
  return value;
}

}  // namespace mambalm::limits
