// Mamba-1 selective scan on CUDA, time in order with the state in registers. With document ids
// the state restarts from zero at each document start. Two layouts:
//   - N <= 32 (Mamba-1's N = 16): the channel layout (selective_scan_channels.cuh), 1-4 lanes per
//     channel, a chunk of steps' inputs staged in shared memory with coalesced loads and the
//     chunk's outputs written back the same way;
//   - larger N: one warp per (sequence, channel); lanes split the state dimension N and combine
//     with warp shuffles.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/selective_scan_channels.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kWarps = 8;  // warps per block

// Selective scan: one warp per (b, channel d); lane owns n = lane + 32 k.
template <int NK>
__global__ void __launch_bounds__(kWarps * 32)
selective_scan_kernel(const float* __restrict__ u, const float* __restrict__ delta,
                      const float* __restrict__ A, const float* __restrict__ Bm,
                      const float* __restrict__ Cm, const float* __restrict__ D,
                      const float* __restrict__ z, const int32_t* __restrict__ seq, float* state,
                      float* __restrict__ y, float* __restrict__ chunk_states, int Bsz, int T, int Di, int N) {
  const int lane = threadIdx.x & 31;
  const int64_t wid = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(Bsz) * Di) return;  // whole warp leaves together
  const int b = int(wid / Di), d = int(wid % Di);
  float hs[NK], Ad[NK];
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int n = lane + 32 * k;
    Ad[k] = n < N ? A[int64_t(d) * N + n] : 0.0f;
    hs[k] = (state && n < N) ? state[(int64_t(b) * Di + d) * N + n] : 0.0f;
  }
  const float Dd = D ? D[d] : 0.0f;
  for (int t = 0; t < T; ++t) {
    const int64_t bt = int64_t(b) * T + t;
    const int64_t row = bt * Di + d;
    const float dl = delta[row], uv = u[row];
    const float du = dl * uv;
    if (chunk_states && t % kScanStateChunk == 0) {  // [B, nc, Di, N]: the state entering step t
      const int64_t o = ((int64_t(b) * ((T + kScanStateChunk - 1) / kScanStateChunk) + t / kScanStateChunk) * Di + d) * N;
#pragma unroll
      for (int k = 0; k < NK; ++k)
        if (lane + 32 * k < N) chunk_states[o + lane + 32 * k] = hs[k];
    }
    if (seq && t > 0 && seq[bt] != seq[bt - 1]) {  // a new document starts from a zero state
#pragma unroll
      for (int k = 0; k < NK; ++k) hs[k] = 0.0f;
    }
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int n = lane + 32 * k;
      const float bn = n < N ? Bm[bt * N + n] : 0.0f;
      const float cn = n < N ? Cm[bt * N + n] : 0.0f;
      const float s = expf(dl * Ad[k]) * hs[k] + du * bn;
      hs[k] = s;
      acc += s * cn;
    }
    acc = warp_sum(acc);
    if (lane == 0) {
      float out = acc + Dd * uv;
      if (z) out *= silu_f(z[row]);
      y[row] = out;
    }
  }
  if (state) {
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int n = lane + 32 * k;
      if (n < N) state[(int64_t(b) * Di + d) * N + n] = hs[k];
    }
  }
}

// chunk_states[b, t / K, d, lane j's states] = h (K = kScanStateChunk; t a multiple of K): 32
// bytes per lane, so a warp writes 16 channels' rows of one chunk in one contiguous kilobyte.
__device__ __forceinline__ void store_chunk_state(float* chunk_states, int b, int t, int T, int Di, int N, int d, int j,
                                                  const float (&h)[kScanStates]) {
  const int nc = (T + kScanStateChunk - 1) / kScanStateChunk;
  float* o = chunk_states + ((int64_t(b) * nc + t / kScanStateChunk) * Di + d) * N + j * kScanStates;
  if (N % kScanStates == 0) {  // every state of the lane is real; 16-byte aligned
    reinterpret_cast<float4*>(o)[0] = make_float4(h[0], h[1], h[2], h[3]);
    reinterpret_cast<float4*>(o)[1] = make_float4(h[4], h[5], h[6], h[7]);
    return;
  }
#pragma unroll
  for (int s = 0; s < kScanStates; ++s)
    if (j * kScanStates + s < N) o[s] = h[s];
}

// Steps staged per chunk by the channel-layout kernel. 16 (not 32) and at most 64 registers let 8
// blocks share an SM: at mamba-26m's training shape (B 64 x 16 channel blocks = 1,024 blocks) the
// grid then runs as one wave, where 6 blocks per SM (36 KB of staging, 80 registers) made two
// (H200, 2026-12-01: 1.40 -> 1.25 ms a layer).
constexpr int kFwdSteps = 16;

