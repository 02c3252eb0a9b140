// The deterministic column sums shared by the backward ops that reduce over rows (db of
// linear_backward, ddt_bias of softplus_dt_backward): a column pass writes one double partial per
// (chunk of rows, column), each summed in a fixed order by kColThreads x kRowGroups threads, and
// add_chunk_sums adds the chunks in order, so the result is bit-identical run to run and matches
// the CPU's add_column_sums up to the grouping of the double sums.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace mambalm::ops::cuda {
namespace {

constexpr int kColThreads = 32, kRowGroups = 8;  // a column pass block: 32 columns (x4) by 8 row groups

// out[c] += (float) sum over chunks of partial[chunk, c], chunks in order (as the CPU's
// add_column_sums adds one double per column).
__global__ void add_chunk_sums(const double* __restrict__ partial, int64_t chunks, int64_t cols, float* __restrict__ out) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += partial[k * cols + c];
    out[c] += float(s);
  }
}

// Rows per chunk of a column pass, from the shape alone: about 2048 blocks (8+ resident per SM for
// memory parallelism), at least 32 rows a chunk, at most 65535 chunks (grid.y).
inline int64_t rows_per_chunk(int64_t rows, int64_t cols) {
  const int64_t col_blocks = (cols + 4 * kColThreads - 1) / (4 * kColThreads);
  const int64_t want_chunks = std::max<int64_t>(1, (2048 + col_blocks - 1) / col_blocks);
  int64_t rpc = std::max<int64_t>(32, (rows + want_chunks - 1) / want_chunks);
  rpc = std::max(rpc, (rows + 65534) / 65535);
  return (rpc + kRowGroups - 1) / kRowGroups * kRowGroups;
}

}  // namespace
}  // namespace mambalm::ops::cuda
