#include "ops/layout.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#ifdef MAMBALM_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"
#endif

namespace mambalm::ops {

namespace {

// Both tensors on one device; true when it is CUDA (needs a build with the CUDA backend).
bool same_device(const Tensor& a, const Tensor& b, const char* op) {
  MAMBALM_CHECK(a.device() == b.device(), op, "tensors on different devices",
        "move them to one device first (to_device in core/cuda_memory.h)");
#ifndef MAMBALM_HAVE_CUDA
  MAMBALM_CHECK(a.device() == Device::CPU, op, "CUDA backend not built");
#endif
  return a.device() == Device::CUDA;
}

void check_rows(const Tensor& a, const Tensor& b, const char* op) {
  MAMBALM_CHECK(a.rank() >= 1 && b.rank() == a.rank(), op,
        "rank mismatch " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
  for (int i = 0; i + 1 < a.rank(); ++i)
    MAMBALM_CHECK(a.dim(i) == b.dim(i), op, "leading dims differ: " + shape_str(a.shape()) + " vs " + shape_str(b.shape()));
}

}  // namespace

void copy_columns(const Tensor& src, int64_t col0, Tensor& dst) {
  check_rows(src, dst, "copy_columns");
  int64_t W = src.dim(-1), w = dst.dim(-1);
  MAMBALM_CHECK(col0 >= 0 && col0 + w <= W, "copy_columns", "columns out of range");
  if (same_device(src, dst, "copy_columns")) {
#ifdef MAMBALM_HAVE_CUDA
    return cuda::copy_columns(src, col0, dst);
#endif
  }
  int64_t rows = src.numel() / (W ? W : 1);
  const float* s = src.f32();
  float* d = dst.f32();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * w, s + r * W + col0, static_cast<size_t>(w) * 4);
}

void split_columns(const Tensor& src, std::initializer_list<Tensor*> parts) {
  MAMBALM_CHECK(parts.size() >= 1 && parts.size() <= 4, "split_columns", "1 to 4 parts");
  int64_t col = 0;
  for (Tensor* p : parts) {
    check_rows(src, *p, "split_columns");
    col += p->dim(-1);
  }
  MAMBALM_CHECK(col <= src.dim(-1), "split_columns", "parts are wider than the source");
  if (same_device(src, **parts.begin(), "split_columns")) {
#ifdef MAMBALM_HAVE_CUDA
    for (Tensor* p : parts) MAMBALM_CHECK(p->device() == Device::CUDA, "split_columns", "tensors on different devices");
    return cuda::split_columns(src, parts);
#endif
  }
  col = 0;
  for (Tensor* p : parts) {
    copy_columns(src, col, *p);
    col += p->dim(-1);
  }
}

void write_columns(const Tensor& src, Tensor& dst, int64_t col0) {
  check_rows(src, dst, "write_columns");
  int64_t W = dst.dim(-1), w = src.dim(-1);
  MAMBALM_CHECK(col0 >= 0 && col0 + w <= W, "write_columns", "columns out of range");
  if (same_device(src, dst, "write_columns")) {
#ifdef MAMBALM_HAVE_CUDA
    return cuda::write_columns(src, dst, col0);
#endif
  }
  int64_t rows = dst.numel() / (W ? W : 1);
  const float* s = src.f32();
  float* d = dst.f32();
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * W + col0, s + r * w, static_cast<size_t>(w) * 4);
}

void copy_rows(const Tensor& src, int64_t n, Tensor& dst) {
  MAMBALM_CHECK(src.rank() >= 1 && dst.rank() >= 1 && n <= src.dim(0) && n <= dst.dim(0), "copy_rows", "rows out of range");
  int64_t row = src.numel() / (src.dim(0) ? src.dim(0) : 1);
  MAMBALM_CHECK(row == dst.numel() / (dst.dim(0) ? dst.dim(0) : 1), "copy_rows", "row sizes differ: " + shape_str(src.shape()) + " vs " + shape_str(dst.shape()));
  if (same_device(src, dst, "copy_rows")) {
#ifdef MAMBALM_HAVE_CUDA
    return cuda::copy_rows(src, n, dst);
#endif
  }
  std::memcpy(dst.raw(), src.raw(), static_cast<size_t>(n * row) * dtype_size(src.dtype()));
}

void neg_exp(const Tensor& x, Tensor& y) {
  MAMBALM_CHECK(x.numel() == y.numel(), "neg_exp", "size mismatch");
  if (same_device(x, y, "neg_exp")) {
#ifdef MAMBALM_HAVE_CUDA
    return cuda::neg_exp(x, y);
#endif
  }
  const float* a = x.f32();
  float* b = y.f32();
  for (int64_t i = 0; i < x.numel(); ++i) b[i] = -std::exp(a[i]);
}

}  // namespace mambalm::ops
