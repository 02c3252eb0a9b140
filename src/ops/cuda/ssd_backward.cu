// Mamba-2 SSD backward on CUDA (ssd_chunked_backward): the chunked equations of
// ops/cpu/ssd_backward.cpp in nine kernels whose matrix products run on the tensor cores
// (mma.sync with fp32 accumulation; the fast products round the operands to nearest in shared
// memory, to bf16; with Fp32Products::Exact each product is three
// TF32 products of the operands' halves, fp32-accurate, for --dtype f32 training); cumulative decays,
// states, the state passing and every reduction in fp32 (the last sums over chunks and sequences
// in double).
//
// Per chunk c (kernel chunk Q = 64..256, a multiple of 64; the last chunk has L <= Q tokens),
// head h (group g), with cum_i the inclusive cumulative sum of dt A inside the chunk, seg_i the
// number of document starts at local positions <= i, S the state entering the chunk and dS the
// gradient w.r.t. the state leaving it (see the CPU file for the derivation):
//   W_ij = exp(cum_i - cum_j) [j <= i, seg_i = seg_j]   e_i = exp(cum_i) [seg_i = 0]
//   w_j  = exp(cum_last - cum_j) [seg_j = seg_last]      e_last = e_{L-1}
//   dX_j   = dt_j (sum_i W_ij CB_ij dY_i + w_j dS B_j) + D dY_j
//   ddir_j = x_j . (sum_i W_ij CB_ij dY_i + w_j dS B_j)          (the direct part of ddt_j)
//   Gs_ij  = sum_{h in g} dt_j W_ij (dY_i . X_j)                (the group's dLoss/dCB)
//   dB_j   = sum_i Gs_ij C_i + sum_h w_j dt_j dS^T X_j          dC_i = sum_j Gs_ij B_j + sum_h e_i S^T dY_i
//   dcum_m = R_m - K_m + e_m dY_m . S C_m - u_m + [m = L-1] (sum_j u_j + e_last <dS, S>)
//            with Q_ij = CB_ij dt_j W_ij (dY_i . X_j), R = row sums of Q, K = column sums of Q,
//            u_j = dt_j w_j x_j . dS B_j
//   ddt_m  = ddir_m + A sum_{k >= m} dcum_k,   dA += sum_m dt_m sum_{k >= m} dcum_k,   dD += x . dY
// Row and column sums of Q both come from the same rounded products (kernel gram), so the suffix
// sums of R - K telescope to sums over rectangles of Q, as they do exactly: ddt does not inherit
// the cancellation of the triangle sums (measured: ddt and dA agree with the CPU as closely as dx).
//
// Kernels, with their cost at the issue's shape (B 2, L 4096, H 128, P 64, G 8, N 128, Q 256: 4096
// chunk-heads, 256 chunk-groups; FLOPs dense TF32; "L2" is the operand traffic from L2 to the
// SMs, which bounds these kernels; measured on the H200, 2026-11-30, bench/cuda/ssd.cpp):
//   prep    cum, dt, w, e (chunk-major copies), document segments, e_last     ~20 MB          0.06 ms
//   gram    per (chunk, group, 64x64 tile of the lower triangle): CB = C B^T (K = N), written for
//           dx; then per head of the group G = dY X^T (K = P), Gs += dt W o G, row and column
//           sums of CB o dt W o G                                 24 GFLOP, L2 1.5 GB       0.74 ms
//   states  per (chunk, head, 64 x 128 tile of P x N; 64 x 64 when N <= 64): Z = (w dt X)^T B and
//           dZ = (e dY)^T C, K = L
//           (Z of the last chunk and dZ of the first are not needed)  32 GFLOP, L2 1.5 GB   0.48 ms
//   pass    per 4 state elements: S_c (forward, in place of Z) and dS_c (reverse; in place of dZ
//           with the split products, else bf16 into dS16: dx and dB round it so as they stage it),
//           the partial <dS_c, S_c> per warp, dinitial_state          DRAM 0.67 GB          0.20 ms
//   dx      per (chunk, head, 64-row tile): acc = (w B) dS^T (K = N), snapshot x . acc (u),
//           acc += (W o CB)^T dY over the rows at or below (K <= L); dx, ddir
//                                                                  39 GFLOP, L2 2.9 GB       0.99 ms
//   dB      per (chunk, group, 64 rows, 128 columns of N (64 when N <= 64)): K = the group's heads x P, then the
//           chunk's rows at or below                               20 GFLOP, L2 0.85 GB      0.29 ms
//   dC      the same with S, e dY and the rows at or above, plus per head C_i . (e_i S^T dY_i)
//                                                                  20 GFLOP, L2 0.9 GB       0.34 ms
//   fin     per (chunk, 32 heads): dcum, its suffix sums, ddt, the chunk's dA part               0.06 ms
//   reduce  per head: dA, dD += the partials in a fixed order (double)                          0.005 ms
// In all ~137 GFLOP (0.35 ms at 400 TFLOP/s) and ~4.3 GB of DRAM traffic (1.0 ms at 4.3 TB/s), but
// ~8.5 GB from L2 to the SMs at 2-3.4 TB/s: the op takes 3.09 ms (gram beside states and pass,
// then dx, dB and dC together, on side streams: 0.08 ms less than one after the other). The
// matrix products stage their operands through registers into double-buffered shared memory
// (one barrier per stage); states streams them with cp.async through a three-stage ring (the
// same structure for gram, dx, dB and dC measured slower: 0.81, 1.16, 0.48, 0.51 ms, its extra
// fix-up pass and barrier per stage cost more than the deeper pipeline gained).
// At the study's small layer (B 64, L 1024, H 16, P 64, G 8, N 64, Q 64; 2026-12-01) 128-column
// tiles of states, dB and dC multiplied zeros in half their columns at two blocks per SM; 64-column
// tiles (72-80 registers, three blocks per SM): states 0.62 -> 0.42 ms, dB 0.38 -> 0.28, dC 0.45
// -> 0.32, the op 3.0 -> 2.6 ms.
// Deterministic: every sum over heads, tiles, chunks and sequences has a fixed partition and order
// (no atomics).
//
// Shapes: the kernels read four elements at a time, so they need P and N multiples of 4 and
// 16-byte aligned x, dy, dx, Bm, Cm, dBm, dCm; other shapes (and unaligned views) run the same
// kernels on zero-padded fp32 copies (P and N rounded up to 4). Rows past a chunk's end and
// columns past P or N are zero-filled in shared memory. x, Bm and Cm come in fp32 or, from
// mixed-precision training, in bf16 (ssd_backward.cuh, ldg4).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/ssd_backward.cuh"

