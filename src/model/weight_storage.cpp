// Converting weights to their stored dtype (weight_storage.h).
#include "model/weight_storage.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/hf_names.h"
#include "ops/ops.h"

namespace mambalm {

namespace {

// A float tensor as Q8, block of rows by block of rows: only one block is ever widened to F32
// (the 8B model's embedding alone would be 4.2 GB of F32).
Tensor to_q8(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), DType::Q8);
  const int64_t K = t.rank() > 0 ? t.dim(-1) : 0;
  if (K == 0 || t.numel() == 0) return out;
  const int64_t rows = t.numel() / K;
  const Tensor src = t.reshape({rows, K});    // [rows, K] in t's dtype
  const Tensor dst = out.reshape({rows, K});  // [rows, K] Q8 blocks
  const int64_t block = std::max<int64_t>(1, kConvertBlockValues / K);
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t r1 = std::min(rows, r0 + block);
    const Tensor part = src.slice0(r0, r1);
    const Tensor wide = part.dtype() == DType::F32 ? part : stored_as(part, DType::F32);  // [r1 - r0, K]
    Tensor q = dst.slice0(r0, r1);
    ops::convert(wide, q);
  }
  return out;
}

}  // namespace

bool is_lookup_table(const ParamRef& p, const ModelConfig& cfg) { return !cfg.tie_embeddings && p.name == hf_embedding_name(cfg); }

DType inference_dtype(const ParamRef& p, const ModelConfig& cfg, DType matrix_dtype, DType file_dtype) {
  if (is_lookup_table(p, cfg) && (file_dtype == DType::F32 || file_dtype == DType::BF16)) return file_dtype;
  return is_matrix(p) ? matrix_dtype : DType::F32;
}

void convert_by_blocks(const Tensor& t, Tensor& out, const std::function<void(uint64_t, uint64_t)>& block_done) {
  check(out.shape() == t.shape(), "convert_by_blocks",
        "out has shape " + shape_str(out.shape()) + ", t " + shape_str(t.shape()));
  if (t.numel() == 0) return;
  const DType dtype = out.dtype();
  const int64_t K = t.rank() > 0 ? t.dim(-1) : 1, rows = t.numel() / K;
  const Tensor src = t.reshape({rows, K});  // [rows, K] in t's dtype
  Tensor dst = out.reshape({rows, K});      // [rows, K] in dtype
  const int64_t block = std::max<int64_t>(1, kConvertBlockValues / K);
  const uint64_t row_bytes = static_cast<uint64_t>(K) * dtype_size(t.dtype());
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t r1 = std::min(rows, r0 + block);
    const Tensor part = src.slice0(r0, r1);  // [r1 - r0, K] in t's dtype
    Tensor d = dst.slice0(r0, r1);
    if (part.dtype() == dtype || part.dtype() == DType::F32) {
      ops::convert(part, d);  // straight into the result: no block-sized temporaries to fragment the heap
    } else {
      const Tensor wide = stored_as(part, dtype);  // BF16 / F16 / F64 files: through stored_as's rules
      std::memcpy(d.raw(), wide.raw(), d.nbytes());
    }
    block_done(static_cast<uint64_t>(r0) * row_bytes, static_cast<uint64_t>(r1) * row_bytes);
  }
}

Tensor stored_as(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  if (dtype == DType::Q8) return to_q8(t);
  if (t.dtype() == DType::Q8) {  // Q8 widens to F32 only (ops::convert), then on to `dtype`
    Tensor f32 = Tensor::empty(t.shape());
    ops::convert(t, f32);
    return stored_as(f32, dtype);
  }
  return t.to(dtype);
}

}  // namespace mambalm
