// Backward of the Mamba-1 selective scan on CUDA (the CPU's, ops/cpu/selective_scan_backward.cpp,
// derives it). For N <= 32 (Mamba-1's N = 16) the channel layout runs instead
// (selective_scan_backward_channels.cu); this file's warp layout serves larger N:
//
//   h_t = a_t h_{t-1} + delta_t u_t B_t,  a_t = exp(delta_t A)   (h_{t-1} := 0 at a document start)
//   p_t = h_t . C_t + D u_t;   y_t = p_t silu(z_t)  (or y_t = p_t without z)
//
// walking t downwards with dh = dLoss/dh_t (from later steps):
//   dp = dy silu(z);  dz = dy p silu'(z);  g = dh + dp C_t;  dC_t += dp h_t;  dD += dp u
//   dB_t += g delta u;  du = D dp + sum_n g delta B;  ddelta = sum_n g (u B + A a h_{t-1})
//   dA += g delta a h_{t-1};  dh <- a g  (0 at a document start)
//
// Layout: as the forward (selective_scan.cu), lanes of a warp split the state index n of a channel
// and combine with shuffles; for N <= 16 a warp holds two channels (16 lanes each). A block of
// kWarps warps owns CH consecutive channels of one batch row (grid: channel blocks x batch rows).
// Each warp:
//   1. walks t forwards from the initial state and stores the state entering every chunk of QC
//      steps in scratch (ckpt [B, Di, nchunks, N]);
//   2. walks the chunks in reverse: recomputes the chunk's QC states into registers (unrolled, so
//      the state array is indexed statically), then steps backwards through the chunk.
// Before each chunk of either walk the block stages the chunk's inputs (u, delta, B, C, dy, z,
// document resets) in shared memory with coalesced loads, so the serial steps wait on shared
// memory rather than on global loads.
// QC = 16 / NK steps (NK = state values per lane), so the registers hold QC + 1 states per lane
// (at NK = 1: 80 registers, three blocks of 8 warps per SM).
// The results do not depend on the chunk length (the recomputed states are the forward's, bit for
// bit), so the op's chunk_size, which sizes the CPU's buffers, is not needed here.
//
// Deterministic reductions, no atomics:
//   - dB_t, dC_t sum over channels: every SUB steps each warp puts its per-n terms (its channels
//     added) in shared memory, the block adds its warps in order and writes one partial row per
//     (channel block, t) to scratch [2][channel blocks][B, T, N]; a last kernel adds the channel
//     blocks in order (double) into dBm, dCm (assigned).
//   - dA, dD sum over batch rows and time: each warp sums its time walk in double, writes
//     [B, Di, N] / [B, Di] partials; a last kernel adds the batch rows in order into dA, dD (+=).
//
// Cost per (b, t, d, n): three exps (forward walk, recompute, backward) and ~25 flops; per
// (b, t, d) 7 floats of memory (u, delta, z, dy in; du, ddelta, dz out), B_t / C_t are shared by
// all channels (L1/L2). Mamba-1 (N = 16) at B T = 16384, Di = 1536: ~1.2e9 exps and ~0.7 GB of
// activation traffic, plus the dB/dC partials (Di / 16 rows of B T N floats, ~0.2 GB each way).
// Measured on the H200 (2026-11-30) at B 8, T 2048, Di 1536, N 16: 3.6 ms (the forward kernel
// takes 4.4 ms there). It is bound by instruction issue and step latency, not memory: each warp
// step (two channels) spends ~150 instructions, much of it per-channel work repeated on 16
// lanes and the shuffle sums over n; a layout with one thread per channel holding all N states
// would cut that several-fold but needs the chunk's states outside registers.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/column_sums.cuh"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/selective_scan_backward.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kWarps = 8;  // warps per block