namespace mambalm::ops::cuda {

namespace ssd_bw {

// ---- prep: grid (nc, ceil(H / 32), B), 256 threads ---------------------------------------------
// The chunk's dt of 32 heads through shared memory (coalesced over heads), one warp per head scans
// cum (each lane 2..8 consecutive positions, then a shuffle scan across lanes) and writes cum, dt,
// w, e and e_last. Warp 0 first counts the document starts (seg).
__global__ void __launch_bounds__(256) ssd_bw_prep_kernel(BwArgs a) {
  __shared__ float sdt[kQMax][33];
  __shared__ int sseg[kQMax];
  const int c = blockIdx.x, h0 = blockIdx.y * 32, b = blockIdx.z;
  const int c0 = c * a.Q, L = min(a.Q, a.T - c0);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int per = a.Q / 32;  // 2, 4, 6 or 8
  for (int idx = threadIdx.x; idx < a.Q * 32; idx += 256) {
    const int i = idx >> 5, hl = idx & 31;
    sdt[i][hl] = (i < L && h0 + hl < a.H) ? a.dt[(int64_t(b) * a.T + c0 + i) * a.H + h0 + hl] : 0.f;
  }
  if (warp == 0) {
    const int32_t* sq = a.seq ? a.seq + int64_t(b) * a.T : nullptr;
    int f[8];
    int run = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = lane * per + e, t = c0 + i;
      if (e < per && sq && i < L && t > 0 && sq[t] != sq[t - 1]) ++run;
      f[e] = run;
    }
    int incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (e < per) sseg[lane * per + e] = incl - run + f[e];
  }
  __syncthreads();
  const int seg_last = sseg[L - 1];
  for (int hl = warp; hl < 32; hl += 8) {
    const int h = h0 + hl;
    if (h >= a.H) break;
    const float Ah = a.A[h];
    float v[8];
    float run = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if (e < per) run += sdt[lane * per + e][hl] * Ah;
      v[e] = run;
    }
    float incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float n = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += n;
    }
    const float excl = incl - run;
    float mine = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (e < per && lane * per + e == L - 1) mine = excl + v[e];
    const float last = __shfl_sync(0xffffffffu, mine, (L - 1) / per);
    const int64_t base = bhc(a, b, h, c) * a.Q;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if (e < per) {
        const int i = lane * per + e;
        const float ci = excl + v[e];
        a.cum[base + i] = ci;
        a.dtq[base + i] = sdt[i][hl];
        a.wv[base + i] = (i < L && sseg[i] == seg_last) ? expf(last - ci) : 0.f;
        a.ev[base + i] = (i < L && sseg[i] == 0) ? expf(ci) : 0.f;
      }
    }
    if (lane == 0) a.elast[bhc(a, b, h, c)] = seg_last == 0 ? expf(last) : 0.f;
  }
  if (blockIdx.y == 0 && a.seg)
    for (int i = threadIdx.x; i < a.Q; i += 256) a.seg[(int64_t(b) * a.nc + c) * a.Q + i] = sseg[i];
}

