// One block of channels of the Mamba-1 inference scan (selective_scan.cpp), as a kernel that an
// instruction set may replace, so that tests can run every variant (as attention_decode.h does).
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "ops/cpu/cpu_features.h"

namespace mambalm::ops::cpu {

// Channels [d0, d0 + nd) of one sequence over its T steps (pointers already at the sequence and,
// for the [T, Di] rows, at channel d0):
//   h[d, n] = exp(delta_t[d] A[d, n]) h[d, n] + delta_t[d] u_t[d] B_t[n]
//   y_t[d]  = (sum_n h[d, n] C_t[n] + D[d] u_t[d]) * silu(z_t[d])   (D, z optional)
struct ScanBlock {
  int64_t T = 0, Di = 0, N = 0, nd = 0;
  const float* u = nullptr;      // [T, Di] row stride Di
  const float* delta = nullptr;  // [T, Di]
  const float* z = nullptr;      // [T, Di] or null
  const float* A = nullptr;      // [nd, N]
  const float* Bm = nullptr;     // [T, N]
  const float* Cm = nullptr;     // [T, N]
  const float* D = nullptr;      // [nd] or null
  float* h = nullptr;            // [nd, N], updated in place
  float* y = nullptr;            // [T, Di]
};

// Channels one call of the AVX-512 kernel takes (one lane each in its reductions).
constexpr int64_t kScanBlockAvx512 = 16;

// The portable loop (any nd, N).
void selective_scan_block_portable(const ScanBlock& s);

#if defined(__x86_64__)
// AVX-512 F: nd == kScanBlockAvx512 and N a multiple of 16 (a state row is whole 16-lane
// vectors). Each channel's products h C come out as one vector, and the block's 16 vectors are
// summed into one vector of 16 channel sums by a transposing tree; the exps, the SiLU and the
// D term are 16 lanes wide.
inline bool scan_block_avx512_fits(int64_t nd, int64_t N) { return nd == kScanBlockAvx512 && N > 0 && N % 16 == 0; }
void selective_scan_block_avx512(const ScanBlock& s);
#endif

// The kernel of `isa` for this block: AVX-512 where it fits, else the portable loop.
void selective_scan_block(Isa isa, const ScanBlock& s);

// selective_scan (ops.h) without documents or chunk states, shapes already checked, with the
// blocks of `isa` (which must be supported). ops::selective_scan runs active_isa()'s.
void selective_scan_isa(Isa isa, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                        const Tensor& Cm, const Tensor* D, const Tensor* z, Tensor* state, Tensor& y);

}  // namespace mambalm::ops::cpu