// Per configuration: NK state values per lane, LPC lanes per channel (16 only with NK = 1),
// CPW channels per warp, QC steps per register chunk, SUB steps per shared-memory exchange of the
// dB/dC terms, NP state slots per channel (>= N).
template <int NK, int LPC>
struct ScanCfg {
  static constexpr int CPW = 32 / LPC;
  static constexpr int CH = kWarps * CPW;
  static constexpr int QC = 16 / NK;
  static constexpr int SUB = NK >= 8 ? 1 : 8 / NK;
  static constexpr int NP = LPC * NK;
  static_assert(QC % SUB == 0, "exchange steps must tile the chunk");
};

// Sum over the LPC lanes of a channel (xor butterfly inside aligned groups of LPC lanes).
template <int LPC>
__device__ __forceinline__ float channel_sum(float v) {
#pragma unroll
  for (int o = LPC / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}


template <int NK, int LPC>
__global__ void __launch_bounds__(kWarps * 32, NK == 1 && LPC == 16 ? 3 : 1)
selective_scan_backward_kernel(const ScanArgs p) {
  using Cfg = ScanCfg<NK, LPC>;
  constexpr int QC = Cfg::QC, SUB = Cfg::SUB, NP = Cfg::NP, CPW = Cfg::CPW, CH = Cfg::CH;
  constexpr int kThreadsPerBlock = kWarps * 32;
  // A chunk's inputs, staged by the whole block with coalesced loads (zeros past T, Di and N), so
  // the serial walks read shared memory, not global memory, at every step.
  __shared__ float s_u[QC][CH], s_dl[QC][CH], s_dy[QC][CH], s_z[QC][CH];
  __shared__ float s_B[QC][NP], s_C[QC][NP];
  __shared__ int s_reset[QC];
  __shared__ float xb[2][kWarps][SUB][2][NP];  // dB / dC terms of each warp, double-buffered

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nl = lane % LPC;                // lane inside its channel
  const int wch = warp * CPW + lane / LPC;  // channel inside the block
  const int b = blockIdx.y;
  const int d0 = blockIdx.x * CH;
  const int d = d0 + wch;
  const bool active = d < p.Di;  // inactive lanes compute on zeros and write nothing
  const int dd = active ? d : p.Di - 1;
  const int T = p.T, N = p.N, Di = p.Di;
  const int64_t chan = int64_t(b) * Di + dd;  // (b, d)
  const int32_t* seq = p.seq ? p.seq + int64_t(b) * T : nullptr;

  float Ad[NK], h[NK];
  bool nv[NK];  // n = nl + LPC k is a real state index
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int n = nl + LPC * k;
    nv[k] = n < N;
    Ad[k] = nv[k] ? p.A[int64_t(dd) * N + n] : 0.0f;
    h[k] = (p.h0 && nv[k] && active) ? p.h0[chan * N + n] : 0.0f;
  }
  const float Dd = p.D ? p.D[dd] : 0.0f;
  float* ck = p.ckpt + chan * p.nc * N;

  // Stage steps [c0, c0 + L) of this block's channels: u, delta, B and the document resets, and
  // with `backward` also dy, z and C. Callers put a barrier before (the buffers' last readers are
  // done) and after (the data is in).
  auto stage = [&](int c0, int L, bool backward) {
    for (int e = threadIdx.x; e < QC * CH; e += kThreadsPerBlock) {
      const int i = e / CH, ch = e % CH;
      const bool in = i < L && d0 + ch < Di;
      const int64_t row = (int64_t(b) * T + c0 + i) * Di + d0 + ch;
      s_u[i][ch] = in ? p.u[row] : 0.0f;
      s_dl[i][ch] = in ? p.delta[row] : 0.0f;
      if (backward) {
        s_dy[i][ch] = in ? p.dy[row] : 0.0f;
        s_z[i][ch] = (in && p.z) ? p.z[row] : 0.0f;
      }
    }
    for (int e = threadIdx.x; e < QC * NP; e += kThreadsPerBlock) {
      const int i = e / NP, n = e % NP;
      const bool in = i < L && n < N;
      const int64_t o = (int64_t(b) * T + c0 + i) * N + n;
      s_B[i][n] = in ? p.Bm[o] : 0.0f;
      if (backward) s_C[i][n] = in ? p.Cm[o] : 0.0f;
    }
    for (int i = threadIdx.x; i < QC; i += kThreadsPerBlock) {
      const int t = c0 + i;
      s_reset[i] = i < L && seq && t > 0 && seq[t] != seq[t - 1];
    }
  };

  // One forward step, chunk step i (the forward kernel's arithmetic).
  auto step = [&](int i, const float (&hin)[NK], float (&hout)[NK]) {
    const float dl = s_dl[i][wch], uv = s_u[i][wch];
    const float dlu = dl * uv;
    const bool reset = s_reset[i];
#pragma unroll
    for (int k = 0; k < NK; ++k)
      hout[k] = expf(dl * Ad[k]) * (reset ? 0.0f : hin[k]) + dlu * s_B[i][nl + LPC * k];
  };

  // ---- 1. forward walk: the state entering each chunk -------------------------------------
  for (int c = 0; c < p.nc; ++c) {
    if (active) {
#pragma unroll
      for (int k = 0; k < NK; ++k)
        if (nv[k]) ck[int64_t(c) * N + nl + LPC * k] = h[k];
    }
    if (c + 1 == p.nc) break;
    __syncthreads();
    stage(c * QC, QC, false);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < QC; ++i) step(i, h, h);
  }

  // ---- 2. chunks in reverse ------------------------------------------------------------------
  float dh[NK];
  double dA_acc[NK];
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    dh[k] = (p.dhT && nv[k] && active) ? p.dhT[chan * N + nl + LPC * k] : 0.0f;
    dA_acc[k] = 0.0;
  }
  double dD_acc = 0.0;
  int buf = 0;
  const int64_t bc_plane = int64_t(p.Bsz) * T * N;  // one [B, T, N] partial
  float* part_B = p.part_bc + int64_t(blockIdx.x) * bc_plane;
  float* part_C = p.part_bc + (int64_t(p.nblk) + blockIdx.x) * bc_plane;

  for (int c = p.nc - 1; c >= 0; --c) {
    const int c0 = c * QC, L = min(QC, T - c0);
    __syncthreads();
    stage(c0, L, true);
    __syncthreads();
    float hs[QC + 1][NK];  // hs[i] = state before step c0 + i (hs[0] = the stored entry state)
#pragma unroll
    for (int k = 0; k < NK; ++k) hs[0][k] = (active && nv[k]) ? ck[int64_t(c) * N + nl + LPC * k] : 0.0f;
#pragma unroll
    for (int i = 0; i < QC; ++i) step(i, hs[i], hs[i + 1]);  // steps past L read zeros: unused
#pragma unroll
    for (int i = QC - 1; i >= 0; --i) {
      float cB[NK], cC[NK];
#pragma unroll
      for (int k = 0; k < NK; ++k) cB[k] = cC[k] = 0.0f;
      if (i < L) {
        const int t = c0 + i;
        const int64_t row = (int64_t(b) * T + t) * Di + dd;
        const float uv = s_u[i][wch], dl = s_dl[i][wch];
        const bool reset = s_reset[i];
        float Bv[NK], Cv[NK];
#pragma unroll
        for (int k = 0; k < NK; ++k) {
          Bv[k] = s_B[i][nl + LPC * k];
          Cv[k] = s_C[i][nl + LPC * k];
        }
        float dyp = s_dy[i][wch];
        if (p.z) {
          float hc = 0.0f;
#pragma unroll
          for (int k = 0; k < NK; ++k) hc += hs[i + 1][k] * Cv[k];
          const float pre = Dd * uv + channel_sum<LPC>(hc);
          const float zv = s_z[i][wch];
          const float sg = 1.0f / (1.0f + expf(-zv));
          const float dzv = dyp * pre * sg * (1.0f + zv * (1.0f - sg));
          if (active && nl == 0) p.dz[row] = dzv;
          dyp = dyp * zv * sg;
        }
        dD_acc += double(dyp) * double(uv);
        const float dlu = dl * uv;
        float du_s = 0.0f, ddl_s = 0.0f;
#pragma unroll
        for (int k = 0; k < NK; ++k) {
          const float a = expf(dl * Ad[k]);
          const float hp = reset ? 0.0f : hs[i][k];
          const float g = dh[k] + dyp * Cv[k];
          cC[k] = dyp * hs[i + 1][k];
          cB[k] = g * dlu;
          du_s += g * dl * Bv[k];
          ddl_s += g * (uv * Bv[k] + Ad[k] * a * hp);
          dA_acc[k] += double(g * dl * a * hp);
          dh[k] = reset ? 0.0f : a * g;
        }
        const float du_v = Dd * dyp + channel_sum<LPC>(du_s);
        const float ddl_v = channel_sum<LPC>(ddl_s);
        if (active && nl == 0) {
          p.du[row] = du_v;
          p.ddelta[row] = ddl_v;
        }
#pragma unroll
        for (int k = 0; k < NK; ++k) {
          if (!active || !nv[k]) cB[k] = cC[k] = 0.0f;
        }
      }
      // this warp's terms of step i, its CPW channels added (lanes 0 .. LPC-1 hold the sum)
#pragma unroll
      for (int k = 0; k < NK; ++k) {
        if constexpr (CPW == 2) {
          cB[k] += __shfl_xor_sync(0xffffffffu, cB[k], 16);
          cC[k] += __shfl_xor_sync(0xffffffffu, cC[k], 16);
        }
        if (lane < LPC) {
          xb[buf][warp][i % SUB][0][nl + LPC * k] = cB[k];
          xb[buf][warp][i % SUB][1][nl + LPC * k] = cC[k];
        }
      }
      if (i % SUB == 0) {  // steps [i, i + SUB) are in: add the warps in order, one partial row each
        __syncthreads();
        for (int e = threadIdx.x; e < SUB * 2 * NP; e += kThreadsPerBlock) {
          const int ii = e / (2 * NP), arr = (e / NP) % 2, n = e % NP;
          if (n < N && i + ii < L) {
            float s = 0.0f;
#pragma unroll
            for (int ww = 0; ww < kWarps; ++ww) s += xb[buf][ww][ii][arr][n];
            const int64_t o = (int64_t(b) * T + c0 + i + ii) * N + n;
            (arr == 0 ? part_B : part_C)[o] = s;
          }
        }
        buf ^= 1;  // the next sub-chunk writes the other buffer; its barrier orders this reading
      }
    }
  }

  if (active) {
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      if (!nv[k]) continue;
      const int64_t o = chan * N + nl + LPC * k;
      if (p.dh0) p.dh0[o] = dh[k];
      if (p.part_A) p.part_A[o] = dA_acc[k];
    }
    if (p.part_D && nl == 0) p.part_D[chan] = dD_acc;
  }
}

