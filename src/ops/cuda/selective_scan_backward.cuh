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
  // [B, Di] or null: delta was softplus(raw + bias) and ddelta is written w.r.t. raw (times
  // 1 - exp(-delta)); its sums per batch row (ddelta_bias). Channel layout only.
  double* part_bias;
  int Bsz, T, Di, N, nc, nblk;
};

// The outputs finished from the partials: dB, dC assigned; dA, dD, dbias += (null: not wanted).
struct ScanSums {
  float *dB, *dC, *dA, *dD, *dbias;
};

// Points a.ckpt, a.part_bc, a.part_A, a.part_D, a.part_bias into `scratch` for a.nc checkpoint
// chunks and a.nblk channel blocks (the dA / dD / dbias partials only when wanted).
void scan_backward_scratch(ScanArgs& a, GrowOnlyBuffer& scratch, const ScanSums& out, const char* op);

// dB, dC from the channel blocks' partials; dA, dD and dbias from the batch rows' partials.
void scan_backward_reduce(const ScanArgs& a, const ScanSums& out, const char* op);

// The channel-layout backward (N <= 32); false when it does not apply.
bool selective_scan_backward_channels(ScanArgs a, GrowOnlyBuffer& scratch, const ScanSums& out, const char* op);

}  // namespace mambalm::ops::cuda
