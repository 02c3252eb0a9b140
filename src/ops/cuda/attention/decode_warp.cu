// Warp-streaming decode (decode_warp_kernel), one query per sequence: the default decode for
// head dims 64 and 128. Every warp streams its own tiles of keys for all query heads of a KV
// head, no block barrier in the loop; the last block of a (sequence, KV head) to finish merges
// the splits (no second launch). Also the split planning and the group-size dispatch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

// Warp-streaming decode (the default; MAMBALM_ATTN_DECODE=split selects the split + combine
// kernels of decode_split.cu).
//
// Why: the split kernel (decode_split.cu) walks a block's keys in 64-row chunks with three
// block barriers and a serial per-head softmax per chunk, so a block has one chunk in flight
// and spends much of its time between loads (1.2-2.2 TB/s on the H200). Here every warp
// streams its own tiles of keys with no block barrier inside the loop; the next tile's K loads
// issue right after the current K was used and its V loads right after the current V was used.
//
// Layout. A warp tile is TK = RPL * U keys of one (sequence, KV head): LR = D / 8 lanes hold 8
// elements each of one row (one 16-byte load for bf16), RPL = 32 / LR rows per load step, U
// steps. Lane (r = lane / LR, li = lane % LR) holds rows u * RPL + r, u < U, and serves all G
// query heads of the KV head, so each K/V byte is read once. Its V = U * G partial dot
// products are summed over the LR lanes of a row by a reduce-scatter: log2 LR shuffle levels,
// each halving the values a lane keeps (V - F shuffles in all, against V log2 LR for
// butterflies); lane li ends with F = V / LR full scores, those of index j = F * li + i
// (j = u * G + g). The online softmax keeps a running max per head that is uniform over the
// lanes holding that head (xor-max over the lane bits that select the key); probabilities and
// max corrections go through a small per-warp shared buffer (double-buffered, one __syncwarp
// per tile) to the P V update, which skips the accumulator rescale when no head's max moved.
//
// Splits: grid = (KV head * head chunk, split, sequence): the KV heads of one key range are
// neighbours in launch order, so blocks that run together read whole cache rows of all heads
// (2 KB at 8 x 128 bf16) rather than 256-byte pieces of distant rows. A block has kWdWarps
// warps; warp w takes tiles w, w + kWdWarps, ... of the block's split. The split count is
// planned from the capacity (lengths are on the device) so that the blocks fill the resident
// slots of the chip in as few waves as possible. Each block merges its warps through shared
// memory; with one active split it writes the output itself, else it writes (max, sum, acc)
// partials and the last block of its (sequence, KV head, chunk) to arrive (atomic counter,
// reset by that block) merges them, so there is no second launch.
constexpr int kWdWarps = 4;
constexpr int kWdMaxSplits = 128;

template <int D, int G, int U>
struct WdShape {
  static constexpr int LR = D / 8;
  static constexpr int LOG_LR = LR == 8 ? 3 : LR == 16 ? 4 : 5;
  static constexpr int RPL = 32 / LR;
  static constexpr int TK = RPL * U;
  static constexpr int V = U * G;
  static constexpr int F = V / LR;
  static constexpr int HL = F < G ? F : G;         // heads held per lane
  static constexpr int O0 = G / F > 1 ? G / F : 1; // lowest lane bit that changes the key
  static_assert(V >= LR && V % LR == 0 && (1 << LOG_LR) == LR, "tile shape");
};

// 4 blocks (16 warps) per SM where the registers allow it without spills (<= 128 per thread).
template <int D, int G, int U, class KV>
constexpr int wd_min_blocks() {
  return sizeof(KV) == 2 && G == 4 && D == 128 && U == 4 ? 4 : 1;
}

