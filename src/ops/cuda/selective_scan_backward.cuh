// Shared by the two layouts of the Mamba-1 selective scan's backward on CUDA
// (selective_scan_backward.cu: warp per channel, any N; selective_scan_backward_channels.cu:
// the channel layout for N <= 32): the kernels' arguments, their scratch and the deterministic
// reductions that finish dB, dC, dA and dD from per-block partials.
#pragma once
#include <cstdint>

#include "ops/cuda/cuda_common.cuh"

namespace mambalm::ops::cuda {

struct ScanArgs {
  const float *u, *delta, *A, *Bm, *Cm, *D, *z;
  const int32_t* seq;
  const float *h0, *dhT, *dy;
  float *du, *ddelta, *dz, *dh0;
  const float* chunk_states;  // the forward's [B, nc, Di, N] (channel layout only) or null
  float* ckpt;        // scratch for the states entering each chunk, when chunk_states is null
  float* part_bc;     // [2][nblk][B, T, N]
  double* part_A;     // [B, Di, N] or null
  double* part_D;     // [B, Di] or null
  int Bsz, T, Di, N, nc, nblk;
};

// Points a.ckpt, a.part_bc, a.part_A, a.part_D into `scratch` for a.nc checkpoint chunks and
// a.nblk channel blocks (dA / dD partials only when wanted).
void scan_backward_scratch(ScanArgs& a, GrowOnlyBuffer& scratch, bool want_dA, bool want_dD, const char* op);

// dB, dC (assigned) from the channel blocks' partials; dA, dD (+=) from the batch rows' partials.
void scan_backward_reduce(const ScanArgs& a, float* dB, float* dC, float* dA, float* dD, const char* op);

// The channel-layout backward (N <= 32); false when it does not apply.
bool selective_scan_backward_channels(ScanArgs a, GrowOnlyBuffer& scratch, float* dB, float* dC, float* dA, float* dD,
                                      const char* op);

}  // namespace mambalm::ops::cuda
