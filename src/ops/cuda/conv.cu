// The causal depthwise convolution on CUDA (Mamba's short conv): the forward (with the streaming
// state) and the backward.
//
// Forward, K <= 6: one thread per (channel, batch row, time segment) walking t with the last K
// inputs in registers (conv_window_kernel), the same sums as the per-element kernel, which
// remains for wider kernels. H200, B 4, T 4096, C 10240 with documents: 416 us (3.2 TB/s on
// 8 bytes per element). Inputs and outputs are fp32, or bf16 in mixed-precision training (in_proj
// writes x | B | C so, and the SSD reads the conv's parts so); sums are fp32 either way.
//
// Backward (the CPU's, ops/cpu/conv.cpp, derives it). Padded input index i = t + k is input time
// s = t + k - (K-1) (history when s < 0); output t reads s only inside t's document. With
// pre = the conv output before SiLU, recomputed:
//   dpre[t] = dy[t] silu'(pre[t])  (or dy[t])
//   dx[s]   = sum_k w[c, k] dpre[s + K-1 - k]     (outputs t < T in s's document; s < 0 goes to
//                                                  dinitial_state)
//   dw[c, k] += sum_t dpre[t] xpad[t + k];  dbias[c] += sum_t dpre[t]
// One thread per (channel, batch row, time segment of 64 or 128 inputs), channels fastest so every
// load and store is coalesced. It walks t upwards through its segment plus K-1 steps, keeping the
// last K inputs, document ids and dpre values in registers (sliding windows): each input and dy is
// read once (plus K-1 rows of overlap at each segment edge) and dx written once, 12 bytes per
// element. A thread owns two adjacent channels where the rows allow (8-byte fp32 / 4-byte bf16
// pair loads and stores; one channel otherwise), and the walk goes in tiles of kConvTile steps
// whose loads are issued together, with no branch between them (a branch per
// load made each wait for the one before: bf16 x took 0.81 ms instead of 0.54), through a
// cp.async pipeline in shared memory (the next tiles land while this one is walked); tiles away
// from the segment's edges skip the range checks. Both windowed kernels have one-document builds
// (kDocs false, chosen when there is no seq_idx) without the per-tap document compares. dw and
// dbias: the thread sums dpre xpad over each tile in fp32 and over its segment in double, and
// writes the sums to a scratch [rows of (batch, segment)][K+1][C]; a second kernel adds the rows
// in order (double) into dw, dbias.
// Deterministic, no atomics. H200, B 4, T 4096, C 10240, K 4 with documents: 740 us (2.7 TB/s on
// 12 bytes per element; the walk's compares and double adds cost issue slots besides the bytes).
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <string>
#include <type_traits>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/ptx.cuh"

namespace mambalm::ops::cuda {

namespace {

// Kernel widths above kMaxConvK: one thread per (b, t, c), channels fastest (coalesced). Padded row i = t + k is state column i
// when i < Hh (Hh = K - 1), else x row i - Hh; the sum runs in k order from the bias, as on the CPU.
// With document ids, input time s = i - Hh counts only when it is in t's document (the history,
// s < 0, belongs to token 0's).
template <typename XT, typename YT>
__global__ void conv_kernel(const XT* __restrict__ x, const float* __restrict__ w,
                            const float* __restrict__ bias, const int32_t* __restrict__ seq,
                            const float* __restrict__ state, bool apply_silu, YT* __restrict__ y,
                            int64_t B, int64_t T, int64_t C, int64_t K) {
  const int64_t Hh = K - 1;
  const int64_t n = B * T * C;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C;
    const int64_t t = (idx / C) % T;
    const int64_t b = idx / (C * T);
    float acc = bias ? bias[c] : 0.0f;
    const int32_t doc = seq ? seq[b * T + t] : 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t i = t + k;
      if (seq && seq[b * T + (i < Hh ? 0 : i - Hh)] != doc) continue;
      float xv;
      if (i < Hh) xv = state ? state[(b * C + c) * Hh + i] : 0.0f;
      else xv = as_float(x[(b * T + (i - Hh)) * C + c]);
      acc += w[c * K + k] * xv;
    }
    store_float(y + idx, apply_silu ? silu_f(acc) : acc);
  }
}

// Threads per block of the windowed kernels (forward and backward): channels fastest.
constexpr int kConvThreads = 128;
constexpr int kMaxConvK = 6;  // kernel widths the windowed kernels instantiate (Mamba uses 4)
// Steps whose inputs a thread loads together before working through them: the walk is serial,
// so this is what keeps several loads per thread in flight. The backward's tile (also its dw
// tile): 8 steps of one or two channels (4-step loads inside it measured 0.522 against 0.510 ms
// at Mamba-2's training shape, H100, bench/NOTES.md).
constexpr int kConvTile = 8;
// The backward's tiles reach shared memory by cp.async, kBwdStages - 1 of them in flight while a
// thread walks one, so the loads no longer wait for the walk (H100, Mamba-2's training shape:
// register tiles 0.480 ms; 3 stages at 4 blocks an SM 0.405; 2 stages at 3 blocks 0.399, and
// 0.329 without the document compares; same bits; bench/NOTES.md).
constexpr int kBwdStages = 2;
// Blocks an SM the backward is built for: two channels a thread need 3 (128 registers without
// documents, 154 with them; no spills), one channel fits 4.
constexpr int conv_backward_blocks(int V) { return V == 2 ? 3 : 4; }
// The forward's load tile for two channels a thread: 16 steps (32 values in flight, 72
// registers; 4 steps took 0.275 ms, 8 0.267, 16 0.255 at the same shape).
constexpr int kFwdPairSteps = 16;

