// The Mamba-1 selective scan's "channel layout" for small states (N <= 32; Mamba-1 uses N = 16),
// shared by the forward (selective_scan.cu) and the backward (selective_scan_backward_channels.cu):
//
//   h_t = a_t h_{t-1} + delta_t u_t B_t,  a_t = exp(delta_t A)   (h_{t-1} := 0 at a document start)
//   p_t = h_t . C_t + D u_t;   y_t = p_t silu(z_t)
//
// LPC adjacent lanes own one channel (b, d), each holding S of its states in registers (the
// forward: S = kScanStates = 8, LPC = ceil(N / 8) = 1, 2 or 4; the backward: S = 4 up to
// N = 16). States past N are padded with A = B = C = 0, which keeps them at zero (a = exp(0) =
// 1, nothing added) and out of every sum. A block owns kScanChannels = 64 consecutive channels
// of one batch row (64 LPC threads); time runs in order inside each thread. Per step a thread
// does S exps and ~4 S flops on values staged in shared memory, and the only cross-lane work is
// the sum over the LPC lanes of a channel: no per-step global loads and no 32-lane shuffle trees
// (the warp-per-channel layout of the N > 32 kernels spends ~150 instructions per step there).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/ptx.cuh"

namespace mambalm::ops::cuda {

constexpr int kScanStates = 8;     // states per lane
constexpr int kScanChannels = 64;  // channels per block

// Lanes per channel for state size N (0: the channel layout does not apply).
inline int scan_channel_lanes(int64_t N) { return N <= 8 ? 1 : N <= 16 ? 2 : N <= 32 ? 4 : 0; }

// Sum over the LPC adjacent lanes of a channel; every one of them gets the result.
template <int LPC>
__device__ __forceinline__ float channel_lanes_sum(float v) {
#pragma unroll
  for (int o = 1; o < LPC; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr float kLog2e = 1.4426950408889634f;

// A's row for the scans' decays: 2^(delta A2) = exp(delta A) with A2 = A log2(e), so each decay
// is one multiply and one MUFU ex2 (flushing denormals: a decay below 2^-126 is zero to every
// digit that matters). expf spent ~8 instructions per decay on range reduction and __expf 4 on
// denormal handling; the decays are B T Di N per scan, and the scans are issue-bound
// (Nsight Compute at mamba-26m's shape: 70-75% of issue slots busy; bench/NOTES.md).
__device__ __forceinline__ float scan_decay(float dl, float A2) { return fast_exp2(dl * A2); }
// The same with an offset kl in the exponent: 0, or -inf at a document start, where the decay
// becomes 2^-inf = 0 and the state before the start counts for nothing. The start costs no
// branch and no instruction (the multiply becomes a fused multiply-add).
__device__ __forceinline__ float scan_decay(float dl, float A2, float kl) { return fast_exp2(fmaf(dl, A2, kl)); }

// Silu for the scans' gate, off their serial path: approximate exp and division (relative error
// ~1e-7, docs/numerics.md).
__device__ __forceinline__ float scan_silu(float x) { return __fdividef(x, 1.0f + __expf(-x)); }

// One recurrence step of a lane's S states (S a multiple of 4): hout = 2^(dl A2 (+ kl)) hin + dl u B.
// B points at this lane's S staged values (16-byte aligned). kDocs: kl is the step's document
// offset (scan_decay: -inf at a start); without documents there is none.
template <bool kDocs = false, int S>
__device__ __forceinline__ void scan_channel_step(const float (&A2)[S], float dl, float dlu, const float* B,
                                                  const float (&hin)[S], float (&hout)[S], float kl = 0.0f) {
#pragma unroll
  for (int q = 0; q < S / 4; ++q) {
    const float4 b = *reinterpret_cast<const float4*>(B + 4 * q);
    const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int s = 4 * q + k;
      const float a = kDocs ? scan_decay(dl, A2[s], kl) : scan_decay(dl, A2[s]);
      hout[s] = a * hin[s] + dlu * bv[k];
    }
  }
}

// S values at p (16-byte aligned) into registers.
template <int S>
__device__ __forceinline__ void load_lane_values(const float* p, float (&v)[S]) {
#pragma unroll
  for (int q = 0; q < S / 4; ++q) {
    const float4 x = *reinterpret_cast<const float4*>(p + 4 * q);
    v[4 * q] = x.x;
    v[4 * q + 1] = x.y;
    v[4 * q + 2] = x.z;
    v[4 * q + 3] = x.w;
  }
}

}  // namespace mambalm::ops::cuda