// dB[e] = sum over channel blocks of part_bc[0][blk][e], dC likewise from part_bc[1]: blocks in
// order, in double, one fp32 rounding (assigned).
__global__ void scan_reduce_bc(const float* __restrict__ part, int nblk, int64_t n, float* __restrict__ dB,
                               float* __restrict__ dC) {
  const int arr = int(blockIdx.y);  // 0: dB, 1: dC (no 64-bit division per element)
  const float* plane = part + int64_t(arr) * nblk * n;
  float* out = arr == 0 ? dB : dC;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int k = 0; k < nblk; ++k) s += double(plane[int64_t(k) * n + e]);
    out[e] = float(s);
  }
}

// dA[e] += sum over batch rows of part_A[b][e] (e < Di N), dD[d] += sum of part_D[b][d]: rows in
// order, in double, one fp32 rounding.
// dA [nA], dD and dbias [nD] += the sums of their batch rows' partials, rows in order.
__global__ void scan_reduce_AD(const double* __restrict__ part_A, const double* __restrict__ part_D,
                               const double* __restrict__ part_bias, int Bsz, int64_t nA, int64_t nD,
                               float* __restrict__ dA, float* __restrict__ dD, float* __restrict__ dbias) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nA + 2 * nD; i += int64_t(gridDim.x) * blockDim.x) {
    const int which = i < nA ? 0 : i < nA + nD ? 1 : 2;
    const int64_t e = which == 0 ? i : which == 1 ? i - nA : i - nA - nD;
    const double* src = which == 0 ? part_A : which == 1 ? part_D : part_bias;
    float* out = which == 0 ? dA : which == 1 ? dD : dbias;
    if (!src || !out) continue;
    const int64_t n = which == 0 ? nA : nD;
    double s = 0.0;
    for (int r = 0; r < Bsz; ++r) s += src[int64_t(r) * n + e];
    out[e] += float(s);
  }
}