// A [B, T, C] operand given as column blocks (causal_conv1d_parts): block i holds channels
// [c0[i], c0[i+1]) as its own [B, T, c0[i+1] - c0[i]] tensor of E's. n == 0: the whole tensor is
// one.
constexpr int kMaxBlocks = 8;
template <typename E>
struct ChannelBlocksOf {
  E* p[kMaxBlocks] = {};
  int c0[kMaxBlocks + 1] = {};
  int n = 0;
};
using ChannelBlocks = ChannelBlocksOf<float>;

// V adjacent channels of one time step as fp32 (V = 2: one 8-byte float2 or 4-byte bf16 pair
// load), and V values stored into them. A thread that owns two channels issues half the
// instructions per byte; bf16 rows read one channel at a time took 0.83 ms where fp32 took 0.53
// at Mamba-2's training shape (bench/NOTES.md).
template <int V>
__device__ __forceinline__ void load_channels(const float* p, float* out) {
  if constexpr (V == 2) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    out[0] = v.x;
    out[1] = v.y;
  } else {
    out[0] = *p;
  }
}
template <int V>
__device__ __forceinline__ void load_channels(const __nv_bfloat16* p, float* out) {
  if constexpr (V == 2) {
    const float2 v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
    out[0] = v.x;
    out[1] = v.y;
  } else {
    out[0] = __bfloat162float(*p);
  }
}
template <int V>
__device__ __forceinline__ void store_channels(float* p, const float* v) {
  if constexpr (V == 2) *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
  else *p = v[0];
}
template <int V>
__device__ __forceinline__ void store_channels(__nv_bfloat16* p, const float* v) {
  if constexpr (V == 2) *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
  else *p = __float2bfloat16_rn(v[0]);
}

// One thread's V channels of one time step (4 or 8 bytes) copied into shared memory by cp.async.
template <int kBytes>
__device__ __forceinline__ void copy_channels_async(void* dst, const void* src) {
  static_assert(kBytes == 4 || kBytes == 8, "cp.async copies 4, 8 or 16 bytes; 2 (one bf16) fits none");
  if constexpr (kBytes == 8) cp_async8(smem_u32(dst), src);
  else cp_async4(smem_u32(dst), src, 4);
}

// Channel c of batch row b at time 0 (address) and the row stride (ld) of its block.
template <typename E>
__device__ __forceinline__ E* channel_column(const ChannelBlocksOf<E>& blk, E* whole, int b, int T, int C, int c,
                                             int* ld) {
  if (blk.n == 0) {
    *ld = C;
    return whole + int64_t(b) * T * C + c;
  }
  // the last block starting at or before c, found with constant indices only: a dynamic index
  // into the kernel's parameter copies it to local memory, one store per byte in every thread
  E* p = blk.p[0];
  int lo = 0, hi = blk.c0[1];
#pragma unroll
  for (int j = 1; j < kMaxBlocks; ++j)
    if (j < blk.n && c >= blk.c0[j]) {
      p = blk.p[j];
      lo = blk.c0[j];
      hi = blk.c0[j + 1];
    }
  *ld = hi - lo;
  return p + int64_t(b) * T * *ld + (c - lo);
}

// Time segment per thread of the windowed kernels: 64 steps (128 for long rows), doubled until
// the (batch, segment) rows fit a grid's y dimension.
int conv_segment_len(int64_t B, int64_t T) {
  int64_t len = T >= 1024 ? 128 : 64;
  while (B * ((T + len - 1) / len) > 65535) len *= 2;
  return int(len);
}

// The forward for K <= kMaxConvK, windowed: thread (c, b, segment [s0, s1) of outputs) walks t
// upwards keeping the last K inputs and their document ids in registers, so each input is read
// once (plus K-1 rows before the segment) and no index is divided. The sum is conv_kernel's
// (from the bias, k in order, other documents' inputs skipped, absent history as 0), so the
// result is the same bit for bit. kDocs false (no seq_idx): every input is in the output's
// document, so the compares go (0.253 -> 0.236 ms at Mamba-2's training shape, H100).
template <int K, int V, int TS, bool kDocs, typename XT, typename YT>
__global__ void __launch_bounds__(kConvThreads)
conv_window_kernel(const XT* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                   const int32_t* __restrict__ seq, const float* __restrict__ state, bool apply_silu,
                   YT* __restrict__ y, ChannelBlocksOf<YT> y_blocks, int T, int C, int seg_len, int nseg) {
  constexpr int H = K - 1;
  constexpr int kTile = TS;  // steps per tile: TS V channel values in flight
  const int c = (blockIdx.x * blockDim.x + threadIdx.x) * V;  // channels c .. c + V - 1
  if (c >= C) return;
  const int b = blockIdx.y / nseg, seg = blockIdx.y % nseg;
  int ldy = C;
  YT* yc = channel_column(y_blocks, y, b, T, C, c, &ldy);  // y[b, 0, c]
  const int s0 = seg * seg_len, s1 = min(T, s0 + seg_len);
  float wk[V][K], bc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    bc[v] = bias ? bias[c + v] : 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) wk[v][k] = w[int64_t(c + v) * K + k];
  }
  const int64_t base = int64_t(b) * T * C + c;  // (b, t = 0, c)
  const int32_t* sq = kDocs ? seq + int64_t(b) * T : nullptr;
  // xw[v][j] = channel c + v's input at time t - H + j (history below 0, 0 without it), sw[j] =
  // its document
  float xw[V][K];
  int32_t sw[K];
  sw[0] = 0;
