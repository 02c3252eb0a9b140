// Backend-neutral op declarations: the forward ops (ops/forward_ops.inc; the backward passes
// are in ops/ops_backward.h). Every op checks dtypes, shapes, devices and aliasing once
// (ops/dispatch.cpp, with ops/checks.h), then runs on the device of its tensors: ops/cpu/ (the
// reference) or ops/cuda/; both backends implement the same list, declared from the same file. Activations are F32; stored operands (weights, embedding
// tables, KV caches) may be BF16 on CUDA where an op says so. Ops know nothing of layers: they
// see shapes and numbers.
//
// Layout conventions: activations are [B, T, ...] row-major (batch, time, features).
// Outputs are assigned (never accumulated) and must be preallocated by the caller with the
// documented shape; an op may not alias its output with an input unless it says so.
//
// Packed documents: an op that takes `seq_idx` (I32 [B, T], one document id per token; null =
// one document per row) treats token t as the start of a new document when t > 0 and
// seq_idx[b, t] != seq_idx[b, t-1]: there the conv history and the SSM state restart from zero,
// and attention never looks across a document start.
#pragma once
#include <cstdint>
#include <initializer_list>

#include "core/tensor.h"

namespace mambalm::ops {

struct CrossEntropyResult {
  double mean_loss = 0.0;  // sum_loss / n_valid (0 when n_valid == 0)
  double sum_loss = 0.0;   // sum over non-ignored rows of -log softmax(logits)[target]
  int64_t n_valid = 0;     // rows whose target != -1
};

#include "ops/forward_ops.inc"

}  // namespace mambalm::ops
