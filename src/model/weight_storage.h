// How a weight read from a file (or held in F32) becomes the tensor the ops read: matrices in
// the placement's dtype (F32, BF16, or the CPU backend's 8-bit blocks, Q8), everything else in
// F32 (param.h, is_matrix). One tensor at a time, and Q8 in blocks of rows, so that converting
// a model never holds more than the result and a few MiB: what lets an 8B model load as BF16
// or Q8 in a machine that could not hold it as F32 (issue 12, point 6).
#pragma once
#include <cstdint>
#include <functional>

#include "config/model_config.h"
#include "core/tensor.h"
#include "model/param.h"

namespace mambalm {

// The dtype `p` is held in for CPU inference with matrices in `matrix_dtype`, the file storing it
// as `file_dtype`: matrices in matrix_dtype, the rest F32 (is_matrix); but an untied embedding
// table, only looked up a row a token, keeps the file's dtype where the lookup reads it as it is
// (F32, BF16): the load then leaves it in the file and reads it by row (model/embedding_file.h),
// exact, and resident only a row at a time.
DType inference_dtype(const ParamRef& p, const ModelConfig& cfg, DType matrix_dtype, DType file_dtype);
// Whether `p` is an untied embedding table: only looked up, a row a token.
bool is_lookup_table(const ParamRef& p, const ModelConfig& cfg);

// `t` (a CPU tensor: F32, BF16, F16, F64 or Q8) as `dtype`. The same tensor when the dtypes
// already match, so a view of a mapped file stays that view (no copy); a new tensor otherwise,
// with exactly the values of t.to(F32) rounded once to `dtype`.
Tensor stored_as(const Tensor& t, DType dtype);

// Values per block of rows converted when loading and widened on the way to Q8 (16 MiB of F32):
// what a load holds of the file at once beside the result (inference_memory.cpp counts it);
// small beside any model, large enough that the per-block overhead vanishes.
constexpr int64_t kConvertBlockValues = int64_t{1} << 22;

// `t` converted into `out` (a CPU tensor of t's shape, in the dtype wanted; the same dtype copies),
// block of rows by block of rows (a few MiB each); after each block, block_done(first_byte,
// end_byte) with the bytes of `t` it read, so that a loader can drop those pages of the mapped
// file right away.
void convert_by_blocks(const Tensor& t, Tensor& out, const std::function<void(uint64_t, uint64_t)>& block_done);

}  // namespace mambalm