// ---- states: Z and dZ, one 64 x TN tile of [P, N] per block (256 threads) ---------------------
// blockIdx.x = ((((b nc + c) H + h) 2 + which) Pt + pt) Nt + nt: the heads of a chunk run side by
// side, so that the B and C rows their group shares come from L2 rather than again from DRAM
// (head-major, the blocks in flight spanned two heads at B 1, L 16384). which 0: Z = (w dt X)^T B
// into S; which 1: dZ = (e dY)^T C into dS. A(p, j) = scale_j src_j[p] ([32 j][64 p]), B(j, n) = B_j[n]
// ([32 j][TN n]). Z of the last chunk (only the final state, not needed) and dZ of the first
// (only dinitial_state) are skipped when unused. TN = 32 NI columns of N: 128, or 64 when N <= 64
// (the study's small models: a 128-column tile would multiply zeros in half its columns and hold
// twice the accumulators, which keeps the kernel at two blocks per SM).
// Words of one stage: A [32][72] + B [32][TN + 8]. The cp.async ring holds the raw stages (fp32,
// or bf16 inputs in the first half of the same space); the split products scale them in place,
// the fast ones write them as bf16 (half the words) into one operand stage after the ring
// (rewritten only after the barrier that follows every warp's product of the previous stage).
template <int NI>
__host__ __device__ constexpr int st_words() { return kWords64 + kKs * skn<4, NI>(); }
template <int NI>  // the bf16 operand stage: A at word 0, B at word kWords64
__host__ __device__ constexpr int st_op_words() { return kWords64 + kKs * skn<4, NI>() / 2; }
template <bool kSplit, int NI>
__host__ __device__ constexpr int st_smem_bytes() { return (kRing * st_words<NI>() + (kSplit ? 0 : st_op_words<NI>())) * 4; }
template <bool kSplit, int NI, class XT>
__global__ void __launch_bounds__(256, NI == 4 ? 2 : 3) ssd_bw_states_kernel(BwArgs a) {
  constexpr int TN = 32 * NI, kStWords = st_words<NI>();
  extern __shared__ __align__(16) uint32_t st_smem[];
  uint32_t* op = st_smem + kRing * kStWords;  // the bf16 operand stage (fast products)
  __shared__ float sc[kQMax];
  const int Pt = cdiv(a.P, kTile), Nt = cdiv(a.N, TN);
  int64_t idx = blockIdx.x;
  const int tile = int(idx % (Pt * Nt));
  idx /= Pt * Nt;
  const int which = int(idx & 1);
  idx >>= 1;
  const int h = int(idx % a.H);
  idx /= a.H;
  const int c = int(idx % a.nc), b = int(idx / a.nc);
  if (which == 0 ? c == a.nc - 1 : (c == 0 && a.dinit == nullptr)) return;
  const int p0 = (tile / Nt) * kTile, n0 = (tile % Nt) * TN;
  const int g = h / a.hpg;
  const int c0 = c * a.Q, L = min(a.Q, a.T - c0);
  const int64_t vb = bhc(a, b, h, c) * a.Q;
  for (int j = threadIdx.x; j < a.Q; j += 256) sc[j] = which == 0 ? a.wv[vb + j] * a.dtq[vb + j] : a.ev[vb + j];
  const int64_t t0 = int64_t(b) * a.T + c0;
  const int64_t lda = int64_t(a.H) * a.P, ldb = int64_t(a.G) * a.N;
  const int pc = a.P - p0, ncl = a.N - n0;
  AccT<NI> acc = {};
  // A's rows (x: XT, or dY: fp32) and B's (B or C: XT) from Ab and Bb
  auto product = [&](const auto* Ab, const auto* Bb) {
    auto issue = [&](int s, int buf) {
      uint32_t* As = st_smem + buf * kStWords;
      uint32_t* Bs = As + kWords64;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        int row, col;
        piece<kTile, 256>(k, row, col);
        const int j = s * kKs + row;
        cp4(As, row * kSKM + col, Ab + j * lda + col, j < L && col < pc, Ab);
      }
#pragma unroll
      for (int k = 0; k < NI; ++k) {  // TN x 32 elements in pieces of four over 256 threads
        int row, col;
        piece<TN, 256>(k, row, col);
        const int j = s * kKs + row;
        cp4(Bs, row * skn<4, NI>() + col, Bb + j * ldb + col, j < L && col < ncl, Bb);
      }
    };
    auto fix = [&](int s, int buf) {
      uint32_t* As = st_smem + buf * kStWords;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        int row, col;
        piece<kTile, 256>(k, row, col);
        const int at = row * kSKM + col;
        if constexpr (kSplit) scale4(As + at, sc[s * kKs + row]);
        else st_bf16(op, at, raw4(As, at, Ab), sc[s * kKs + row]);
      }
      if constexpr (!kSplit) {  // B as bf16 operands (the split products take the fp32 bits as copied)
        const uint32_t* Bs = As + kWords64;
#pragma unroll
        for (int k = 0; k < NI; ++k) {
          int row, col;
          piece<TN, 256>(k, row, col);
          const int at = row * skn<4, NI>() + col;
          st_bf16(op + kWords64, at, raw4(Bs, at, Bb), 1.f);
        }
      }
    };
    auto compute = [&](int, int buf) {
      const uint32_t* As = kSplit ? st_smem + buf * kStWords : op;
      tile_mma_op<4, NI, true, true, kSplit>(As, As + kWords64, acc);
    };
    run_ring(cdiv(L, kKs), issue, fix, compute);
  };
  const XT* xb = in<XT>(a.x) + (t0 * a.H + h) * a.P + p0;
  const float* dyb = a.dy + (t0 * a.H + h) * a.P + p0;
  const XT* Bb = in<XT>(which == 0 ? a.Bm : a.Cm) + (t0 * a.G + g) * a.N + n0;
  if constexpr (std::is_same_v<XT, float>) product(which == 0 ? xb : dyb, Bb);
  else if (which == 0) product(xb, Bb);
  else product(dyb, Bb);

  float* out = (which == 0 ? a.S : a.dS) + bhc(a, b, h, c) * (int64_t(a.P) * a.N);
  const int lane = threadIdx.x & 31, wm = frag_wm<4>(), wn = frag_wn<4, NI>();
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int p = p0 + wm + mi * 16 + (lane >> 2) + 8 * hf;
      if (p >= a.P) continue;
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        const int n = n0 + wn + ni * 8 + 2 * (lane & 3);
        st_pair(out + int64_t(p) * a.N + n, n, a.N, acc[mi][ni][2 * hf], acc[mi][ni][2 * hf + 1]);
      }
    }
}