#pragma unroll
  for (int v = 0; v < V; ++v) xw[v][0] = 0.0f;
#pragma unroll
  for (int j = 0; j < H; ++j) {  // times s0 - H .. s0 - 1 into slots 1 .. H
    const int s = s0 - H + j;
    float xs[V];
    if (s >= 0) load_channels<V>(x + base + int64_t(s) * C, xs);
#pragma unroll
    for (int v = 0; v < V; ++v)
      xw[v][j + 1] = s < 0 ? (state ? state[(int64_t(b) * C + c + v) * H + s + H] : 0.0f) : xs[v];
    sw[j + 1] = sq ? sq[s < 0 ? 0 : s] : 0;
  }
  for (int t0 = s0; t0 < s1; t0 += kTile) {
    // the tile's inputs first (independent loads in flight together), then the steps
    float xt[kTile][V];
    int32_t qt[kTile];
#pragma unroll
    for (int u = 0; u < kTile; ++u) {  // steps past s1 load row s1 - 1 (unused): no branch between the loads
      const int t = min(t0 + u, s1 - 1);
      load_channels<V>(x + base + int64_t(t) * C, xt[u]);
      qt[u] = sq ? sq[t] : 0;
    }
#pragma unroll
    for (int u = 0; u < kTile; ++u) {
      const int t = t0 + u;
      if (t >= s1) break;
#pragma unroll
      for (int j = 0; j < H; ++j) sw[j] = sw[j + 1];
      sw[H] = qt[u];
      float out[V];
#pragma unroll
      for (int v = 0; v < V; ++v) {
#pragma unroll
        for (int j = 0; j < H; ++j) xw[v][j] = xw[v][j + 1];
        xw[v][H] = xt[u][v];
        float acc = bc[v];
#pragma unroll
        for (int k = 0; k < K; ++k)
          if (!kDocs || sw[k] == sw[H]) acc += wk[v][k] * xw[v][k];
        out[v] = apply_silu ? silu_f(acc) : acc;
      }
      store_channels<V>(yc + int64_t(t) * ldy, out);
    }
  }
}

// New state = padded rows T .. T+Hh-1. One thread per (b, c) walks j upwards: it reads column
// T + j (> j) before anything overwrites it, so the update is safe in place for any T.
__global__ void conv_state_kernel(const float* __restrict__ x, float* state, int64_t B, int64_t T,
                                  int64_t C, int64_t Hh) {
  const int64_t n = B * C;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C, b = idx / C;
    float* s = state + (b * C + c) * Hh;
    for (int64_t j = 0; j < Hh; ++j) {
      const int64_t i = T + j;
      s[j] = i < Hh ? s[i] : x[(b * T + (i - Hh)) * C + c];
    }
  }
}

// ---- backward ------------------------------------------------------------------------------

// Thread (c, b, segment): inputs s in [s0, s1) of batch row b, channel c (plus s in [-(K-1), 0)
// for the first segment, whose gradient is dinitial_state), outputs t in [s0, s1) for dw and
// dbias. part (null when neither dw nor dbias is wanted): row (b * nseg + segment) of
// [B * nseg][K + 1][C] doubles receives this thread's sums (K taps, then the bias).
// S > 0: the tiles come through shared memory, S - 1 tiles of cp.async in flight while one is
// walked (each thread copies and reads only its own slots: no barrier); S == 0: each tile is
// loaded into registers just before its walk, the next one warmed in L2 (the only way for
// single bf16 channels, which no cp.async size fits). kDocs false (no seq_idx): the document
// compares go (one document).
template <int K, int V, int S, bool kDocs, typename XT>
__global__ void __launch_bounds__(kConvThreads, conv_backward_blocks(V))
conv_backward_kernel(const XT* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                     const int32_t* __restrict__ seq, const float* __restrict__ state, bool apply_silu,
                     const float* __restrict__ dy, ChannelBlocks dy_blocks, XT* __restrict__ dx, int64_t ldx,
                     float* __restrict__ dstate, double* __restrict__ part, int T, int C, int seg_len, int nseg) {
  constexpr int H = K - 1;  // history length
  const int c = (blockIdx.x * blockDim.x + threadIdx.x) * V;  // channels c .. c + V - 1
  if (c >= C) return;  // no barriers below
  const int b = blockIdx.y / nseg, seg = blockIdx.y % nseg;
  int lddy = C;
  const float* dyc = channel_column(dy_blocks, const_cast<float*>(dy), b, T, C, c, &lddy);  // dy[b, 0, c]
  const int s0 = seg * seg_len, s1 = min(T, s0 + seg_len);
  float wk[V][K], bc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    bc[v] = bias ? bias[c + v] : 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) wk[v][k] = w[int64_t(c + v) * K + k];
  }
  const int64_t base = int64_t(b) * T * C + c;  // (b, t = 0, c)
  XT* const dxc = dx + int64_t(b) * T * ldx + c;  // dx[b, 0, c] (dx's rows may be wider than C)
  const int32_t* sq = kDocs ? seq + int64_t(b) * T : nullptr;
  auto same_doc = [](int32_t d0, int32_t d1) { return !kDocs || d0 == d1; };

  // Windows at step t: xw[v][j] = channel c + v's input at time t - H + j (history / zeros below
  // 0), sw[j] = its document (doc(s < 0) = doc(0)), dp[v][j] = dpre[t - H + j] (0 outside [0, T)
  // and before s0).
  float xw[V][K], dp[V][K];
  int32_t sw[K];
