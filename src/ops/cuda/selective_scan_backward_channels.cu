// Backward of the Mamba-1 selective scan for N <= 32 in the channel layout
// (selective_scan_channels.cuh): LPC lanes per channel, S states per lane (4 up to N = 16, else
// 8), 64 channels of one batch row per block. The arithmetic is the warp layout's (selective_scan_backward.cu, which
// derives it); what changes is who does it:
//   1. each lane walks t forwards from the initial state and stores the state entering every
//      chunk of QC = 8 steps (scratch [B, nchunks, Di, N]), unless the forward kept them
//      (chunk_states, the same layout): then this walk, about a quarter of the kernel, is skipped;
//   2. the chunks in reverse: the QC states recomputed into registers from the stored one, then
//      the steps walked backwards.
// Both walks read a chunk's inputs from shared memory, copied there asynchronously (cp.async)
// while the chunk before is computed, so the serial steps never wait on global memory.
// dB_t and dC_t sum over channels. Each step's 16 terms per lane (8 states x {dB, dC}) are
// summed over the warp's channels by a reduce-scatter (15 shuffles for 16 values over 16
// lanes, instead of 16 x 4 for a plain butterfly), each lane keeping the sums of 1-2 of them;
// the warps' sums go to shared memory and after the chunk the block adds its warps in order and
// writes one partial row per (channel block, t), which scan_backward_reduce adds in block order.
// dA and dD sum each lane's walk (per chunk in fp32, across chunks in double) into per-batch-row
// partials. No atomics: results are bit-identical from run to run. With part_bias (delta was
// softplus(raw + bias)), ddelta is scaled by the softplus's derivative 1 - exp(-delta) as it is
// written out (each writing thread keeps its rows' delta in registers from the chunk's arrival)
// and summed per channel into the bias's partials: the separate softplus backward (three
// [B, T, Di] streams, 4.2 ms x15 at mamba-26m) is gone.
//
// Cost per (b, t, d) with the forward's states: 2 x N exps (recompute, backward) and ~15 N flops,
// 7 floats of activations (u, delta, z, dy in; du, ddelta, dz out) and N / 8 floats of chunk
// states. At mamba-26m's training shape (B T = 65536, Di 1024, N 16) Nsight Compute counted 1.59e9
// warp instructions (~190 per warp and step, from 329 before the decays went to one MUFU each and
// the per-step address and gate work left the serial loop) at 64% of the issue slots: 2.37 ms
// (H200, 2026-12-01; bench/NOTES.md). It is issue-bound, with some latency left at 16 warps per SM.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/ptx.cuh"
#include "ops/cuda/selective_scan_backward.cuh"
#include "ops/cuda/selective_scan_channels.cuh"
#include "ops/ops.h"

namespace mambalm::ops::cuda {

namespace {

constexpr int kChunk = 8;  // QC: steps per register chunk and checkpoint interval
static_assert(kChunk == kScanStateChunk, "the forward's chunk_states are this kernel's checkpoints");

// Sums v[0 .. W) over the warp's lanes that differ in lane bits O, O/2, ..., LPC (the warp's
// channels; the bits below LPC are the lanes of one channel). While W > 1 each level keeps half
// of the values (the upper half on lanes with the bit set) and adds the partner's other half;
// once one value is left the levels add it plainly. On return v[0 .. W') holds the sums of
// values scattered_base(lane) .. + W' - 1, W' = W >> (number of halving levels).
template <int O, int W, int LPC, int V>
__device__ __forceinline__ void channels_reduce_scatter(float (&v)[V], int lane) {
  if constexpr (O >= LPC) {
    if constexpr (W > 1) {
      constexpr int H = W / 2;
      const bool upper = (lane & O) != 0;
#pragma unroll
      for (int k = 0; k < H; ++k) {
        const float send = upper ? v[k] : v[k + H];
        const float keep = upper ? v[k + H] : v[k];
        v[k] = keep + __shfl_xor_sync(0xffffffffu, send, O);
      }
      channels_reduce_scatter<O / 2, H, LPC, V>(v, lane);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], O);
      channels_reduce_scatter<O / 2, 1, LPC, V>(v, lane);
    }
  }
}

// The index of the first value a lane keeps in channels_reduce_scatter<16, W, LPC>: a function of
// the lane alone, so it is computed once rather than on every step.
template <int W, int LPC>
__device__ __forceinline__ int scattered_base(int lane) {
  int base = 0, w = W;
  for (int o = 16; o >= LPC && w > 1; o /= 2) {
    w /= 2;
    if (lane & o) base += w;
  }
  return base;
}

