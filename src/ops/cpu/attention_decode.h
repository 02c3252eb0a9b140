// The CPU's one-query-per-head attention (decode) with an explicitly chosen kernel variant, so
// tests can run every variant the machine supports (as for the GEMV kernels, ops/cpu/gemv.h).
// ops::attention_decode runs the variant of active_isa(). Defined in attention.cpp.
#pragma once

#include "core/tensor.h"
#include "ops/cpu/cpu_features.h"

namespace mambalm::ops::cpu {

// attention_decode (ops.h) with the kernel of `isa`, which must be supported (isa_supported).
void attention_decode_isa(Isa isa, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                          const Tensor& lengths, float scale, Tensor& out);

}  // namespace mambalm::ops::cpu