#pragma unroll
  for (int j = 0; j < K; ++j) {
    sw[j] = 0;
#pragma unroll
    for (int v = 0; v < V; ++v) xw[v][j] = dp[v][j] = 0.0f;
  }
#pragma unroll
  for (int j = 0; j < H; ++j) {  // times s0 - H .. s0 - 1 into slots 1 .. H
    const int s = s0 - H + j;
    float xs[V];
    if (s >= 0) load_channels<V>(x + base + int64_t(s) * C, xs);
#pragma unroll
    for (int v = 0; v < V; ++v)
      xw[v][j + 1] = s < 0 ? (state ? state[(int64_t(b) * C + c + v) * H + s + H] : 0.0f) : xs[v];
    sw[j + 1] = sq ? sq[s < 0 ? 0 : s] : 0;
  }
  double dw_acc[V][K], db_acc[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
    db_acc[v] = 0.0;
#pragma unroll
    for (int k = 0; k < K; ++k) dw_acc[v][k] = 0.0;
  }

  const int t_end = s1 + H;                 // steps t in [s0, s1 + H); t >= T has no output
  const int emit0 = seg == 0 ? 0 : s0 + H;  // from here on, step t completes dx[t - H]

  // The pipeline's slots (S > 0): [stage][step][thread] of V x values, and of V dy values.
  constexpr int kXBytes = V * int(sizeof(XT)), kGBytes = V * 4;
  __shared__ alignas(16) unsigned char xs[S > 0 ? S : 1][kConvTile][kConvThreads][kXBytes];
  __shared__ alignas(16) unsigned char gs[S > 0 ? S : 1][kConvTile][kConvThreads][kGBytes];
  // Steps tt0 .. tt0 + kConvTile - 1 into stage st (rows past T as row T - 1, zeroed after the
  // read; nothing from t_end on), then one commit: one group a tile, empty or not.
  auto issue_tile = [&](int tt0, int st) {
    if constexpr (S > 0) {
      if (tt0 < t_end) {
#pragma unroll
        for (int u = 0; u < kConvTile; ++u) {
          const int t = min(tt0 + u, T - 1);
          copy_channels_async<kXBytes>(xs[st][u][threadIdx.x], x + base + int64_t(t) * C);
          copy_channels_async<kGBytes>(gs[st][u][threadIdx.x], dyc + int64_t(t) * lddy);
        }
      }
      cp_async_commit();
    }
  };
  int rd = 0;             // the stage holding the next tile to walk
  int32_t qn[kConvTile];  // the next tile's document ids, loaded a tile ahead (S > 0)
  if constexpr (S > 0) {
#pragma unroll
    for (int j = 0; j < S - 1; ++j) issue_tile(s0 + j * kConvTile, j);
#pragma unroll
    for (int u = 0; u < kConvTile; ++u) qn[u] = sq ? sq[min(s0 + u, T - 1)] : 0;
  }
  for (int t0 = s0; t0 < t_end; t0 += kConvTile) {
    // this tile's dw and dbias terms in fp32 (at most kConvTile of them, whatever V), added in
    // double after it
    float tw[V][K], tb[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      tb[v] = 0.0f;
#pragma unroll
      for (int k = 0; k < K; ++k) tw[v][k] = 0.0f;
    }
    const bool interior = t0 + kConvTile <= s1 && t0 >= emit0 && t0 >= H;
    float xt[kConvTile][V], gt[kConvTile][V];
    int32_t qt[kConvTile];
    if constexpr (S > 0) {
      issue_tile(t0 + (S - 1) * kConvTile, rd == 0 ? S - 1 : rd - 1);
      cp_async_wait<S - 1>();  // this tile's group has landed
#pragma unroll
      for (int u = 0; u < kConvTile; ++u) {
        load_channels<V>(reinterpret_cast<const XT*>(xs[rd][u][threadIdx.x]), xt[u]);
        load_channels<V>(reinterpret_cast<const float*>(gs[rd][u][threadIdx.x]), gt[u]);
        qt[u] = qn[u];
        qn[u] = sq ? sq[min(t0 + kConvTile + u, T - 1)] : 0;
      }
      rd = rd == S - 1 ? 0 : rd + 1;
    } else {
      // The next tile's rows into L2 while this one is loaded and walked: lanes 0 and 16 cover a
      // warp's 128 bytes of bf16 x pairs and 256 of fp32 dy pairs per row (bench/NOTES.md: 0.517
      // -> 0.480 ms at Mamba-2's training shape on an H100; two or four tiles ahead 0.505 / 0.594;
      // the same in the forward made it slower, 0.257 -> 0.270).
      if ((threadIdx.x & 15) == 0) {
#pragma unroll
        for (int u = 0; u < kConvTile; ++u) {
          const int t = t0 + kConvTile + u;
          if (t < T) {
            prefetch_l2(x + base + int64_t(t) * C);
            prefetch_l2(dyc + int64_t(t) * lddy);
          }
        }
      }
      // the tile's inputs first (independent loads in flight together), then its steps
#pragma unroll
      for (int u = 0; u < kConvTile; ++u) {  // steps past T load row T - 1 and zero it: no branch between the loads
        const int t = min(t0 + u, T - 1);
        load_channels<V>(x + base + int64_t(t) * C, xt[u]);
        load_channels<V>(dyc + int64_t(t) * lddy, gt[u]);
        qt[u] = sq ? sq[t] : 0;
      }
    }
#pragma unroll
    for (int u = 0; u < kConvTile; ++u) {
      const bool in = t0 + u < T && t0 + u < t_end;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        xt[u][v] = in ? xt[u][v] : 0.0f;
        gt[u][v] = in ? gt[u][v] : 0.0f;
      }
      qt[u] = in ? qt[u] : 0;
    }
    // Step t = t0 + u. kIn (an interior tile: every step has an output t < s1, completes an input
    // s = t - H >= 0 of this segment, and reads outputs t - k >= 0) drops the range checks.
    auto step = [&](int u, auto interior) {
      constexpr bool kIn = decltype(interior)::value;
      const int t = t0 + u;
#pragma unroll
      for (int j = 0; j < H; ++j) sw[j] = sw[j + 1];
      if (kIn || t < T) sw[H] = qt[u];
      const int s = t - H;
      const bool emit = kIn || t >= emit0;  // dx of input s = t - H: outputs t - k, k = 0..H, in s's document
      float dxv[V];
#pragma unroll
      for (int v = 0; v < V; ++v) {
#pragma unroll
        for (int j = 0; j < H; ++j) {
          xw[v][j] = xw[v][j + 1];
          dp[v][j] = dp[v][j + 1];
        }
        float dpv = 0.0f;
        if (kIn || t < T) {
          xw[v][H] = xt[u][v];
          const float g = gt[u][v];
          if (apply_silu) {  // pre summed in k order from the bias, as the forward
            float pre = bc[v];
#pragma unroll
            for (int k = 0; k < K; ++k)
              if (same_doc(sw[k], sw[H])) pre += wk[v][k] * xw[v][k];
            const float sg = 1.0f / (1.0f + expf(-pre));
            dpv = g * sg * (1.0f + pre * (1.0f - sg));
          } else {
            dpv = g;
          }
          if (kIn || t < s1) {  // this segment's outputs: dw, dbias
            tb[v] += dpv;
#pragma unroll
            for (int k = 0; k < K; ++k)
              if (same_doc(sw[k], sw[H])) tw[v][k] += dpv * xw[v][k];
          }
        }
        dp[v][H] = dpv;
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < K; ++k) {
          const int tt = t - k;
          if ((kIn || (tt >= 0 && tt < T)) && same_doc(sw[H - k], sw[0])) acc += wk[v][k] * dp[v][H - k];
        }
        dxv[v] = acc;
      }
      if (emit) {
        if (kIn || s >= 0) {
          store_channels<V>(dxc + int64_t(s) * ldx, dxv);
        } else if (dstate) {
#pragma unroll
          for (int v = 0; v < V; ++v) dstate[(int64_t(b) * C + c + v) * H + (s + H)] = dxv[v];
        }
      }
    };
    if (interior) {
#pragma unroll
      for (int u = 0; u < kConvTile; ++u) step(u, std::true_type{});
    } else {
#pragma unroll
      for (int u = 0; u < kConvTile; ++u)
        if (t0 + u < t_end) step(u, std::false_type{});
    }