// ---- pass: grid (B H ceil(PN / 1024)), 256 threads, four state elements per thread -------------
// Forward: S_0 = initial state, S_{c+1} = e_last_c S_c + Z_c (Z_c replaced by S_c). Reverse:
// dS_{nc-1} = dfinal_state, dS_{c-1} = e_last_c dS_c + dZ_c (dZ_c replaced by dS_c), the product
// dS_c S_c summed per warp, dinitial_state = the last carry. Loads of 8 chunks are issued before
// their use so that they overlap. Z of the last chunk and dZ of the first (not computed unless
// dinitial_state is wanted) are not read.
constexpr int kPassBatch = 8;
__device__ __forceinline__ float4 fma4(float a, float4 s, float4 z) {
  return make_float4(a * s.x + z.x, a * s.y + z.y, a * s.z + z.z, a * s.w + z.w);
}
__global__ void __launch_bounds__(256) ssd_bw_pass_kernel(BwArgs a, int nsb) {
  const int64_t PN4 = int64_t(a.P) * a.N / 4;
  const int bh = blockIdx.x / nsb, sb = blockIdx.x % nsb;
  const int64_t e = int64_t(sb) * 256 + threadIdx.x;
  const bool ok = e < PN4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nc = a.nc;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  float4* Sb = reinterpret_cast<float4*>(a.S) + int64_t(bh) * nc * PN4 + e;
  float4* dSb = reinterpret_cast<float4*>(a.dS) + int64_t(bh) * nc * PN4 + e;
  const float* dec = a.elast + int64_t(bh) * nc;
  float4 s = (ok && a.init) ? reinterpret_cast<const float4*>(a.init)[int64_t(bh) * PN4 + e] : zero;
  for (int cb = 0; cb < nc; cb += kPassBatch) {
    float4 z[kPassBatch];
#pragma unroll
    for (int k = 0; k < kPassBatch; ++k) z[k] = (ok && cb + k < nc - 1) ? Sb[int64_t(cb + k) * PN4] : zero;
#pragma unroll
    for (int k = 0; k < kPassBatch; ++k) {
      if (cb + k < nc) {
        if (ok) Sb[int64_t(cb + k) * PN4] = s;
        s = fma4(dec[cb + k], s, z[k]);
      }
    }
  }
  const bool dz0 = a.dinit != nullptr;
  float4 d = (ok && a.dfin) ? reinterpret_cast<const float4*>(a.dfin)[int64_t(bh) * PN4 + e] : zero;
  for (int cb = nc - 1; cb >= 0; cb -= kPassBatch) {
    float4 z[kPassBatch], sp[kPassBatch];
#pragma unroll
    for (int k = 0; k < kPassBatch; ++k) {
      const int c = cb - k;
      z[k] = (ok && c >= 0 && (c > 0 || dz0)) ? dSb[int64_t(c) * PN4] : zero;
      sp[k] = (ok && c >= 0) ? Sb[int64_t(c) * PN4] : zero;
    }
#pragma unroll
    for (int k = 0; k < kPassBatch; ++k) {
      const int c = cb - k;
      if (c >= 0) {
        if (ok && a.dS16)
          reinterpret_cast<uint2*>(a.dS16)[(int64_t(bh) * nc + c) * PN4 + e] =
              pack_bf16x4(d.x, d.y, d.z, d.w);
        else if (ok)
          dSb[int64_t(c) * PN4] = d;
        const float part = warp_sum(d.x * sp[k].x + d.y * sp[k].y + d.z * sp[k].z + d.w * sp[k].w);
        if (lane == 0) a.sds[(int64_t(bh) * nc + c) * a.nsl + sb * 8 + warp] = part;
        d = fma4(dec[c], d, z[k]);
      }
    }
  }
  if (ok && a.dinit) reinterpret_cast<float4*>(a.dinit)[int64_t(bh) * PN4 + e] = d;
}