template <int D, int G, int U, class KV>
__global__ void __launch_bounds__(kWdWarps * 32, wd_min_blocks<D, G, U, KV>())
decode_warp_kernel(const float* __restrict__ q, const KV* __restrict__ kc,
                   const KV* __restrict__ vc, const int* __restrict__ lengths, float scale_log2,
                   float* __restrict__ part_acc, float* __restrict__ part_ml,
                   int* __restrict__ counters, float* __restrict__ out, int capacity, int Hq,
                   int Hkv, int head_chunks, int split_len, int splits) {
  using S = WdShape<D, G, U>;
  constexpr int LR = S::LR, RPL = S::RPL, TK = S::TK, V = S::V, F = S::F, HL = S::HL;
  constexpr int W = kWdWarps;
  constexpr unsigned kAll = 0xffffffffu;
  __shared__ __align__(16) float s_buf[W][2][RPL * V + G];  // p [RPL][V], then corr [G]
  __shared__ __align__(16) float s_acc[W][G][D];
  __shared__ float s_m[W][G], s_l[W][G];
  __shared__ float s_w[G][kWdMaxSplits];
  __shared__ int s_last;

  const int b = blockIdx.z, split = blockIdx.y;
  const int kvh = blockIdx.x / head_chunks, chunk = blockIdx.x % head_chunks;
  const int unit = blockIdx.z * gridDim.x + blockIdx.x;
  const int group = Hq / Hkv;
  const int h0 = kvh * group + chunk * G;
  const int Gc = min(G, group - chunk * G);
  float* __restrict__ ob = out + (int64_t(b) * Hq + h0) * D;  // [Gc][D]
  const int len = lengths[b];
  if (len <= 0) {  // no keys: zeros, written once
    if (split == 0)
      for (int i = threadIdx.x; i < Gc * D; i += W * 32) ob[i] = 0.f;
    return;
  }
  const int k_begin = split * split_len;
  if (k_begin >= len) return;  // past this sequence's length: not counted by the merge
  const int k_end = min(len, k_begin + split_len);
  const int n_act = min(splits, (len + split_len - 1) / split_len);
  const int n_tiles = (k_end - k_begin + TK - 1) / TK;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int r = lane / LR, li = lane % LR, d0 = li * 8;
  const int64_t kv_ld = int64_t(Hkv) * D;
  const int64_t row_off = (int64_t(b) * capacity * Hkv + kvh) * D + d0 + r * kv_ld;
  const KV* __restrict__ kb = kc + row_off;
  const KV* __restrict__ vb = vc + row_off;

  Raw8<KV> kr[U], vr[U];
  // Rows of tile t held by this lane; rows at or past k_end (another split's, or past the
  // length: possibly NaN) read as zeros.
  auto load_tile = [&](Raw8<KV>(&x)[U], const KV* __restrict__ base, int t) {
    const int row0 = k_begin + t * TK;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (row0 + u * RPL + r < k_end) x[u].load(base + int64_t(row0 + u * RPL) * kv_ld);
      else x[u].zero();
    }
  };
  int t = warp;
  if (t < n_tiles) {
    load_tile(kr, kb, t);
    load_tile(vr, vb, t);
  }

  float qv[G][8], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f), c = a;
    if (g < Gc) {
      const float4* qp = reinterpret_cast<const float4*>(q + (int64_t(b) * Hq + h0 + g) * D + d0);
      a = qp[0];
      c = qp[1];
    }
    qv[g][0] = a.x * scale_log2; qv[g][1] = a.y * scale_log2;
    qv[g][2] = a.z * scale_log2; qv[g][3] = a.w * scale_log2;
    qv[g][4] = c.x * scale_log2; qv[g][5] = c.y * scale_log2;
    qv[g][6] = c.z * scale_log2; qv[g][7] = c.w * scale_log2;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0.f;
  }
  float m[HL], l[HL];  // running max (log2 units) and sum of this lane's heads
#pragma unroll
  for (int h = 0; h < HL; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.f;
  }

  for (int it = 0; t < n_tiles; t += W, ++it) {
    const int row0 = k_begin + t * TK;
    // Partial scores over this lane's 8 elements: part[u * G + g].
    float part[V];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[8];
      kr[u].get(kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) s = fmaf(qv[g][e], kf[e], s);
        part[u * G + g] = s;
      }
    }
    if (t + W < n_tiles) load_tile(kr, kb, t + W);

    // Reduce-scatter over the LR lanes of a row: at offset o a lane keeps the upper half of
    // its values when (lane & o), the lower half otherwise, and adds the partner's copy.
#pragma unroll
    for (int lvl = 0; lvl < S::LOG_LR; ++lvl) {
      const int o = LR >> (lvl + 1);
      constexpr int kHalfTop = V / 2;
      const int half = kHalfTop >> lvl;
      const bool up = (lane & o) != 0;
#pragma unroll
      for (int i = 0; i < kHalfTop; ++i) {
        if (i < half) {
          const float send = up ? part[i] : part[half + i];
          const float keep = up ? part[half + i] : part[i];
          part[i] = keep + __shfl_xor_sync(kAll, send, o);
        }
      }
    }
    // Scores j = F * li + i: key row0 + (j / G) * RPL + r, head j % G.
    float sc[F];
