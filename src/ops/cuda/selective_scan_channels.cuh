// The Mamba-1 selective scan's "channel layout" for small states (N <= 32; Mamba-1 uses N = 16),
// shared by the forward (selective_scan.cu) and the backward (selective_scan_backward_channels.cu):
//
//   h_t = a_t h_{t-1} + delta_t u_t B_t,  a_t = exp(delta_t A)   (h_{t-1} := 0 at a document start)
//   p_t = h_t . C_t + D u_t;   y_t = p_t silu(z_t)
//
// LPC = ceil(N / 8) adjacent lanes (1, 2 or 4) own one channel (b, d), each holding kStates = 8 of
// its states in registers; states past N are padded with A = B = C = 0, which keeps them at zero
// (a = exp(0) = 1, nothing added) and out of every sum. A block owns kChannels = 64 consecutive
// channels of one batch row (64 LPC threads); time runs in order inside each thread. Per step a
// thread does 8 exps and ~30 flops on values staged in shared memory, and the only cross-lane
// work is the sum over the LPC lanes of a channel: no per-step global loads and no 32-lane
// shuffle trees (the warp-per-channel layout of the N > 32 kernels spends ~150 instructions per
// step there).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

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

// One recurrence step of a lane's 8 states: hout = exp(dl A) hin + dl u B (hin dropped at a
// document start). B points at this lane's 8 staged values (16-byte aligned).
__device__ __forceinline__ void scan_channel_step(const float (&A)[kScanStates], float dl, float dlu, bool reset,
                                                  const float* B, const float (&hin)[kScanStates],
                                                  float (&hout)[kScanStates]) {
  const float4 b0 = *reinterpret_cast<const float4*>(B), b1 = *reinterpret_cast<const float4*>(B + 4);
  const float Bv[kScanStates] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
  for (int s = 0; s < kScanStates; ++s) hout[s] = expf(dl * A[s]) * (reset ? 0.0f : hin[s]) + dlu * Bv[s];
}

}  // namespace mambalm::ops::cuda