// ---- fin: grid (nc, ceil(H / 32), B), 256 threads, one warp per head --------------------------
// dcum_m, its suffix sums within the chunk (lanes own consecutive positions), ddt through shared
// memory (written coalesced over heads), the chunk's dA part.
__global__ void __launch_bounds__(256) ssd_bw_fin_kernel(BwArgs a) {
  __shared__ float sddt[kQMax][33];
  const int c = blockIdx.x, h0 = blockIdx.y * 32, b = blockIdx.z;
  const int c0 = c * a.Q, L = min(a.Q, a.T - c0);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int per = a.Q / 32;
  const int last_tile = (L - 1) / kTile;
  for (int hl = warp; hl < 32; hl += 8) {
    const int h = h0 + hl;
    if (h >= a.H) break;
    const int64_t base = bhc(a, b, h, c), vb = base * a.Q;
    float sds = 0.f;
    for (int k = lane; k < a.nsl; k += 32) sds += a.sds[base * a.nsl + k];
    sds = warp_sum(sds);
    const float Ah = a.A[h], el = a.elast[base];
    float dc[8], dd[8], dtv[8];
    float usum = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      dc[e] = dd[e] = dtv[e] = 0.f;
      const int m = lane * per + e;
      if (e < per && m < L) {
        const int tm = m / kTile;
        float rs = 0.f, ks = 0.f, cs = 0.f;
        for (int jt = 0; jt <= tm; ++jt) rs += a.rpart[(base * a.nt + jt) * a.Q + m];
        for (int it = tm; it <= last_tile; ++it) ks += a.cpart[(base * a.nt + it) * a.Q + m];
        for (int q = 0; q < a.ntn; ++q) cs += a.dcs[(base * a.ntn + q) * a.Q + m];
        const float dtm = a.dtq[vb + m];
        const float u = dtm * a.us[vb + m];
        usum += u;
        dc[e] = (rs - ks) + cs - u;
        dd[e] = a.ddir[vb + m];
        dtv[e] = dtm;
      }
    }
    usum = warp_sum(usum);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (e < per && lane * per + e == L - 1) dc[e] += usum + el * sds;
    // suffix sums: within the lane, then the lanes after it
    float suf[8];
    float run = 0.f;
#pragma unroll
    for (int e = 7; e >= 0; --e) {
      if (e < per) run += dc[e];
      suf[e] = run;
    }
    float incl = run;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float v = __shfl_down_sync(0xffffffffu, incl, o);
      if (lane + o < 32) incl += v;
    }
    const float after = incl - run;
    float da = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int m = lane * per + e;
      if (e < per && m < L) {
        const float rev = suf[e] + after;
        sddt[m][hl] = dd[e] + Ah * rev;
        da += dtv[e] * rev;
      }
    }
    da = warp_sum(da);
    if (lane == 0) a.dapart[base] = da;
  }
  __syncthreads();
  for (int q = threadIdx.x; q < L * 32; q += 256) {
    const int m = q >> 5, hl = q & 31;
    if (h0 + hl < a.H) a.ddt[(int64_t(b) * a.T + c0 + m) * a.H + h0 + hl] = sddt[m][hl];
  }
}