// The warp layout's softplus backward after the scan (the channel layout fuses it): ddelta *=
// 1 - exp(-delta) and each (row chunk, column)'s sum in double; add_chunk_sums adds the chunks.
__global__ void softplus_output_grad(const float* __restrict__ delta, float* __restrict__ ddelta, int64_t rows,
                                     int64_t cols, int64_t rows_per_chunk, double* __restrict__ partial) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  double s = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = r * cols + c;
    const float g = ddelta[i] * -expm1f(-delta[i]);
    ddelta[i] = g;
    s += double(g);
  }
  partial[int64_t(blockIdx.y) * cols + c] = s;
}

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

template <int NK, int LPC>
void launch_scan_backward(ScanArgs a, GrowOnlyBuffer& scratch, const char* op, const ScanSums& out) {
  using Cfg = ScanCfg<NK, LPC>;
  a.nc = (a.T + Cfg::QC - 1) / Cfg::QC;
  a.nblk = (a.Di + Cfg::CH - 1) / Cfg::CH;
  ScanSums sums = out;
  sums.dbias = nullptr;  // this layout does the softplus's backward after it
  scan_backward_scratch(a, scratch, sums, op);
  selective_scan_backward_kernel<NK, LPC><<<dim3(unsigned(a.nblk), unsigned(a.Bsz)), kWarps * 32>>>(a);
  check_launch(op);
  scan_backward_reduce(a, sums, op);
  if (!out.dbias) return;
  const int64_t rows = int64_t(a.Bsz) * a.T, cols = a.Di, rpc = rows_per_chunk(rows, cols), chunks = (rows + rpc - 1) / rpc;
  static GrowOnlyBuffer partial_buf;
  double* partial = partial_buf.get<double>(size_t(chunks * cols), op);
  softplus_output_grad<<<dim3(unsigned((cols + kThreads - 1) / kThreads), unsigned(chunks)), kThreads>>>(
      a.delta, a.ddelta, rows, cols, rpc, partial);
  check_launch(op);
  add_chunk_sums<<<blocks_for(cols), kThreads>>>(partial, chunks, cols, out.dbias);
  check_launch(op);
}

}  // namespace

