// Bandwidth-bound fp32 <-> bf16 conversion of up to three arrays in one launch (layout.cu):
// coalesced 4-element accesses, four of them in flight per thread, round to nearest even.
// The bf16 arrays are raw 16-bit words (uint16_t), as the cuDNN glue and Tensor::data keep them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <tuple>

namespace mambalm::ops::cuda {

// dst[i] = bf16(src[i]) for i < n, per (src, dst, n) triple.
void f32_to_bf16(std::initializer_list<std::tuple<const float*, uint16_t*, int64_t>> arrays);
// dst[i] = float(src[i]) for i < n, per (src, dst, n) triple.
void bf16_to_f32(std::initializer_list<std::tuple<const uint16_t*, float*, int64_t>> arrays);

}  // namespace mambalm::ops::cuda
