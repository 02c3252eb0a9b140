// Data movement between column blocks of row-major matrices: the splits and joins that the
// fused projections need (Mamba-2's in_proj output is z | x | B | C | dt along the last dim).
#pragma once
#include <initializer_list>

#include "core/tensor.h"

namespace mambalm::ops {

// dst[..., 0:w] = src[..., col0:col0+w], w = dst's last dim. Leading dims must match.
void copy_columns(const Tensor& src, int64_t col0, Tensor& dst);
// Consecutive column blocks of src into parts[0], parts[1], ... (up to 4; widths summing to at
// most src's last dim, starting at column 0): one pass instead of one copy_columns per part.
void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts);
// dst[..., col0:col0+w] = src[..., 0:w].
void write_columns(const Tensor& src, Tensor& dst, int64_t col0);
// dst rows [0, n) = src rows [0, n) along the first dim (same row size, as in a cache append).
void copy_rows(const Tensor& src, int64_t n, Tensor& dst);
// y = -exp(x), elementwise (A = -exp(A_log)).
void neg_exp(const Tensor& x, Tensor& y);

}  // namespace mambalm::ops
