// Gradient buffers whose zero fill waits for their first writer.
//
// Zeroing every gradient at the start of an optimizer step is a pass over 4 bytes a parameter,
// and the first weight-gradient GEMM after it then reads those zeros back (beta 1). Instead,
// Model::zero_grads marks each gradient here as "zero, not yet written":
// - linear_backward(_parts) takes the mark of a whole dw it is about to write and runs its GEMM
//   with beta 0 (dw = dy^T x, not dw += dy^T x);
// - every other op that names a marked tensor, or a view that overlaps one, as an operand fills
//   it with zeros first (ops/checks.h, on_cuda_of: every op names all its operands there);
// - Model::train_step fills what is still marked at its end, and before its grads-ready hook.
// The values are those of filling up front: a product written with beta 0 equals 0 + product
// (up to the sign of an exact zero).
//
// A marked tensor is held (its storage stays alive) until its mark is taken, settled or dropped,
// so a freed buffer's address can never be mistaken for a marked one. One process-wide registry,
// guarded by a mutex; ops are issued from one thread at a time in practice.
#pragma once
#include "core/tensor.h"

namespace mambalm::ops {

// Marks t as logically zero: its bytes are stale until a writer takes the mark or it is settled.
void defer_zero_fill(const Tensor& t);
// True when t itself (same storage range, not a part of it) was marked; the mark is gone and the
// caller must now write every element of t. A marked tensor that t only overlaps is settled.
bool take_deferred_zero(const Tensor& t);
// Fills with zeros every marked tensor that t overlaps, and drops those marks.
void settle_deferred_zero(const Tensor& t);
// Fills every marked tensor.
void settle_all_deferred_zeros();
// Drops t's mark without filling (its owner releases it).
void drop_deferred_zero(const Tensor& t);
// Whether anything is marked (a lock-free check for the ops' fast path).
bool any_deferred_zero();

}  // namespace mambalm::ops