// ---- reduce: one warp per head: dA[h] += sum over (b, c) of the chunk parts, dD[h] += sum over
// (b, c, row tile); each lane sums a fixed stride of the parts in double, then a fixed shuffle tree.
__global__ void ssd_bw_reduce_kernel(BwArgs a) {
  const int h = blockIdx.x * (blockDim.x / 32) + int(threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (h >= a.H) return;
  double sa = 0.0, sd = 0.0;
  for (int q = lane; q < a.B * a.nc; q += 32) {
    const int b = q / a.nc, c = q % a.nc;
    const int64_t base = bhc(a, b, h, c);
    sa += a.dapart[base];
    const int tiles = cdiv(min(a.Q, a.T - c * a.Q), kTile);
    for (int r = 0; r < tiles; ++r) sd += a.dpart[base * a.nt + r];
  }
  sa = warp_sum(sa);
  sd = warp_sum(sd);
  if (lane == 0) {
    if (a.dA) a.dA[h] += float(sa);
    if (a.dD) a.dD[h] += float(sd);
  }
}

float* bw_scratch(size_t floats) {
  static GrowOnlyBuffer buf;
  return buf.get<float>(floats, "ssd_chunked_backward");
}

// Raises the dynamic shared-memory limits once (states, gram, dB and dC take over 48 KB).
template <bool kDocs, bool kSplit, class XT>
void allow_smem() {
  static bool done = false;
  if (done) return;
  check_cuda(cudaFuncSetAttribute(ssd_bw_states_kernel<kSplit, 4, XT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  st_smem_bytes<kSplit, 4>()),
             "ssd_chunked_backward", "cudaFuncSetAttribute");
  check_cuda(cudaFuncSetAttribute(ssd_bw_states_kernel<kSplit, 2, XT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  st_smem_bytes<kSplit, 2>()),
             "ssd_chunked_backward", "cudaFuncSetAttribute");
  allow_product_smem(kDocs, kSplit, std::is_same_v<XT, __nv_bfloat16>);
  done = true;
}

// Two side streams of the calling thread and the events that fork them from its default stream
// and join them back (created once per host thread; the fork/join pattern is capturable).
struct SideStreams {
  cudaStream_t s[2] = {};
  cudaEvent_t e[5] = {};
  SideStreams() {
    for (auto& q : s) check_cuda(cudaStreamCreateWithFlags(&q, cudaStreamNonBlocking), "ssd_chunked_backward", "cudaStreamCreate");
    for (auto& v : e) check_cuda(cudaEventCreateWithFlags(&v, cudaEventDisableTiming), "ssd_chunked_backward", "cudaEventCreate");
  }
};
SideStreams& side_streams() {
  thread_local SideStreams ss;
  return ss;
}
// `to` waits for the work queued on `from` so far.
void after(cudaStream_t to, cudaStream_t from, cudaEvent_t e) {
  check_cuda(cudaEventRecord(e, from), "ssd_chunked_backward", "cudaEventRecord");
  check_cuda(cudaStreamWaitEvent(to, e, 0), "ssd_chunked_backward", "cudaStreamWaitEvent");
}

// Launches the nine kernels. The dependency graph lets some run side by side, which fills the
// GPU better than each alone (they are bound by L2 latency): gram (needs prep) beside states and
// pass; then dx, dB and dC (each needs gram and pass) together; then fin and reduce. stage_ms (9
// floats), when not null, runs them one after the other and receives each one's time.
template <bool kDocs, bool kSplit, class XT>
void launch_backward(const BwArgs& a, int nsb, float* stage_ms) {
  cudaEvent_t ev[10];
  if (stage_ms)
    for (auto& e : ev) check_cuda(cudaEventCreate(&e), "ssd_chunked_backward", "cudaEventCreate");
  auto mark = [&](int k) {
    if (stage_ms) check_cuda(cudaEventRecord(ev[k]), "ssd_chunked_backward", "cudaEventRecord");
  };
  allow_smem<kDocs, kSplit, XT>();
  const bool overlap = stage_ms == nullptr;
  cudaStream_t main_s = cudaStreamPerThread, s1 = main_s, s2 = main_s;
  SideStreams* ss = nullptr;
  if (overlap) {
    ss = &side_streams();
    s1 = ss->s[0];
    s2 = ss->s[1];
  }
  const int64_t BH = int64_t(a.B) * a.H;
  const dim3 vec_grid(unsigned(a.nc), unsigned(cdiv(a.H, 32)), unsigned(a.B));
  mark(0);
  ssd_bw_prep_kernel<<<vec_grid, 256, 0, main_s>>>(a);
  check_launch("ssd_chunked_backward (prep)");
  mark(1);
  if (overlap) after(s1, main_s, ss->e[0]);
  const int64_t gram_blocks = int64_t(a.B) * a.nc * a.G * (a.nt * (a.nt + 1) / 2);
  launch_gram(kDocs, kSplit, unsigned(gram_blocks), s1, a);
  check_launch("ssd_chunked_backward (gram)");
  mark(2);
  const bool narrow_states = bc_ni(a.N) == 2;  // 64-column tiles, as dB and dC
  const int64_t st_blocks = BH * a.nc * 2 * cdiv(a.P, kTile) * cdiv(a.N, narrow_states ? 64 : 128);
  if (st_blocks > 0) {
    if (narrow_states)
      ssd_bw_states_kernel<kSplit, 2, XT><<<unsigned(st_blocks), 256, st_smem_bytes<kSplit, 2>(), main_s>>>(a);
    else
      ssd_bw_states_kernel<kSplit, 4, XT><<<unsigned(st_blocks), 256, st_smem_bytes<kSplit, 4>(), main_s>>>(a);
    check_launch("ssd_chunked_backward (states)");
  }
  mark(3);
  if (nsb > 0) {
    ssd_bw_pass_kernel<<<unsigned(BH * nsb), 256, 0, main_s>>>(a, nsb);
    check_launch("ssd_chunked_backward (pass)");
  }
  mark(4);
  if (overlap) {  // gram and pass done: fork dB and dC
    after(main_s, s1, ss->e[1]);
    after(s1, main_s, ss->e[2]);
    after(s2, main_s, ss->e[2]);
  }
  launch_dx(kDocs, kSplit, unsigned(BH * a.nc * a.nt), main_s, a);
  check_launch("ssd_chunked_backward (dx)");
  mark(5);
  const int64_t bc_blocks = int64_t(a.B) * a.nc * a.G * a.nt * a.ntn;
  if (bc_blocks > 0) {
    launch_dbc(kDocs, kSplit, false, unsigned(bc_blocks), s1, a);
    check_launch("ssd_chunked_backward (dB)");
  }
  mark(6);
  if (bc_blocks > 0) {
    launch_dbc(kDocs, kSplit, true, unsigned(bc_blocks), s2, a);
    check_launch("ssd_chunked_backward (dC)");
  }
  mark(7);
  if (overlap) {  // join
    after(main_s, s1, ss->e[3]);
    after(main_s, s2, ss->e[4]);
  }
  ssd_bw_fin_kernel<<<vec_grid, 256, 0, main_s>>>(a);
  check_launch("ssd_chunked_backward (fin)");
  mark(8);
  if (a.dA || a.dD) {
    ssd_bw_reduce_kernel<<<unsigned(cdiv(a.H, 8)), 256, 0, main_s>>>(a);
    check_launch("ssd_chunked_backward (reduce)");
  }
  mark(9);
  if (stage_ms) {
    check_cuda(cudaEventSynchronize(ev[9]), "ssd_chunked_backward", "cudaEventSynchronize");
    for (int k = 0; k < 9; ++k) cudaEventElapsedTime(&stage_ms[k], ev[k], ev[k + 1]);
    for (auto& e : ev) cudaEventDestroy(e);
  }
}

void zero(Tensor* t) {
  if (t && t->numel() > 0)
    check_cuda(cudaMemsetAsync(t->raw(), 0, t->nbytes(), cudaStreamPerThread), "ssd_chunked_backward",
               "cudaMemsetAsync");
}

// [outer][r][c] <-> [outer][r4][c4] (r4 >= r, c4 >= c): pad copies src (fp32 or bf16) into dst
// with zeros in the padding; !pad copies the padded src back into dst.
template <class ST>
__global__ void ssd_bw_pad_kernel(const ST* __restrict__ src, float* __restrict__ dst, int64_t outer, int r, int c,
                                  int r4, int c4, bool pad) {
  const int64_t per = int64_t(r4) * c4, n = outer * per;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = e / per;
    const int rem = int(e % per), i = rem / c4, j = rem % c4;
    const bool in = i < r && j < c;
    if (pad) dst[e] = in ? as_float(src[(o * r + i) * c + j]) : 0.f;
    else if (in) dst[(o * r + i) * c + j] = as_float(src[e]);
  }
}
template <class ST>
void pad_copy(const ST* src, float* dst, int64_t outer, int64_t r, int64_t c, int64_t r4, int64_t c4, bool pad) {
  const int64_t n = outer * r4 * c4;
  if (n == 0) return;
  ssd_bw_pad_kernel<<<blocks_for(n), kThreads>>>(src, dst, outer, int(r), int(c), int(r4), int(c4), pad);
  check_launch("ssd_chunked_backward (padding)");
}

}  // namespace ssd_bw

