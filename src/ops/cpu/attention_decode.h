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

#if defined(__x86_64__)
// The decode that reads the cache in memory order (attention_decode_x86.cpp): AVX2+FMA for Dh a
// multiple of 16, or (avx512, on a CPU with AVX-512 F and BW) 16-lane vectors for Dh a multiple
// of 32. The variants Avx2, Avx512 and Avx512Bf16 of attention_decode_isa take the widest that
// fits the head size; the others loop head by head.
inline bool decode_x86_fits(int64_t Dh, bool avx512) { return Dh > 0 && Dh % (avx512 ? 32 : 16) == 0; }
void attention_decode_x86(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                          float scale, bool avx512, Tensor& out);
#endif

}  // namespace mambalm::ops::cpu
