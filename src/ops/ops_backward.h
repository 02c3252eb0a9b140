// Op-level backward passes, hand-written (llm.c style), one per forward op of ops.h that training
// needs. Every backward recomputes what it needs from the forward's *inputs* (no hidden saved
// state); callers keep the forward inputs alive until backward.
//
// Conventions (F32 tensors on one device; shapes checked as in ops.h):
// - `dy` is the gradient of the loss w.r.t. the forward output.
// - Activation gradients (dx, dq, du, ...) are ASSIGNED (overwritten).
// - Parameter gradients (dw, db, dA, dD, dt_bias, dtable, ...) are ACCUMULATED (+=): zero them
//   once per optimizer step, then gradient accumulation over micro-batches is free
//   (Model::zero_grads defers the fill to the first writer: ops/deferred_zero.h).
// - A pointer output may be null when that gradient is not wanted (frozen or absent parameter).
// - Unless said otherwise an output may not alias an input; the elementwise backwards allow
//   dx to alias dy.
//
// Packed documents: `seq_idx` as in ops.h (null = one document per row); the backward of an op
// takes the seq_idx its forward had.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "ops/ops.h"

namespace mambalm::ops {

#include "ops/backward_ops.inc"

}  // namespace mambalm::ops