#pragma unroll
    for (int i = 0; i < F; ++i) {
      const int key = row0 + ((F * li + i) / G) * RPL + r;
      sc[i] = key < k_end ? part[i] : -INFINITY;
    }
    float tm[HL];
#pragma unroll
    for (int h = 0; h < HL; ++h) tm[h] = -INFINITY;
#pragma unroll
    for (int i = 0; i < F; ++i) tm[i % HL] = fmaxf(tm[i % HL], sc[i]);
#pragma unroll
    for (int o = S::O0; o < 32; o <<= 1)
#pragma unroll
      for (int h = 0; h < HL; ++h) tm[h] = fmaxf(tm[h], __shfl_xor_sync(kAll, tm[h], o));
    // Key row0 (u 0, r 0) is valid, so every head's tile max is finite.
    bool moved = false;
    float corr[HL];
#pragma unroll
    for (int h = 0; h < HL; ++h) {
      const float mn = fmaxf(m[h], tm[h]);
      moved |= mn > m[h];
      corr[h] = fast_exp2(m[h] - mn);  // 0 on the first tile (m = -inf)
      m[h] = mn;
      l[h] *= corr[h];
    }
    float* buf = s_buf[warp][it & 1];
#pragma unroll
    for (int i = 0; i < F; ++i) {
      const float p = fast_exp2(sc[i] - m[i % HL]);  // 0 for masked keys
      l[i % HL] += p;
      buf[r * V + F * li + i] = p;
    }
    if (r == 0 && F * li < G) {
#pragma unroll
      for (int h = 0; h < HL; ++h) buf[RPL * V + F * li + h] = corr[h];
    }
    __syncwarp();
    if (__any_sync(kAll, moved)) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float c = buf[RPL * V + g];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] *= c;
      }
    }
    const float* pr = buf + r * V;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float vf[8];
      vr[u].get(vf);
      float p[G];
      if constexpr (G % 4 == 0) {
#pragma unroll
        for (int g4 = 0; g4 < G / 4; ++g4) {
          const float4 x = *reinterpret_cast<const float4*>(pr + u * G + 4 * g4);
          p[4 * g4] = x.x; p[4 * g4 + 1] = x.y; p[4 * g4 + 2] = x.z; p[4 * g4 + 3] = x.w;
        }
      } else {
#pragma unroll
        for (int g = 0; g < G; ++g) p[g] = pr[u * G + g];
      }
#pragma unroll
      for (int g = 0; g < G; ++g)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] = fmaf(p[g], vf[e], acc[g][e]);
    }
    if (t + W < n_tiles) load_tile(vr, vb, t + W);
    // No barrier here: the next tile writes the other half of s_buf, and a lane can only
    // reach this half again after the next tile's __syncwarp, which every lane passes after
    // reading this one.
  }

  // Merge the warp's row slots, then the warps.
#pragma unroll
  for (int o = LR; o < 32; o <<= 1)
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] += __shfl_xor_sync(kAll, acc[g][e], o);
#pragma unroll
  for (int o = S::O0; o < 32; o <<= 1)