// Values each lane holds after the reduce-scatter of 2 S values.
template <int S, int LPC>
__host__ __device__ constexpr int scattered_values() {
  int w = 2 * S;
  for (int o = 16; o >= LPC && w > 1; o /= 2) w /= 2;
  return w;
}

// S states per lane, LPC lanes per channel. With S = 4 two blocks must fit an SM (<= 128 registers
// at 256 threads: measured without spills). kDocs: p.seq (document ids) is given.
template <int S, int LPC, bool kDocs>
__global__ void __launch_bounds__(kScanChannels * LPC, S == 4 ? 2 : 1)
selective_scan_backward_channels_kernel(const ScanArgs p) {
  constexpr int CH = kScanChannels, NP = S * LPC, QC = kChunk;
  constexpr int kBlockThreads = CH * LPC, kBlockWarps = kBlockThreads / 32;
  static_assert(kBlockThreads % CH == 0, "a thread writes out one channel");
  // The inputs of a chunk of steps, double-buffered: the next chunk's async copies are in flight
  // while this one is computed. Zeros past T, Di and N; seq holds the document ids of steps
  // c0 - 1 .. c0 + QC - 1 (the resets compare neighbours). With a gate z, dy and z are
  // replaced in place by the gate's factors once the chunk is in (see `gates` below).
  __shared__ float s_u[2][QC][CH], s_dl[2][QC][CH], s_dy[2][QC][CH], s_z[2][QC][CH];
  __shared__ __align__(16) float s_B[2][QC][NP];
  __shared__ __align__(16) float s_C[2][QC][NP];
  __shared__ int32_t s_seq[2][QC + 1];
  __shared__ float xb[kBlockWarps][QC][2 * NP];  // each warp's dB (first NP) and dC terms per step
  __shared__ float s_grad[3][QC][CH];             // the chunk's du, ddelta and dz, written out together

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, c = tid / LPC, j = tid % LPC;
  const int b = blockIdx.y, d0 = blockIdx.x * CH, d = d0 + c;
  const int T = p.T, N = p.N, Di = p.Di;
  const bool active = d < Di;  // inactive lanes see zeros everywhere and write nothing
  const int64_t chan = int64_t(b) * Di + (active ? d : 0);
  const int32_t* seq = kDocs ? p.seq + int64_t(b) * T : nullptr;

  float A2[S], h[S];  // A2 = A log2(e) (scan_decay)
  bool real[S];       // this lane's state s is one of the N
#pragma unroll
  for (int s = 0; s < S; ++s) {
    const int n = j * S + s;
    real[s] = active && n < N;
    A2[s] = real[s] ? p.A[int64_t(d) * N + n] * kLog2e : 0.0f;
    h[s] = (p.h0 && real[s]) ? p.h0[chan * N + n] : 0.0f;
  }
  const float Dd = (p.D && active) ? p.D[d] : 0.0f;
  // The state entering chunk ci of this lane's channel: [B, nc, Di, N]
  const int dch = active ? d : 0;
  auto entry = [&](int ci) { return int64_t(b * p.nc + ci) * Di * N + int64_t(dch) * N + j * S; };
  const float* states = p.chunk_states ? p.chunk_states : p.ckpt;

  // Issues the copies of steps [c0, c0 + L) into buffer `buf` (u, delta, B, the document ids
  // and, with `backward`, dy, z, C) as one commit group. The buffer's last readers must be past
  // a barrier; the data is in after cp_async_wait and a barrier.
  // Thread tid stages (and writes out) channel wch's rows row0, row0 + RS, ... of a chunk
  // (kBlockThreads is a multiple of CH), so its addresses step by Di from one base.
  constexpr int RS = kBlockThreads / CH;
  const int wch = tid % CH, row0 = tid / CH;
  const bool wch_in = d0 + wch < Di;
  double bias_acc = 0.0;  // with part_bias: this thread's written ddelta summed
  auto stage = [&](int buf, int c0, int L, bool backward) {
    const int64_t base = (int64_t(b) * T + c0) * Di + d0 + wch;
#pragma unroll
    for (int k = 0; k < QC / RS; ++k) {
      const int i = row0 + k * RS;
      const bool in = wch_in && i < L;
      const int64_t row = in ? base + int64_t(i) * Di : 0;
      const int nb = in ? 4 : 0;
      cp_async4(smem_u32(&s_u[buf][i][wch]), p.u + row, nb);
      cp_async4(smem_u32(&s_dl[buf][i][wch]), p.delta + row, nb);
      if (backward) {
        cp_async4(smem_u32(&s_dy[buf][i][wch]), p.dy + row, nb);
        if (p.z) cp_async4(smem_u32(&s_z[buf][i][wch]), p.z + row, nb);
        else s_z[buf][i][wch] = 0.0f;
      }
    }
    const float* Bc = p.Bm + (int64_t(b) * T + c0) * N;
    const float* Cc = p.Cm + (int64_t(b) * T + c0) * N;
#pragma unroll
    for (int k = 0; k < (QC * NP + kBlockThreads - 1) / kBlockThreads; ++k) {
      const unsigned e = unsigned(tid + k * kBlockThreads);
      if (e >= unsigned(QC * NP)) break;
      const int i = int(e / NP), n = int(e % NP);
      const bool in = i < L && n < N;
      const int o = in ? i * N + n : 0;
      cp_async4(smem_u32(&s_B[buf][i][n]), Bc + o, in ? 4 : 0);
      if (backward) cp_async4(smem_u32(&s_C[buf][i][n]), Cc + o, in ? 4 : 0);
    }
    if constexpr (kDocs) {
      for (int i = tid; i <= QC; i += kBlockThreads) {
        const int t = c0 - 1 + i;
        const bool in = t >= 0 && t < T;
        cp_async4(smem_u32(&s_seq[buf][i]), seq + (in ? t : 0), in ? 4 : 0);
      }
    }
    cp_async_commit();
  };
  // The document starts of the chunk [c0, ...) in buffer buf as a mask: bit i is set when step
  // c0 + i > 0 has another id than step c0 + i - 1. Each warp takes it with one ballot (the same
  // mask in every warp); a step's start then enters its decays as the exponent offset -inf
  // (scan_decay), so the chunk's code is the same with or without documents: no branch, no
  // select. Per-step flags read from shared memory and selects had cost 25% more instructions
  // (45.8 ms x15 at mamba-26m's study shape against 37.2 without documents), a branch per chunk
  // between two unrolled walks still 15%.
  auto chunk_resets = [&](int buf, int c0) -> unsigned {
    if constexpr (kDocs) {
      const bool starts = lane < QC && c0 + lane > 0 && s_seq[buf][lane + 1] != s_seq[buf][lane];
      return __ballot_sync(0xffffffffu, starts);
    } else {
      return 0u;
    }
  };
  auto start_offset = [&](unsigned resets, int i) -> float { return (resets >> i) & 1u ? -INFINITY : 0.0f; };
  // One step of the recurrence (hin may be hout).
  auto step = [&](int buf, int i, unsigned resets, const float (&hin)[S], float (&hout)[S]) {
    const float dl = s_dl[buf][i][c], dlu = dl * s_u[buf][i][c];
    scan_channel_step<kDocs>(A2, dl, dlu, &s_B[buf][i][j * S], hin, hout, kDocs ? start_offset(resets, i) : 0.0f);
  };

  // ---- 1. forward walk: the state entering each chunk -------------------------------------
  // Chunks 0 .. nc - 2 are walked (all full); the last one's entering state is all phase 2 needs.
  int buf = 0;
  const int walked = p.chunk_states ? 0 : p.nc;
  if (walked > 1) stage(0, 0, QC, false);
  for (int ci = 0; ci < walked; ++ci) {
#pragma unroll
    for (int s = 0; s < S; ++s)
      if (real[s]) p.ckpt[entry(ci) + s] = h[s];
    if (ci + 1 == p.nc) break;
    if (ci + 2 < p.nc) {
      stage(buf ^ 1, (ci + 1) * QC, QC, false);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const unsigned resets = chunk_resets(buf, ci * QC);
#pragma unroll
    for (int i = 0; i < QC; ++i) step(buf, i, resets, h, h);
    __syncthreads();  // this buffer's readers are done before it is refilled
    buf ^= 1;
  }

  // ---- 2. chunks in reverse ------------------------------------------------------------------
  float dh[S];
  double dA_acc[S];
#pragma unroll
  for (int s = 0; s < S; ++s) {
    dh[s] = (p.dhT && real[s]) ? p.dhT[chan * N + j * S + s] : 0.0f;
    dA_acc[s] = 0.0;
  }
  double dD_acc = 0.0;
  const int64_t bc_plane = int64_t(p.Bsz) * T * N;  // one [B, T, N] partial
  float* part_B = p.part_bc + int64_t(blockIdx.x) * bc_plane;
  float* part_C = p.part_bc + (int64_t(p.nblk) + blockIdx.x) * bc_plane;
  constexpr int R = scattered_values<S, LPC>();
  int xb_col[R];  // where this lane's reduce-scatter sums go in its warp's xb row
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int vi = scattered_base<2 * S, LPC>(lane) + r;  // dB of state vi, or dC of state vi - S
    xb_col[r] = (vi < S ? 0 : NP) + j * S + vi % S;
  }

  buf = 0;
  if (p.nc > 0) stage(0, (p.nc - 1) * QC, min(QC, T - (p.nc - 1) * QC), true);
  for (int ci = p.nc - 1; ci >= 0; --ci) {
    const int c0 = ci * QC, L = min(QC, T - c0);
    if (ci > 0) {
      stage(buf ^ 1, c0 - QC, QC, true);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    // With part_bias, the delta of this thread's write-out rows, read while the buffer is ours
    // (the next chunk's copies may overwrite it before the write-out below).
    float dl_out[QC / RS];
#pragma unroll
    for (int k = 0; k < QC / RS; ++k) dl_out[k] = p.part_bias ? s_dl[buf][row0 + k * RS][wch] : 0.0f;
    // The gate's factors, once per (step, channel) rather than on every lane of the channel:
    // y = p silu(z) with p = h . C + D u gives dp = dy z sigmoid(z) (in place of dy) and dz =
    // dy sigmoid(z) (1 + z (1 - sigmoid(z))) p (the factor before p in place of z). A channel's
    // lanes share a warp, so a warp barrier publishes them.
    if (p.z) {
#pragma unroll
      for (int i = j; i < QC; i += LPC) {
        const float zv = s_z[buf][i][c], dyv = s_dy[buf][i][c];
        const float sg = __fdividef(1.0f, 1.0f + __expf(-zv));
        s_dy[buf][i][c] = dyv * zv * sg;
        s_z[buf][i][c] = dyv * sg * (1.0f + zv * (1.0f - sg));
      }
      __syncwarp();
    }
    float dA_c[S];
#pragma unroll
    for (int s = 0; s < S; ++s) dA_c[s] = 0.0f;
    float dD_c = 0.0f;
    const unsigned resets = chunk_resets(buf, c0);
    float hs[QC + 1][S];  // hs[i] = state before step c0 + i (hs[0]: the stored entry state)
#pragma unroll
    for (int s = 0; s < S; ++s) hs[0][s] = real[s] ? states[entry(ci) + s] : 0.0f;
#pragma unroll
    for (int i = 0; i < QC; ++i) step(buf, i, resets, hs[i], hs[i + 1]);  // steps past L read zeros: unused
#pragma unroll
    for (int i = QC - 1; i >= 0; --i) {
      if (i >= L) continue;  // L is the same for the whole block
      const float uv = s_u[buf][i][c], dl = s_dl[buf][i][c], dlu = dl * uv;
      const float kl = kDocs ? start_offset(resets, i) : 0.0f;
      float Bv[S], Cv[S];
      load_lane_values(&s_B[buf][i][j * S], Bv);
      load_lane_values(&s_C[buf][i][j * S], Cv);
      const float dyp = s_dy[buf][i][c];  // dL/dp (gated above)
      if (p.z) {
        float hc0 = 0.0f, hc1 = 0.0f;
#pragma unroll
        for (int s = 0; s < S; s += 2) {
          hc0 += hs[i + 1][s] * Cv[s];
          hc1 += hs[i + 1][s + 1] * Cv[s + 1];
        }
        const float pre = Dd * uv + channel_lanes_sum<LPC>(hc0 + hc1);
        if (j == 0) s_grad[2][i][c] = s_z[buf][i][c] * pre;
      }
      dD_c += dyp * uv;
      float v[2 * S];  // this lane's dB_t terms (its states), then its dC_t terms
      float gB = 0.0f, Aw = 0.0f;
#pragma unroll
      for (int s = 0; s < S; ++s) {
        // g = dL/dh_t; h_t = a hp + dl u B with a = exp(dl A) (0 at a document start), hp = h_{t-1}
        const float a = kDocs ? scan_decay(dl, A2[s], kl) : scan_decay(dl, A2[s]);  // as the recompute's
        const float hp = hs[i][s];
        const float g = dh[s] + dyp * Cv[s];
        v[s] = g * dlu;
        v[S + s] = dyp * hs[i + 1][s];
        gB += g * Bv[s];
        const float w = g * (a * hp);  // dL/d(dl A) through the decay
        dA_c[s] += w * dl;
        Aw += A2[s] * w;
        dh[s] = a * g;
      }
      // du = D dp + dl sum_n g B; ddelta = u sum_n g B + sum_n A g a hp (A = A2 ln 2)
      const float gB_c = channel_lanes_sum<LPC>(gB), Aw_c = channel_lanes_sum<LPC>(Aw);
      if (j == 0) {
        s_grad[0][i][c] = Dd * dyp + dl * gB_c;
        s_grad[1][i][c] = uv * gB_c + 0.69314718055994531f * Aw_c;
      }
      channels_reduce_scatter<16, 2 * S, LPC, 2 * S>(v, lane);
#pragma unroll
      for (int r = 0; r < R; ++r) xb[warp][i][xb_col[r]] = v[r];
    }
#pragma unroll
    for (int s = 0; s < S; ++s) dA_acc[s] += double(dA_c[s]);
    dD_acc += double(dD_c);
    __syncthreads();  // every warp's terms of the chunk are in (and its buffer's readers done)
    if (wch_in) {
      const int64_t base = (int64_t(b) * T + c0) * Di + d0 + wch;
#pragma unroll
      for (int k = 0; k < QC / RS; ++k) {
        const int i = row0 + k * RS;
        if (i >= L) break;
        const int64_t row = base + int64_t(i) * Di;
        p.du[row] = s_grad[0][i][wch];
        float ddl = s_grad[1][i][wch];
        if (p.part_bias) {  // d softplus(x) / dx = sigmoid(x) = 1 - exp(-softplus(x))
          ddl *= -expm1f(-dl_out[k]);
          bias_acc += double(ddl);
        }
        p.ddelta[row] = ddl;
        if (p.z) p.dz[row] = s_grad[2][i][wch];
      }
    }
    for (unsigned e = tid; e < unsigned(L * 2 * NP); e += kBlockThreads) {
      const int i = int(e / (2 * NP)), k = int(e % (2 * NP)), n = k % NP;
      if (n >= N) continue;
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < kBlockWarps; ++w) sum += xb[w][i][k];
      (k < NP ? part_B : part_C)[(int64_t(b) * T + c0 + i) * N + n] = sum;
    }
    buf ^= 1;
  }

#pragma unroll
  for (int s = 0; s < S; ++s) {
    if (!real[s]) continue;
    const int64_t o = chan * N + j * S + s;
    if (p.dh0) p.dh0[o] = dh[s];
    if (p.part_A) p.part_A[o] = dA_acc[s];
  }
  if (p.part_D && active && j == 0) p.part_D[chan] = dD_acc;
  if (p.part_bias) {  // the row groups' sums added in order: the same every run
    __shared__ double s_bias[RS][CH];
    s_bias[row0][wch] = bias_acc;
    __syncthreads();
    if (row0 == 0 && wch_in) {
      double sum = 0.0;
#pragma unroll
      for (int r = 0; r < RS; ++r) sum += s_bias[r][wch];
      p.part_bias[int64_t(b) * Di + d0 + wch] = sum;
    }
  }
}

