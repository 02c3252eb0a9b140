// Token embedding on the CPU: the lookup (row copies) and its backward (a deterministic
// scatter-add: threads own column ranges of the table and walk the tokens in order).
#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/q8_format.h"

namespace mambalm::ops::cpu {

// y[b, t, :] = table[ids[b, t], :]. Ids are validated first, all of them, so that a bad id
// throws before anything is written and never from inside a parallel region.
void embedding(const Tensor& ids, const Tensor& table, Tensor& y) {
  const int64_t n = ids.numel();
  const int64_t V = table.dim(0);
  const int64_t D = table.dim(1);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (id[i] < 0 || id[i] >= V)
      fail("op embedding", "token id " + std::to_string(id[i]) + " at flat position " +
                               std::to_string(i) + " is out of range for a table of " +
                               std::to_string(V) + " rows",
           "the tokenizer and the model's vocab_size disagree");
  }
  float* yp = y.f32();
  if (table.dtype() != DType::F32) {  // bf16 or q8 inference weights: widen the rows read
    const auto* tb = static_cast<const uint8_t*>(table.raw());
    const bool q8 = table.dtype() == DType::Q8;
    const int64_t rb = q8 ? q8_row_bytes(D) : D * 2;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* row = tb + static_cast<int64_t>(id[i]) * rb;
      if (q8) {
        dequantize_row_q8(row, D, yp + i * D);
      } else {
        const auto* h = reinterpret_cast<const uint16_t*>(row);
        for (int64_t d = 0; d < D; ++d) yp[i * D + d] = bf16_to_f32(h[d]);
      }
    }
    return;
  }
  const float* tp = table.f32();
  for_each_row(n, n * D > (1 << 16), [&](int64_t i) {
    std::memcpy(yp + i * D, tp + static_cast<int64_t>(id[i]) * D, static_cast<size_t>(D) * sizeof(float));
  });
}

// Threads own column ranges of the table and walk all tokens in order.
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const int64_t n = ids.numel(), V = dtable.dim(0), D = dtable.dim(1);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (id[i] < 0 || id[i] >= V)
      fail("op embedding_backward",
           "token id " + std::to_string(id[i]) + " at flat position " + std::to_string(i) +
               " is out of range for a table of " + std::to_string(V) + " rows",
           "the tokenizer and the model's vocab_size disagree");
  }
  const float* g = dy.f32();
  float* t = dtable.f32();
  constexpr int64_t kCols = 256;
  const int64_t blocks = (D + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (n * D > kParallelMin)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kCols, c1 = std::min(D, c0 + kCols);
    for (int64_t i = 0; i < n; ++i) {
      float* row = t + static_cast<int64_t>(id[i]) * D;
      const float* gi = g + i * D;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] += gi[c];
    }
  }
}

}  // namespace mambalm::ops::cpu