void scan_backward_scratch(ScanArgs& a, GrowOnlyBuffer& scratch, const ScanSums& out, const char* op) {
  const int64_t btn = int64_t(a.Bsz) * a.T * a.N;
  const size_t ck_bytes = a.chunk_states ? 0 : align256(sizeof(float) * size_t(a.Bsz) * a.Di * a.nc * a.N);
  const size_t bc_bytes = align256(sizeof(float) * 2 * size_t(a.nblk) * btn);
  const size_t A_bytes = out.dA ? align256(sizeof(double) * size_t(a.Bsz) * a.Di * a.N) : 0;
  const size_t D_bytes = out.dD ? align256(sizeof(double) * size_t(a.Bsz) * a.Di) : 0;
  const size_t bias_bytes = out.dbias ? align256(sizeof(double) * size_t(a.Bsz) * a.Di) : 0;
  char* base = static_cast<char*>(scratch.get(ck_bytes + bc_bytes + A_bytes + D_bytes + bias_bytes + 256, op));
  a.ckpt = a.chunk_states ? nullptr : reinterpret_cast<float*>(base);
  a.part_bc = reinterpret_cast<float*>(base + ck_bytes);
  a.part_A = out.dA ? reinterpret_cast<double*>(base + ck_bytes + bc_bytes) : nullptr;
  a.part_D = out.dD ? reinterpret_cast<double*>(base + ck_bytes + bc_bytes + A_bytes) : nullptr;
  a.part_bias = out.dbias ? reinterpret_cast<double*>(base + ck_bytes + bc_bytes + A_bytes + D_bytes) : nullptr;
}