// Channel layout: a block owns kScanChannels channels of batch row blockIdx.y; lane j of channel
// c holds states n = 8 j .. 8 j + 7. The serial loop does only the recurrence and h . C (fully
// unrolled over a chunk, so every shared-memory offset is a constant); D u and the gate are
// applied when the chunk's outputs are written back, by every thread rather than one lane of
// each channel. kDocs: seq (document ids) is given.
template <int LPC, bool kDocs>
__global__ void __launch_bounds__(kScanChannels * LPC, 1024 / (kScanChannels * LPC))
selective_scan_channels_kernel(const float* __restrict__ u, const float* __restrict__ delta,
                               const float* __restrict__ A, const float* __restrict__ Bm,
                               const float* __restrict__ Cm, const float* __restrict__ D,
                               const float* __restrict__ z, const int32_t* __restrict__ seq, float* state,
                               float* __restrict__ y, float* __restrict__ chunk_states, int T, int Di, int N) {
  static_assert(kFwdSteps % kScanStateChunk == 0, "chunk_states are written at staged steps' starts");
  constexpr int CH = kScanChannels, NP = kScanStates * LPC, kBlockThreads = CH * LPC, TS = kFwdSteps;
  static_assert(kBlockThreads % CH == 0, "a thread writes back one channel");
  // [TS, CH] inputs and h . C of the chunk's steps; [TS, NP] B and C rows (zeros past N and T:
  // a step of zeros leaves the state as it is)
  __shared__ float s_u[TS][CH], s_dl[TS][CH], s_z[TS][CH], s_y[TS][CH];
  __shared__ __align__(16) float s_B[TS][NP];
  __shared__ __align__(16) float s_C[TS][NP];
  __shared__ int s_reset[TS];
  const int tid = threadIdx.x, c = tid / LPC, j = tid % LPC;
  const int b = blockIdx.y, d0 = blockIdx.x * CH, d = d0 + c;
  const bool active = d < Di;
  float A2[kScanStates], h[kScanStates];
#pragma unroll
  for (int s = 0; s < kScanStates; ++s) {
    const int n = j * kScanStates + s;
    const bool real = active && n < N;
    A2[s] = real ? A[int64_t(d) * N + n] * kLog2e : 0.0f;
    h[s] = (real && state) ? state[(int64_t(b) * Di + d) * N + n] : 0.0f;
  }
  // Staging and write-back: thread tid moves channel wch's rows row0, row0 + RS, ... of a chunk
  // (kBlockThreads is a multiple of CH), so its addresses step by Di from one base.
  constexpr int RS = kBlockThreads / CH;
  const int wch = tid % CH, row0 = tid / CH;
  const bool wch_in = d0 + wch < Di;
  const float Dw = (D && wch_in) ? D[d0 + wch] : 0.0f;
  const int32_t* seq_b = kDocs ? seq + int64_t(b) * T : nullptr;
  for (int c0 = 0; c0 < T; c0 += TS) {
    const int L = min(TS, T - c0);
    const int64_t base = (int64_t(b) * T + c0) * Di + d0 + wch;
    __syncthreads();  // the previous chunk's s_u and s_y are written out
#pragma unroll 4  // 12 loads in flight; all 8 rows at once spill under the 64-register cap
    for (int k = 0; k < TS / RS; ++k) {
      const int i = row0 + k * RS;
      const bool in = wch_in && i < L;
      const int64_t o = base + int64_t(i) * Di;
      s_u[i][wch] = in ? u[o] : 0.0f;
      s_dl[i][wch] = in ? delta[o] : 0.0f;
      s_z[i][wch] = (in && z) ? z[o] : 0.0f;
    }
    const float* Bc = Bm + (int64_t(b) * T + c0) * N;
    const float* Cc = Cm + (int64_t(b) * T + c0) * N;
#pragma unroll
    for (int k = 0; k < (TS * NP + kBlockThreads - 1) / kBlockThreads; ++k) {
      const unsigned e = unsigned(tid + k * kBlockThreads);
      if (e >= unsigned(TS * NP)) break;
      const int i = int(e / NP), n = int(e % NP);
      const bool in = i < L && n < N;
      s_B[i][n] = in ? Bc[i * N + n] : 0.0f;
      s_C[i][n] = in ? Cc[i * N + n] : 0.0f;
    }
    if constexpr (kDocs) {
      for (int i = tid; i < TS; i += kBlockThreads) {
        const int t = c0 + i;
        s_reset[i] = i < L && t > 0 && seq_b[t] != seq_b[t - 1];
      }
    }
    __syncthreads();
    // The chunk's document starts as a mask (one ballot per warp), each entering its step's
    // decays as the exponent offset -inf (scan_decay): the state before a start counts for
    // nothing, with no branch in the unrolled steps.
    const unsigned resets = kDocs ? __ballot_sync(0xffffffffu, (threadIdx.x & 31) < TS && s_reset[threadIdx.x & 31]) : 0u;
#pragma unroll
    for (int i = 0; i < TS; ++i) {
      if (chunk_states && i % kScanStateChunk == 0 && active && c0 + i < T)
        store_chunk_state(chunk_states, b, c0 + i, T, Di, N, d, j, h);
      const float dl = s_dl[i][c];
      scan_channel_step<kDocs>(A2, dl, dl * s_u[i][c], &s_B[i][j * kScanStates], h, h,
                               (resets >> i) & 1u ? -INFINITY : 0.0f);
      const float4 c0v = *reinterpret_cast<const float4*>(&s_C[i][j * kScanStates]);
      const float4 c1v = *reinterpret_cast<const float4*>(&s_C[i][j * kScanStates + 4]);
      const float acc0 = h[0] * c0v.x + h[1] * c0v.y + h[2] * c0v.z + h[3] * c0v.w;
      const float acc1 = h[4] * c1v.x + h[5] * c1v.y + h[6] * c1v.z + h[7] * c1v.w;
      const float acc = channel_lanes_sum<LPC>(acc0 + acc1);
      if (j == 0) s_y[i][c] = acc;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < TS / RS; ++k) {
      const int i = row0 + k * RS;
      if (!wch_in || i >= L) continue;
      float out = s_y[i][wch] + Dw * s_u[i][wch];
      if (z) out *= scan_silu(s_z[i][wch]);
      y[base + int64_t(i) * Di] = out;
    }
  }
  if (state && active) {
#pragma unroll
    for (int s = 0; s < kScanStates; ++s) {
      const int n = j * kScanStates + s;
      if (n < N) state[(int64_t(b) * Di + d) * N + n] = h[s];
    }
  }
}
}  // namespace

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx, Tensor* state, Tensor& y,
                    Tensor* chunk_states) {
  const int64_t Bsz = u.dim(0), T = u.dim(1), Di = u.dim(2), N = A.dim(1);
  float* cs = chunk_states ? chunk_states->f32() : nullptr;
  if (Bsz * Di == 0) return;
  const unsigned blocks = unsigned((Bsz * Di + kWarps - 1) / kWarps);
  const float* Dp = D ? D->f32() : nullptr;
  const float* zp = z ? z->f32() : nullptr;
  float* sp = state ? state->f32() : nullptr;
  const int32_t* seq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  if (const int lpc = scan_channel_lanes(N)) {
    const dim3 grid(unsigned((Di + kScanChannels - 1) / kScanChannels), unsigned(Bsz));
#define MAMBALM_CHANNELS_LAUNCH(LPC)                                                                      \
  (seq ? selective_scan_channels_kernel<LPC, true><<<grid, kScanChannels * LPC>>>(                               \
             u.f32(), delta.f32(), A.f32(), Bm.f32(), Cm.f32(), Dp, zp, seq, sp, y.f32(), cs, int(T), int(Di), int(N)) \
       : selective_scan_channels_kernel<LPC, false><<<grid, kScanChannels * LPC>>>(                              \
             u.f32(), delta.f32(), A.f32(), Bm.f32(), Cm.f32(), Dp, zp, seq, sp, y.f32(), cs, int(T), int(Di), int(N)))
    if (lpc == 1) MAMBALM_CHANNELS_LAUNCH(1);
    else if (lpc == 2) MAMBALM_CHANNELS_LAUNCH(2);
    else MAMBALM_CHANNELS_LAUNCH(4);
#undef MAMBALM_CHANNELS_LAUNCH
    check_launch("selective_scan");
    return;
  }
#define MAMBALM_SCAN_LAUNCH(NK)                                                                  \
  selective_scan_kernel<NK><<<blocks, kWarps * 32>>>(u.f32(), delta.f32(), A.f32(), Bm.f32(),       \
                                                     Cm.f32(), Dp, zp, seq, sp, y.f32(), cs, int(Bsz), \
                                                     int(T), int(Di), int(N))
  switch (lanes_k(N, "selective_scan")) {
    case 1: MAMBALM_SCAN_LAUNCH(1); break;
    case 2: MAMBALM_SCAN_LAUNCH(2); break;
    case 4: MAMBALM_SCAN_LAUNCH(4); break;
    default: MAMBALM_SCAN_LAUNCH(8); break;
  }
#undef MAMBALM_SCAN_LAUNCH
  check_launch("selective_scan");
}

}  // namespace mambalm::ops::cuda
