// The prefill product against Q8 weights in integer SIMD: y[m, n] = sum_k w[n, k] x[m, k]
// (+ bias[n]) for many rows m of x, with x rounded per block of 32 by quantize_x_for_q8 (the
// rounding the decode GEMV makes, gemv.h). Per (m, n) and block b it sums the 32 int8 x int16
// products exactly in int32, then adds (dw dx) times that sum in fp32, block after block: the
// sums of rows_q8 in gemv.cpp, in the same order.
//
// Why: on a CPU whose fp32 rate bounds the prefill (AVX2 without AVX-512), an int16 multiply-add
// does twice the products of an fp32 FMA per instruction, and the weights are read as the 8-bit
// values they are instead of being widened to fp32 for sgemm on every call (bench/NOTES.md,
// "Integer Q8 prefill").
//
// Weights are packed 16 (AVX2) or 32 (AVX-512) columns, rows of w, at a time into a per-thread
// panel: per block, 16 pairs of k times the columns' int16 pairs, so that one 256-bit madd
// multiplies 8 columns by 2 values of k of one row of x (a 512-bit vpdpwssd 16 columns).
#pragma once
#include <cstdint>

#include "ops/cpu/cpu_features.h"

namespace mambalm::ops::cpu {

// x [M, K] fp32, w [N, K] Q8 (q8_format.h), bias [N] or null, y [M, N]; on the calling thread's
// OpenMP team. The result does not depend on the thread count.
using GemmQ8Fn = void (*)(const float* x, int64_t M, const void* w, int64_t N, int64_t K, const float* bias,
                          float* y);

// The kernel for `isa`, or null where there is none (Neon and scalar: linear() widens the
// weights for sgemm there). The AVX-512 variants run 512-bit tiles with vpdpwssd where the CPU
// has AVX512-VNNI (cpu_features.h), else the AVX2 tiles.
GemmQ8Fn gemm_q8_kernel(Isa isa);

}  // namespace mambalm::ops::cpu