#pragma unroll
    for (int h = 0; h < HL; ++h) l[h] += __shfl_xor_sync(kAll, l[h], o);
  if (r == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float4* dst = reinterpret_cast<float4*>(&s_acc[warp][g][d0]);
      dst[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
      dst[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
    }
    if (F * li < G) {
#pragma unroll
      for (int h = 0; h < HL; ++h) {
        s_m[warp][F * li + h] = m[h];
        s_l[warp][F * li + h] = l[h];
      }
    }
  }
  __syncthreads();
  // Warp 0 always had a tile, so M is finite; warps without tiles weigh 0 (acc and l are 0).
  const bool single = n_act == 1;
  float* pa = part_acc + (int64_t(unit) * splits + split) * G * D;
  for (int idx = threadIdx.x; idx < Gc * D; idx += W * 32) {
    const int g = idx / D, d = idx % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, s_m[w][g]);
    float L = 0.f, a = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float e = fast_exp2(s_m[w][g] - M);
      L += s_l[w][g] * e;
      a += s_acc[w][g][d] * e;
    }
    if (single) ob[idx] = a / L;
    else pa[idx] = a;
  }
  if (single) return;
  if (threadIdx.x < Gc) {
    const int g = threadIdx.x;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w) M = fmaxf(M, s_m[w][g]);
    float L = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w) L += s_l[w][g] * fast_exp2(s_m[w][g] - M);
    float* ml = part_ml + ((int64_t(unit) * splits + split) * G + g) * 2;
    ml[0] = M;
    ml[1] = L;
  }

  // The last block of this unit to arrive merges the n_act partials.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) s_last = atomicAdd(&counters[unit], 1) == n_act - 1;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const float* ml = part_ml + int64_t(unit) * splits * G * 2;
  for (int g = warp; g < Gc; g += W) {
    float M = -INFINITY;
    for (int s = lane; s < n_act; s += 32) M = fmaxf(M, __ldcg(ml + (s * G + g) * 2));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(kAll, M, o));
    float L = 0.f;
    for (int s = lane; s < n_act; s += 32)
      L += __ldcg(ml + (s * G + g) * 2 + 1) * fast_exp2(__ldcg(ml + (s * G + g) * 2) - M);
    L = warp_sum(L);  // >= 1: the split holding the max has l >= 1
    const float inv = 1.0f / L;
    for (int s = lane; s < n_act; s += 32)
      s_w[g][s] = fast_exp2(__ldcg(ml + (s * G + g) * 2) - M) * inv;
  }
  __syncthreads();
  const float4* pa0 = reinterpret_cast<const float4*>(part_acc + int64_t(unit) * splits * G * D);
  for (int idx = threadIdx.x; idx < Gc * (D / 4); idx += W * 32) {
    const int g = idx / (D / 4);
    float4 a0 = make_float4(0.f, 0.f, 0.f, 0.f), a1 = a0;
    int s = 0;
    for (; s + 1 < n_act; s += 2) {
      const float4 x0 = __ldcg(pa0 + int64_t(s) * (G * D / 4) + idx);
      const float4 x1 = __ldcg(pa0 + int64_t(s + 1) * (G * D / 4) + idx);
      const float w0 = s_w[g][s], w1 = s_w[g][s + 1];
      a0.x = fmaf(w0, x0.x, a0.x); a0.y = fmaf(w0, x0.y, a0.y);
      a0.z = fmaf(w0, x0.z, a0.z); a0.w = fmaf(w0, x0.w, a0.w);
      a1.x = fmaf(w1, x1.x, a1.x); a1.y = fmaf(w1, x1.y, a1.y);
      a1.z = fmaf(w1, x1.z, a1.z); a1.w = fmaf(w1, x1.w, a1.w);
    }
    if (s < n_act) {
      const float4 x0 = __ldcg(pa0 + int64_t(s) * (G * D / 4) + idx);
      const float w0 = s_w[g][s];
      a0.x = fmaf(w0, x0.x, a0.x); a0.y = fmaf(w0, x0.y, a0.y);
      a0.z = fmaf(w0, x0.z, a0.z); a0.w = fmaf(w0, x0.w, a0.w);
    }
    reinterpret_cast<float4*>(ob)[idx] =
        make_float4(a0.x + a1.x, a0.y + a1.y, a0.z + a1.z, a0.w + a1.w);
  }
  if (threadIdx.x == 0) counters[unit] = 0;  // ready for the next call
}

// Grow-only counters of the warp decode's merge, zero between calls (the merging block resets
// its own); zeroed when (re)allocated, which happens on a warm-up call, never in a capture.
int* decode_counters(size_t n) {
  static GrowOnlyBuffer buf;  // zero-filled when it grows
  return buf.get<int>(n, "attention_decode");
}

// Load steps per warp tile: 4 (bf16, D 128: 4 KB of K and V in flight per warp), 2 for groups
// of 8 heads at D 128 (registers), and at least D / 8 / G so that the reduce-scatter ends with
// one or more whole scores per lane.
template <int D, int G>
constexpr int wd_steps() {
  return std::max((D / 8) / G, G >= 8 && D >= 128 ? 2 : 4);
}