#pragma unroll
    for (int v = 0; v < V; ++v) {
      db_acc[v] += double(tb[v]);
#pragma unroll
      for (int k = 0; k < K; ++k) dw_acc[v][k] += double(tw[v][k]);
    }
  }
  if (part) {
    double* row = part + int64_t(blockIdx.y) * (K + 1) * C + c;
#pragma unroll
    for (int v = 0; v < V; ++v) {
#pragma unroll
      for (int k = 0; k < K; ++k) row[int64_t(k) * C + v] = dw_acc[v][k];
      row[int64_t(K) * C + v] = db_acc[v];
    }
  }
}

// dw[c, k] += sum over rows r of part[r][k][c] and dbias[c] += sum of part[r][K][c], in double,
// one fp32 rounding. A block owns 32 consecutive (k, c) and splits the rows over kReduceGroups
// thread rows (row r to group r % kReduceGroups), whose sums are added in group order: the same
// order every run. One thread per (k, c) walking all B x nseg rows (1,024 at mamba-26m's shape)
// left most of the GPU idle on a serial chain of loads.
constexpr int kReduceGroups = 8;
__global__ void __launch_bounds__(32 * kReduceGroups)
conv_reduce_partials(const double* __restrict__ part, int rows, int C, int K, float* __restrict__ dw,
                     float* __restrict__ dbias) {
  __shared__ double sums[kReduceGroups][32];
  const int64_t n = int64_t(K + 1) * C;
  const int64_t i = int64_t(blockIdx.x) * 32 + threadIdx.x;
  double s = 0.0;
  if (i < n)
    for (int r = int(threadIdx.y); r < rows; r += kReduceGroups) s += part[int64_t(r) * n + i];
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || i >= n) return;
  double total = 0.0;
