// CPU ops over column blocks (see linear_parts and causal_conv1d_parts in ops/forward_ops.inc):
// the reference, composed from the whole-width ops and the column copies; the CUDA backend
// writes and reads the blocks in place. causal_conv1d_parts lives in conv.cpp, which writes
// the blocks in place too.
#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {
// A new tensor of `like`'s leading dims and `last` columns.
Tensor with_last_dim(const Tensor& like, int64_t last) {
  Shape s = like.shape();
  s.back() = last;
  return Tensor::empty(s);
}

// parts side by side in one [..., sum of widths] tensor.
Tensor joined(std::initializer_list<const Tensor*> parts) {
  int64_t cols = 0;
  for (const Tensor* p : parts) cols += p->dim(-1);
  Tensor all = with_last_dim(**parts.begin(), cols);
  int64_t col = 0;
  for (const Tensor* p : parts) {
    write_columns(*p, all, col);
    col += p->dim(-1);
  }
  return all;
}
}  // namespace

void linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::initializer_list<Tensor*> parts) {
  int64_t row = 0;
  for (Tensor* p : parts) {
    const int64_t n = p->dim(-1);
    const Tensor w_rows = w.slice0(row, row + n);  // [n, K]
    const Tensor b_rows = bias ? bias->slice0(row, row + n) : Tensor();
    linear(x, w_rows, bias ? &b_rows : nullptr, *p);
    row += n;
  }
}

void linear_backward_parts(std::initializer_list<const Tensor*> dy_parts, const Tensor& x, const Tensor& w, Tensor* dx,
                           Tensor* dw, Tensor* db, bool accumulate_dx, bool assign_dw) {
  const Tensor dy = joined(dy_parts);  // [..., N]
  linear_backward(dy, x, w, dx, dw, db, accumulate_dx, assign_dw);
}

void causal_conv1d_backward_parts(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                                  bool apply_silu, std::initializer_list<const Tensor*> dy_parts, Tensor& dx, Tensor* dw,
                                  Tensor* dbias, int64_t dx_col0) {
  const Tensor dy = joined(dy_parts);  // [B, T, C]
  if (dx_col0 < 0) return causal_conv1d_backward(x, w, bias, seq_idx, nullptr, apply_silu, dy, dx, dw, dbias, nullptr);
  Tensor own = with_last_dim(x, x.dim(-1));  // [B, T, C], then into dx's columns
  causal_conv1d_backward(x, w, bias, seq_idx, nullptr, apply_silu, dy, own, dw, dbias, nullptr);
  write_columns(own, dx, dx_col0);
}

}  // namespace mambalm::ops::cpu