template <int D, int G, class KV, int U = wd_steps<D, G>()>
void launch_warp_decode(const Tensor& q, const KV* k, const KV* v, const Tensor& lengths,
                        float scale, Tensor& out, int capacity, int Hkv) {
  using S = WdShape<D, G, U>;
  const int B = int(q.dim(0)), Hq = int(q.dim(1));
  const int group = Hq / Hkv;
  const int chunks = (group + G - 1) / G;
  auto kernel = decode_warp_kernel<D, G, U, KV>;
  static int occupancy = 0;
  if (occupancy == 0) {
    check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occupancy, kernel, kWdWarps * 32, 0),
               "attention_decode", "occupancy");
    occupancy = std::max(occupancy, 1);
  }
  // Split plan (lengths are on the device: plan for the capacity). Cost of s splits: the waves
  // of resident blocks times the keys per block plus a fixed per-block cost of two tiles per
  // warp; the fewest splits among equal costs.
  const int64_t units = int64_t(B) * Hkv * chunks;
  const int64_t slots = int64_t(sm_count()) * occupancy;
  const int64_t step = int64_t(kWdWarps) * S::TK;
  const int64_t s_max =
      std::max<int64_t>(1, std::min<int64_t>(kWdMaxSplits, (capacity + step - 1) / step));
  int64_t best_len = 0, best_splits = 0;
  double best_cost = 0;
  for (int64_t s = 1; s <= s_max; ++s) {
    const int64_t sl = ((capacity + s - 1) / s + step - 1) / step * step;
    const int64_t n = (capacity + sl - 1) / sl;
    const int64_t waves = (units * n + slots - 1) / slots;
    const double cost = double(waves) * double(sl + 2 * step);
    if (best_splits == 0 || cost < best_cost) {
      best_cost = cost;
      best_len = sl;
      best_splits = n;
    }
  }
  const int64_t splits = best_splits, split_len = best_len;
  const size_t acc_floats = size_t(units) * splits * G * D;
  float* scratch = attention_decode_scratch(acc_floats + size_t(units) * splits * G * 2);
  int* counters = decode_counters(size_t(units));
  const dim3 grid(unsigned(Hkv * chunks), unsigned(splits), unsigned(B));
  kernel<<<grid, kWdWarps * 32>>>(q.f32(), k, v, lengths.data<int32_t>(), scale * kLog2e, scratch,
                                  scratch + acc_floats, counters, out.f32(), capacity, Hq, Hkv,
                                  chunks, int(split_len), int(splits));
  check_launch("attention_decode");
}

// Group size G (query heads per KV head, per block) and load steps per warp tile.
template <int D, class KV>
void launch_warp_decode_any(const Tensor& q, const KV* k, const KV* v, const Tensor& lengths,
                            float scale, Tensor& out, int capacity, int Hkv, bool eight_steps) {
  const int group = int(q.dim(1)) / Hkv;
  if (group <= 2) launch_warp_decode<D, 2, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
  else if (group <= 4) {
    if constexpr (D == 128 && sizeof(KV) == 2) {
      if (eight_steps) {
        launch_warp_decode<D, 4, KV, 8>(q, k, v, lengths, scale, out, capacity, Hkv);
        return;
      }
    }
    launch_warp_decode<D, 4, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
  }
  else launch_warp_decode<D, 8, KV>(q, k, v, lengths, scale, out, capacity, Hkv);
}

}  // namespace

void attention_decode_warp(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                           const Tensor& lengths, float scale, Tensor& out, bool eight_steps) {
  const int64_t Dh = q.dim(2);
  const int64_t capacity = k_cache.dim(1), Hkv = k_cache.dim(2);
  const bool bf16 = k_cache.dtype() == DType::BF16;
#define MAMBALM_DEC_LAUNCH(D)                                                                    \
  do {                                                                                           \
    if (bf16)                                                                                    \
      launch_warp_decode_any<D, uint16_t>(q, k_cache.data<uint16_t>(), v_cache.data<uint16_t>(), \
                                          lengths, scale, out, int(capacity), int(Hkv),          \
                                          eight_steps);                                          \
    else                                                                                         \
      launch_warp_decode_any<D, float>(q, k_cache.f32(), v_cache.f32(), lengths, scale, out,     \
                                       int(capacity), int(Hkv), eight_steps);                    \
  } while (0)
  if (Dh == 64) MAMBALM_DEC_LAUNCH(64);
  else if (Dh == 128) MAMBALM_DEC_LAUNCH(128);
  else fail("op attention_decode (cuda)",
            "warp kernel: head dim " + std::to_string(Dh) + ", not 64 or 128");
#undef MAMBALM_DEC_LAUNCH
}

}  // namespace mambalm::ops::cuda