#pragma unroll
  for (int g = 0; g < kReduceGroups; ++g) total += sums[g][threadIdx.x];
  const int k = int(i / C), c = int(i % C);
  float* out = k < K ? (dw ? dw + int64_t(c) * K + k : nullptr) : (dbias ? dbias + c : nullptr);
  if (out) *out += float(total);
}

// f(std::true_type{}) when the conv has document ids (seq non-null), else f(std::false_type{}):
// the windowed kernels' kDocs, whose one-document builds compile the per-tap compares out.
template <class F>
void by_documents(const int32_t* seq, F f) {
  if (seq) f(std::true_type{});
  else f(std::false_type{});
}

// Two channels a thread, or one fp32 channel: through the cp.async pipeline of kBwdStages; one
// bf16 channel (2 bytes, which no cp.async copies): register tiles. Without seq_idx, the
// one-document build.
template <int K, typename XT>
void launch_conv_backward(int V, int64_t rows, const XT* x, const float* w, const float* bias, const int32_t* seq,
                          const float* state, bool apply_silu, const float* dy, const ChannelBlocks& dy_blocks,
                          XT* dx, int64_t ldx, float* dstate, double* part, int T, int C, int seg_len, int nseg) {
  const dim3 grid(unsigned((C / V + kConvThreads - 1) / kConvThreads), unsigned(rows));
  auto launch = [&](auto vv, auto ss) {
    by_documents(seq, [&](auto docs) {
      conv_backward_kernel<K, decltype(vv)::value, decltype(ss)::value, decltype(docs)::value, XT>
          <<<grid, kConvThreads>>>(x, w, bias, seq, state, apply_silu, dy, dy_blocks, dx, ldx, dstate, part, T, C,
                                   seg_len, nseg);
    });
  };
  using Pipelined = std::integral_constant<int, kBwdStages>;
  if (V == 2) launch(std::integral_constant<int, 2>{}, Pipelined{});
  else if constexpr (sizeof(XT) == 4) launch(std::integral_constant<int, 1>{}, Pipelined{});
  else launch(std::integral_constant<int, 1>{}, std::integral_constant<int, 0>{});
}

// Channels per thread of the windowed kernels: 2 where every row of every operand starts on a
// pair (C and each block's width even, pointers aligned to a pair), else 1. MAMBALM_CONV_PAIRS=0
// forces 1 (benchmarks).
bool aligned_pair(const void* p, size_t elem) { return reinterpret_cast<uintptr_t>(p) % (2 * elem) == 0; }
template <typename E>
int conv_channels_per_thread(int64_t C, const ChannelBlocksOf<E>& blocks,
                             std::initializer_list<std::pair<const void*, size_t>> ptrs) {
  static const bool off = [] {
    const char* e = std::getenv("MAMBALM_CONV_PAIRS");
    return e && std::string(e) == "0";
  }();
  if (off || C % 2 != 0) return 1;
  for (int i = 0; i < blocks.n; ++i)
    if ((blocks.c0[i + 1] - blocks.c0[i]) % 2 != 0 || !aligned_pair(blocks.p[i], sizeof(E))) return 1;
  for (const auto& [p, elem] : ptrs)
    if (p && !aligned_pair(p, elem)) return 1;
  return 2;
}


}  // namespace