void scan_backward_reduce(const ScanArgs& a, const ScanSums& out, const char* op) {
  const int64_t btn = int64_t(a.Bsz) * a.T * a.N;
  if (btn > 0) {
    scan_reduce_bc<<<dim3(blocks_for(btn), 2), kThreads>>>(a.part_bc, a.nblk, btn, out.dB, out.dC);
    check_launch(op);
  }
  if (out.dA || out.dD || out.dbias) {
    const int64_t nA = int64_t(a.Di) * a.N, nD = a.Di;
    scan_reduce_AD<<<blocks_for(nA + 2 * nD), kThreads>>>(a.part_A, a.part_D, a.part_bias, a.Bsz, nA, nD, out.dA, out.dD,
                                                         out.dbias);
    check_launch(op);
  }
}

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                             const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx,
                             const Tensor* initial_state, const Tensor* dfinal_state, int64_t chunk_size,
                             const Tensor& dy, Tensor& du, Tensor& ddelta, Tensor* dA, Tensor& dBm, Tensor& dCm,
                             Tensor* dD, Tensor* dz, Tensor* dinitial_state, const Tensor* chunk_states,
                             Tensor* ddelta_bias) {
  (void)chunk_size;  // the kernel's chunk is its register chunk; results do not depend on it
  static GrowOnlyBuffer scratch;
  const char* op = "selective_scan_backward";
  const int64_t Bsz = u.dim(0), T = u.dim(1), Di = u.dim(2), N = A.dim(1);
  if (Bsz * Di == 0) {  // no channels: dB, dC are sums over none
    if (Bsz * T * N > 0) {
      check_cuda(cudaMemsetAsync(dBm.f32(), 0, size_t(Bsz * T * N) * sizeof(float), cudaStreamPerThread), op,
                 "cudaMemsetAsync");
      check_cuda(cudaMemsetAsync(dCm.f32(), 0, size_t(Bsz * T * N) * sizeof(float), cudaStreamPerThread), op,
                 "cudaMemsetAsync");
    }
    return;
  }
  ScanArgs a{};
  a.u = u.f32();
  a.delta = delta.f32();
  a.A = A.f32();
  a.Bm = Bm.f32();
  a.Cm = Cm.f32();
  a.D = D ? D->f32() : nullptr;
  a.z = z ? z->f32() : nullptr;
  a.seq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  a.h0 = initial_state ? initial_state->f32() : nullptr;
  a.dhT = dfinal_state ? dfinal_state->f32() : nullptr;
  a.dy = dy.f32();
  a.du = du.f32();
  a.ddelta = ddelta.f32();
  a.dz = z ? dz->f32() : nullptr;
  a.dh0 = dinitial_state ? dinitial_state->f32() : nullptr;
  a.Bsz = int(Bsz);
  a.T = int(T);
  a.Di = int(Di);
  a.N = int(N);
  const ScanSums out{dBm.f32(), dCm.f32(), dA ? dA->f32() : nullptr, dD ? dD->f32() : nullptr,
                     ddelta_bias ? ddelta_bias->f32() : nullptr};
  a.chunk_states = chunk_states ? chunk_states->f32() : nullptr;
  if (selective_scan_backward_channels(a, scratch, out, op)) return;
  a.chunk_states = nullptr;  // the warp layout keeps its own checkpoints (QC = 16 / NK steps)
  switch (N <= 16 ? 0 : lanes_k(N, op)) {
    case 0: launch_scan_backward<1, 16>(a, scratch, op, out); break;
    case 1: launch_scan_backward<1, 32>(a, scratch, op, out); break;
    case 2: launch_scan_backward<2, 32>(a, scratch, op, out); break;
    case 4: launch_scan_backward<4, 32>(a, scratch, op, out); break;
    default: launch_scan_backward<8, 32>(a, scratch, op, out); break;
  }
}

}  // namespace mambalm::ops::cuda