template <int S, int LPC>
void launch_channels(ScanArgs a, GrowOnlyBuffer& scratch, const ScanSums& out, const char* op) {
  a.nc = (a.T + kChunk - 1) / kChunk;
  a.nblk = (a.Di + kScanChannels - 1) / kScanChannels;
  scan_backward_scratch(a, scratch, out, op);
  const dim3 grid(unsigned(a.nblk), unsigned(a.Bsz));
  if (a.seq) selective_scan_backward_channels_kernel<S, LPC, true><<<grid, kScanChannels * LPC>>>(a);
  else selective_scan_backward_channels_kernel<S, LPC, false><<<grid, kScanChannels * LPC>>>(a);
  check_launch(op);
  scan_backward_reduce(a, out, op);
}

}  // namespace

bool selective_scan_backward_channels(ScanArgs a, GrowOnlyBuffer& scratch, const ScanSums& out, const char* op) {
  // 4 states per lane up to N = 16 (twice the lanes of 8 per lane, ~125 registers: 16 warps per
  // SM instead of 8; 1.42x faster at B 4, T 1024, Di 1024, N 16 on the H200), 8 up to N = 32.
  if (a.N <= 4) launch_channels<4, 1>(a, scratch, out, op);
  else if (a.N <= 8) launch_channels<4, 2>(a, scratch, out, op);
  else if (a.N <= 16) launch_channels<4, 4>(a, scratch, out, op);
  else if (a.N <= 32) launch_channels<8, 4>(a, scratch, out, op);
  else return false;
  return true;
}

}  // namespace mambalm::ops::cuda