namespace {

// The forward into y (whole, when y_blocks.n == 0) or into y_blocks, from x of element type XT
// (fp32, or bf16 in mixed-precision training: Mamba-2's in_proj writes the conv's input in bf16)
// to outputs of element type YT (fp32, or bf16 there too: the SSD's inputs).
template <typename XT, typename YT>
void conv_forward_typed(const XT* xp, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                        Tensor* state, bool apply_silu, YT* y, const ChannelBlocksOf<YT>& y_blocks) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  const float* bp = bias ? bias->f32() : nullptr;
  const int32_t* sq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  const float* sp = state ? state->f32() : nullptr;
  if (B * T * C > 0 && K <= kMaxConvK) {
    const int seg_len = conv_segment_len(B, T);
    const int nseg = int((T + seg_len - 1) / seg_len);
    const int V = conv_channels_per_thread(C, y_blocks, {{xp, sizeof(XT)}, {y, sizeof(YT)}});
    const dim3 grid(unsigned((C / V + kConvThreads - 1) / kConvThreads), unsigned(B * nseg));
    // Steps per load tile: 16 of two channels (bench/NOTES.md, "conv load tiles": 0.275 -> 0.255 ms
    // at Mamba-2's training shape against 4), 8 of one.
    auto go = [&](auto kk) {
      constexpr int KK = decltype(kk)::value;
      auto launch = [&](auto vv, auto ts) {
        by_documents(sq, [&](auto docs) {
          conv_window_kernel<KK, decltype(vv)::value, decltype(ts)::value, decltype(docs)::value, XT, YT>
              <<<grid, kConvThreads>>>(xp, w.f32(), bp, sq, sp, apply_silu, y, y_blocks, int(T), int(C), seg_len, nseg);
        });
      };
      if (V == 2) launch(std::integral_constant<int, 2>{}, std::integral_constant<int, kFwdPairSteps>{});
      else launch(std::integral_constant<int, 1>{}, std::integral_constant<int, kConvTile>{});
    };
    switch (K) {
      case 1: go(std::integral_constant<int, 1>{}); break;
      case 2: go(std::integral_constant<int, 2>{}); break;
      case 3: go(std::integral_constant<int, 3>{}); break;
      case 4: go(std::integral_constant<int, 4>{}); break;
      case 5: go(std::integral_constant<int, 5>{}); break;
      default: go(std::integral_constant<int, 6>{}); break;
    }
    check_launch("causal_conv1d");
  } else if (B * T * C > 0) {  // wider kernels: one thread per element (whole y only)
    conv_kernel<XT, YT><<<blocks_for(B * T * C), kThreads>>>(xp, w.f32(), bp, sq, sp, apply_silu, y, B, T, C, K);
    check_launch("causal_conv1d");
  }
  if constexpr (std::is_same_v<XT, float>) {  // the streaming state: fp32 inference only
    if (state && K > 1 && B * C > 0) {
      conv_state_kernel<<<blocks_for(B * C), kThreads>>>(xp, state->f32(), B, T, C, K - 1);
      check_launch("causal_conv1d");
    }
  }
}

// bf16 outputs come from bf16 inputs only (mixed-precision training; causal_conv1d_parts checks).
template <typename YT>
void conv_forward(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                  bool apply_silu, YT* y, const ChannelBlocksOf<YT>& y_blocks) {
  if (x.dtype() == DType::BF16)
    conv_forward_typed(x.data<__nv_bfloat16>(), x, w, bias, seq_idx, nullptr, apply_silu, y, y_blocks);
  else if constexpr (std::is_same_v<YT, float>)
    conv_forward_typed(x.f32(), x, w, bias, seq_idx, state, apply_silu, y, y_blocks);
}

template <typename E>
ChannelBlocksOf<E> channel_blocks(const std::vector<E*>& ptrs, const std::vector<int64_t>& widths) {
  ChannelBlocksOf<E> blk;
  blk.n = int(ptrs.size());
  for (int i = 0; i < blk.n; ++i) {
    blk.p[i] = ptrs[size_t(i)];
    blk.c0[i + 1] = blk.c0[i] + int(widths[size_t(i)]);
  }
  return blk;
}

}  // namespace

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                   bool apply_silu, Tensor& y) {
  conv_forward(x, w, bias, seq_idx, state, apply_silu, y.f32(), ChannelBlocks{});
}

// Each thread writes its channel's outputs into the block holding that channel. Kernel widths
// above kMaxConvK (not Mamba's) go through a whole-width scratch and a copy per block.
void causal_conv1d_parts(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                         bool apply_silu, std::initializer_list<Tensor*> parts) {
  const char* op = "causal_conv1d_parts";
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  const DType out = parts.begin()[0]->dtype();
  for (Tensor* p : parts)
    MAMBALM_CHECK(p->dtype() == out && (out == DType::F32 || x.dtype() == DType::BF16),
                  std::string("op ") + op + " (cuda)",
                  std::string("the parts are ") + dtype_name(p->dtype()) + " and " + dtype_name(out) + " with x " +
                      dtype_name(x.dtype()),
                  "the parts share one dtype; bf16 parts take a bf16 x");
  auto run = [&](auto elem) {
    using E = decltype(elem);
    std::vector<E*> ptrs;
    std::vector<int64_t> widths;
    for (Tensor* p : parts) {
      ptrs.push_back(p->data<E>());
      widths.push_back(p->dim(-1));
    }
    if (K <= kMaxConvK && ptrs.size() <= size_t(kMaxBlocks) && C <= INT_MAX) {
      conv_forward(x, w, bias, seq_idx, state, apply_silu, static_cast<E*>(nullptr), channel_blocks(ptrs, widths));
      return;
    }
    static GrowOnlyBuffer whole_buf;
    E* whole = whole_buf.get<E>(size_t(B * T * C), op);
    conv_forward(x, w, bias, seq_idx, state, apply_silu, whole, ChannelBlocksOf<E>{});
    int64_t col = 0;
    for (size_t i = 0; i < ptrs.size(); ++i) {
      if (widths[i] > 0 && B * T > 0)
        check_cuda(cudaMemcpy2DAsync(ptrs[i], size_t(widths[i]) * sizeof(E), whole + col, size_t(C) * sizeof(E),
                                     size_t(widths[i]) * sizeof(E), size_t(B * T), cudaMemcpyDeviceToDevice,
                                     cudaStreamPerThread),
                   op, "cudaMemcpy2DAsync");
      col += widths[i];
    }
  };
  if (out == DType::BF16) run(__nv_bfloat16{});
  else run(float{});
}