using namespace ssd_bw;

// The op, with per-kernel times for the benchmark (stage_ms: 9 floats, synchronises; the kernels
// in order prep, gram, states, pass, dx, dB, dC, fin, reduce). Not in cuda_ops.h: the benchmark
// declares it. products: Tf32, or Exact (every product split in TF32 halves, fp32-accurate).
void ssd_chunked_backward_timed(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                                const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size,
                                const Tensor* initial_state, const Tensor* dfinal_state, const Tensor& dy,
                                Tensor& dx, Tensor& ddt, Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                                Tensor* dinitial_state, float* stage_ms, Fp32Products products) {
  const int64_t Bsz = x.dim(0), T = x.dim(1), H = x.dim(2), P0 = x.dim(3);
  const int64_t G = Bm.dim(2), N0 = Bm.dim(3);
  // The CPU op's edge cases: dB and dC are zeros without heads; without tokens or channels ddt and
  // dinitial_state are zeros too and nothing accumulates.
  if (Bsz == 0) return;
  if (H == 0) {
    zero(&dBm);
    zero(&dCm);
    return;
  }
  if (T == 0 || P0 == 0) {
    zero(&dBm);
    zero(&dCm);
    zero(&ddt);
    zero(dinitial_state);
    return;
  }
  // The kernels read four elements at a time: P and N multiples of 4, aligned tensors; the bf16
  // products' dS16 rows also need N a multiple of 8. Other shapes go through zero-padded fp32
  // copies (P rounded up to 4, N to 4 or 8; the padding contributes exact zeros to every product
  // and sum, and the padded outputs are dropped on the way back), as do bf16 inputs under the
  // split products (which take fp32 bits).
  const bool split = products == Fp32Products::Exact;
  const bool in16 = x.dtype() == DType::BF16;  // x, Bm, Cm (the dispatch checks they agree)
  const int64_t n_align = split ? 4 : 8;
  bool fast = P0 % 4 == 0 && N0 % n_align == 0 && !(in16 && split);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&x, &dy, &dx, &Bm, &Cm, &dBm, &dCm})
    if (!aligned16(t->raw())) fast = false;
  const int64_t P = (P0 + 3) / 4 * 4, N = (N0 + n_align - 1) / n_align * n_align;

  const int64_t Q = kernel_chunk(chunk_size);
  const int64_t nc = (T + Q - 1) / Q, nt = Q / kTile, hpg = H / G;
  const int64_t PN = P * N;
  const int64_t nsb = (PN / 4 + 255) / 256;  // pass blocks per (b, h): 256 threads x 4 elements
  const int64_t ntn = cdiv(int(N), 32 * bc_ni(int(N)));  // column tiles of dB and dC
  const int64_t BH = Bsz * H;
  MAMBALM_CHECK(T <= INT32_MAX / 2 && BH * nc * nt < INT32_MAX && BH * nsb < INT32_MAX &&
                    BH * nc * 2 * ((P + 63) / 64) * ((N + 63) / 64) < INT32_MAX && Bsz * nc * G * 10 < INT32_MAX &&
                    Bsz <= 65535 && (H + 31) / 32 <= 65535 && PN < INT32_MAX,
                "op ssd_chunked_backward (cuda)", "shape too large for the kernels' grids");

  BwArgs a{};
  a.B = int(Bsz), a.T = int(T), a.H = int(H), a.P = int(P), a.G = int(G), a.N = int(N);
  a.Q = int(Q), a.nc = int(nc), a.nt = int(nt), a.hpg = int(hpg), a.ntn = int(ntn), a.nsl = int(nsb * 8);
  a.x = x.raw(), a.dt = dt.f32(), a.A = A.f32(), a.Bm = Bm.raw(), a.Cm = Cm.raw();
  a.in16 = in16 && fast;
  a.D = D ? D->f32() : nullptr;
  a.dy = dy.f32();
  a.init = initial_state ? initial_state->f32() : nullptr;
  a.dfin = dfinal_state ? dfinal_state->f32() : nullptr;
  a.seq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  a.dx = dx.f32(), a.ddt = ddt.f32(), a.dBm = dBm.f32(), a.dCm = dCm.f32();
  a.dA = dA ? dA->f32() : nullptr;
  a.dD = dD ? dD->f32() : nullptr;
  a.dinit = dinitial_state ? dinitial_state->f32() : nullptr;

  // scratch, each piece a multiple of 4 floats so that every piece stays 16-byte aligned
  auto r4 = [](int64_t n) { return (n + 3) / 4 * 4; };
  const int64_t n_vec = r4(BH * nc * Q), n_seg = seq_idx ? r4(Bsz * nc * Q) : 0, n_el = r4(BH * nc);
  const int64_t n_st = r4(BH * nc * PN), n_cb = r4(Bsz * nc * G * Q * Q), n_part = r4(BH * nc * nt * Q);
  const int64_t n_dcs = r4(BH * nc * ntn * Q), n_sds = r4(BH * nc * nsb * 8), n_dp = r4(BH * nc * nt);
  const int64_t n_x = fast ? 0 : r4(Bsz * T * H * P), n_b = fast ? 0 : r4(Bsz * T * G * N);
  const int64_t n_s = fast ? 0 : r4(BH * PN), n_st16 = split ? 0 : r4(BH * nc * PN / 2);
  const int64_t total = 6 * n_vec + n_seg + 2 * n_el + 2 * n_st + n_st16 + 2 * n_cb + 2 * n_part + n_dcs + n_sds +
                        n_dp + 3 * n_x + 4 * n_b + 3 * n_s;
  float* p = bw_scratch(size_t(total));
  auto take = [&](int64_t n) {
    float* q = p;
    p += n;
    return q;
  };
  a.cum = take(n_vec), a.dtq = take(n_vec), a.wv = take(n_vec), a.ev = take(n_vec);
  a.ddir = take(n_vec), a.us = take(n_vec);
  a.seg = seq_idx ? reinterpret_cast<int*>(take(n_seg)) : nullptr;
  a.elast = take(n_el), a.dapart = take(n_el);
  a.S = take(n_st), a.dS = take(n_st);
  a.dS16 = split ? nullptr : reinterpret_cast<__nv_bfloat16*>(take(n_st16));
  a.cb = take(n_cb), a.gs = take(n_cb);
  a.rpart = take(n_part), a.cpart = take(n_part);
  a.dcs = take(n_dcs), a.sds = take(n_sds), a.dpart = take(n_dp);
  if (!fast) {
    const int64_t BTH = Bsz * T * H, BTG = Bsz * T * G;
    float* xp = take(n_x);
    float* dyp = take(n_x);
    float* dxp = take(n_x);
    float* bp = take(n_b);
    float* cp = take(n_b);
    float* dbp = take(n_b);
    float* dcp = take(n_b);
    float* ip = take(n_s);
    float* fp = take(n_s);
    float* dip = take(n_s);
    auto pad_input = [&](const Tensor& t, float* dst, int64_t outer, int64_t c, int64_t c4) {
      if (t.dtype() == DType::BF16) pad_copy(t.data<__nv_bfloat16>(), dst, outer, 1, c, 1, c4, true);
      else pad_copy(t.f32(), dst, outer, 1, c, 1, c4, true);
    };
    pad_input(x, xp, BTH, P0, P);
    pad_copy(dy.f32(), dyp, BTH, 1, P0, 1, P, true);
    pad_input(Bm, bp, BTG, N0, N);
    pad_input(Cm, cp, BTG, N0, N);
    a.x = xp, a.dy = dyp, a.Bm = bp, a.Cm = cp, a.dx = dxp, a.dBm = dbp, a.dCm = dcp;
    if (a.init) {
      pad_copy(a.init, ip, BH, P0, N0, P, N, true);
      a.init = ip;
    }
    if (a.dfin) {
      pad_copy(a.dfin, fp, BH, P0, N0, P, N, true);
      a.dfin = fp;
    }
    if (a.dinit) a.dinit = dip;
  }

  with_operands(split, a.in16, [&](auto exact, auto xt) {
    constexpr bool kSplit = decltype(exact)::value;
    using XT = typename decltype(xt)::type;
    if (seq_idx) launch_backward<true, kSplit, XT>(a, int(nsb), stage_ms);
    else launch_backward<false, kSplit, XT>(a, int(nsb), stage_ms);
  });

  if (!fast) {
    pad_copy(a.dx, dx.f32(), Bsz * T * H, 1, P0, 1, P, false);
    pad_copy(a.dBm, dBm.f32(), Bsz * T * G, 1, N0, 1, N, false);
    pad_copy(a.dCm, dCm.f32(), Bsz * T * G, 1, N0, 1, N, false);
    if (dinitial_state) pad_copy(a.dinit, dinitial_state->f32(), BH, P0, N0, P, N, false);
  }
}

// Training. Measured on the H200 (2026-11-30, 8B heads H 128, P 64, G 8, N 128, no states; the
// forward is ssd_chunked): B 2 / L 4096 chunk 256 backward 3.09 ms, forward + backward 4.20 ms
// (mamba_ssm's Triton kernels on bf16 inputs in the same session: 4.25 ms); chunk 128: 2.91 /
// 4.00 ms (mamba_ssm 4.90); B 1 / L 16384: 6.31 / 8.50 ms (mamba_ssm 6.14). With 4 documents per
// row: 3.40 / 4.57 ms. The kernels run at op_chunk's chunk, as the forward's do.
void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                          int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt,
                          Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                          Tensor* dinitial_state, Fp32Products products) {
  ssd_chunked_backward_timed(x, dt, A, Bm, Cm, D, seq_idx, op_chunk(chunk_size, Bm.dim(3)), initial_state, dfinal_state,
                             dy, dx, ddt, dA, dBm, dCm, dD, dinitial_state, nullptr, products);
}

}  // namespace mambalm::ops::cuda