namespace {

// The backward with dy whole (dy_blocks.n == 0) or as dy_blocks; dx_col0 >= 0: dx's columns
// [dx_col0, dx_col0 + C) of its wider rows take the gradient.
void conv_backward(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                   const Tensor* initial_state, bool apply_silu, const float* dy, const ChannelBlocks& dy_blocks,
                   Tensor& dx, Tensor* dw, Tensor* dbias, Tensor* dinitial_state, const char* op,
                   int64_t dx_col0 = -1) {
  static GrowOnlyBuffer scratch;
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1);
  if (K > kMaxConvK)
    fail(std::string("op ") + op + " (cuda)", "kernel width K = " + std::to_string(K) + " is above the supported " +
                                                  std::to_string(kMaxConvK));
  if (B * C == 0) return;
  float* dsp = dinitial_state ? dinitial_state->f32() : nullptr;
  if (T == 0) {  // no outputs: the history's gradient is zero, dw and dbias gain nothing
    if (dsp && K > 1) check_cuda(cudaMemsetAsync(dsp, 0, size_t(B * C * (K - 1)) * sizeof(float), cudaStreamPerThread),
                                 op, "cudaMemsetAsync");
    return;
  }
  // Segments of 64 inputs (128 for long rows): enough threads to fill the GPU at T ~ 300, and the
  // partial rows (B * nseg of them) stay a few percent of the traffic at B T = 16384.
  const int seg_len = conv_segment_len(B, T);
  const int nseg = int((T + seg_len - 1) / seg_len);
  const int64_t rows = B * nseg;
  double* part = nullptr;
  if (dw || dbias) part = scratch.get<double>(size_t(rows * (K + 1) * C), op);
  const size_t xe = x.dtype() == DType::BF16 ? 2 : 4;
  const int64_t ldx = dx_col0 >= 0 ? dx.dim(-1) : C, dx_off = std::max<int64_t>(dx_col0, 0);
  void* dx0 = static_cast<char*>(dx.raw()) + dx_off * int64_t(xe);
  const int V = ldx % 2 != 0 ? 1 : conv_channels_per_thread(C, dy_blocks, {{x.raw(), xe}, {dx0, xe}, {dy, sizeof(float)}});
  const float* bp = bias ? bias->f32() : nullptr;
  const int32_t* sq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  const float* sp = initial_state ? initial_state->f32() : nullptr;
  // x and dx share their element type: fp32, or bf16 in mixed-precision training
  auto launch = [&](auto* xp, auto* dxp) {
#define MAMBALM_CONV_BWD(KK) \
  launch_conv_backward<KK>(V, rows, xp, w.f32(), bp, sq, sp, apply_silu, dy, dy_blocks, dxp + dx_off, ldx, dsp, part, int(T), int(C), seg_len, nseg)
    switch (K) {
      case 1: MAMBALM_CONV_BWD(1); break;
      case 2: MAMBALM_CONV_BWD(2); break;
      case 3: MAMBALM_CONV_BWD(3); break;
      case 4: MAMBALM_CONV_BWD(4); break;
      case 5: MAMBALM_CONV_BWD(5); break;
      default: MAMBALM_CONV_BWD(6); break;
    }
#undef MAMBALM_CONV_BWD
  };
  if (x.dtype() == DType::BF16) launch(x.data<__nv_bfloat16>(), dx.data<__nv_bfloat16>());
  else launch(x.f32(), dx.f32());
  check_launch(op);
  if (part) {
    conv_reduce_partials<<<unsigned(((K + 1) * C + 31) / 32), dim3(32, kReduceGroups)>>>(
        part, int(rows), int(C), int(K), dw ? dw->f32() : nullptr, dbias ? dbias->f32() : nullptr);
    check_launch(op);
  }
}

}  // namespace

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                            const Tensor* initial_state, bool apply_silu, const Tensor& dy, Tensor& dx, Tensor* dw,
                            Tensor* dbias, Tensor* dinitial_state) {
  conv_backward(x, w, bias, seq_idx, initial_state, apply_silu, dy.f32(), ChannelBlocks{}, dx, dw, dbias,
                dinitial_state, "causal_conv1d_backward");
}

// Each thread reads its channel's dy from the block holding that channel.
void causal_conv1d_backward_parts(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx,
                                  bool apply_silu, std::initializer_list<const Tensor*> dy_parts, Tensor& dx, Tensor* dw,
                                  Tensor* dbias, int64_t dx_col0) {
  const char* op = "causal_conv1d_backward_parts";
  MAMBALM_CHECK(dy_parts.size() <= size_t(kMaxBlocks) && x.dim(2) <= INT_MAX, std::string("op ") + op + " (cuda)",
                std::to_string(dy_parts.size()) + " blocks, at most " + std::to_string(kMaxBlocks));
  std::vector<float*> ptrs;
  std::vector<int64_t> widths;
  for (const Tensor* p : dy_parts) {
    ptrs.push_back(p->f32());
    widths.push_back(p->dim(-1));
  }
  conv_backward(x, w, bias, seq_idx, nullptr, apply_silu, nullptr, channel_blocks(ptrs, widths), dx, dw, dbias, nullptr,
                op, dx_col0);
}

}  // namespace mambalm::ops::cuda
