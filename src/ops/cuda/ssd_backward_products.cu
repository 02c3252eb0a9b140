// The tensor-core product kernels of the CUDA SSD backward: gram (the group's C B^T and dY X^T
// products with the row and column sums behind ddt), dx, and dB / dC. The algorithm, the launch
// order and the cost of each kernel are in ssd_backward.cu's header comment.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ops/cuda/ssd_backward.cuh"

namespace mambalm::ops::cuda::ssd_bw {

namespace {

// ---- gram: one 64 x 64 tile (it, jt), jt <= it, of a chunk-group per block (256 threads) -------
// blockIdx.x = ((b nc + c) G + g) nt(nt+1)/2 + it(it+1)/2 + jt; 8 warps of 32 x 16. Stages: CB
// (K = N, A = C rows, B = B rows, both K-contiguous), then per head of the group K = P (A = dY
// rows, B = X rows). After each head: Gs += dt_j W_ij G_ij (masked), Q_ij = CB_ij dt_j W_ij G_ij
// summed along rows and columns. The per-head vectors (cum_i, cum_j, dt_j) and the cross-warp sums
// go through two-slot rings so that the stage loop keeps one barrier per stage: head k's sums are
// written out while head k+1 is being multiplied.
template <bool kDocs, bool kSplit, class XT>
__global__ void __launch_bounds__(kGramThreads, 2) ssd_bw_gram_kernel(BwArgs a) {
  extern __shared__ __align__(16) uint32_t gram_smem[];
  uint32_t (*As)[kWords64] = reinterpret_cast<uint32_t (*)[kWords64]>(gram_smem);
  uint32_t (*Bs)[kWords64] = reinterpret_cast<uint32_t (*)[kWords64]>(gram_smem + 2 * kWords64);
  // CB at this thread's 16 fragment positions, element q at cbs[q * 256 + tid] (only the thread
  // that wrote a value reads it: no barrier needed)
  float* cbs = reinterpret_cast<float*>(gram_smem + 4 * kWords64);
  // per head: cum_i, cum_j, dt_j; or, factored (vfac; see the epilogue), a_i, dt_j b_j, dt_j
  __shared__ float vr[2][3][kTile];
  __shared__ bool vfac[2];
  __shared__ float red[2][kGramWn][kTile];    // row sums per column quarter of the tile
  __shared__ float redc[2][2][kTile];         // column sums per row half of the tile
  __shared__ int segi[kTile], segj[kTile];
  const int ntl = a.nt * (a.nt + 1) / 2;
  int64_t idx = blockIdx.x;
  const int tl = int(idx % ntl);
  idx /= ntl;
  const int g = int(idx % a.G);
  idx /= a.G;
  const int c = int(idx % a.nc), b = int(idx / a.nc);
  int it = 0;
  while ((it + 1) * (it + 2) / 2 <= tl) ++it;
  const int jt = tl - it * (it + 1) / 2;
  const int i0 = it * kTile, j0 = jt * kTile;
  const int c0 = c * a.Q, L = min(a.Q, a.T - c0);
  if (i0 >= L) return;
  const int tid = threadIdx.x;
  if (kDocs) {
    const int* seg = a.seg + (int64_t(b) * a.nc + c) * a.Q;
    if (tid < kTile) segi[tid] = seg[i0 + tid];
    else if (tid < 2 * kTile) segj[tid - kTile] = seg[j0 + tid - kTile];
  }
  const int64_t t0 = int64_t(b) * a.T + c0;
  const int64_t ldx = int64_t(a.H) * a.P, ldb = int64_t(a.G) * a.N;
  const int ksN = cdiv(a.N, kKs), ksP = cdiv(a.P, kKs);
  const int stages = ksN + a.hpg * ksP;
  const StageDiv byP(ksP);
  const int lane = tid & 31, wm = frag_wm<kGramWn>(), wn = frag_wn<kGramWn, kGramNi>();
  const int gq = lane >> 2, tq = lane & 3;

  float4 ra[2], rb[2];
  float v0 = 0.f;
  bool f0 = false;
  AccT<kGramNi> acc = {}, gsum = {};
  // bit (mi, ni, q): this thread's element is kept (causal, in the chunk, one document); the same
  // for every head
  uint32_t okm = 0;
  if (kDocs) __syncthreads();  // segi, segj
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf)
#pragma unroll
      for (int ni = 0; ni < kGramNi; ++ni)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int rl = wm + mi * 16 + gq + 8 * hf, cl = wn + ni * 8 + 2 * tq + e;
          const int i = i0 + rl, j = j0 + cl;
          const bool ok = i < L && j <= i && (!kDocs || segi[rl] == segj[cl]);
          okm |= uint32_t(ok) << ((mi * kGramNi + ni) * 4 + 2 * hf + e);
        }
  auto load = [&](int s) {
    if (s < ksN) {
      const int k0 = s * kKs;
      const XT* Cb = in<XT>(a.Cm) + (t0 + i0) * ldb + int64_t(g) * a.N;  // (here: not live across the loop)
      const XT* Bb = in<XT>(a.Bm) + (t0 + j0) * ldb + int64_t(g) * a.N;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        int row, col;
        piece<kKs, kGramThreads>(k, row, col);
        ra[k] = ld_piece(Cb + row * ldb + k0 + col, i0 + row < L, k0 + col, a.N);
        rb[k] = ld_piece(Bb + row * ldb + k0 + col, j0 + row < L, k0 + col, a.N);
      }
    } else {
      const int hd = byP.div(s - ksN), k0 = (s - ksN - hd * ksP) * kKs;
      const int h = g * a.hpg + hd;
      const float* Yb = a.dy + ((t0 + i0) * a.H + h) * a.P;
      const XT* Xb = in<XT>(a.x) + ((t0 + j0) * a.H + h) * a.P;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        int row, col;
        piece<kKs, kGramThreads>(k, row, col);
        ra[k] = ld_piece(Yb + row * ldx + k0 + col, i0 + row < L, k0 + col, a.P);
        rb[k] = ld_piece(Xb + row * ldx + k0 + col, j0 + row < L, k0 + col, a.P);
      }
      if (k0 == 0 && tid < 3 * kTile) {
        const int64_t vb = bhc(a, b, h, c) * a.Q;
        const int w = tid / kTile, q = tid % kTile;
        v0 = w == 2 ? a.dtq[vb + j0 + q] : a.cum[vb + (w == 0 ? i0 : j0) + q];
        if constexpr (!kSplit) {  // the head's decay factored over the j tile (ssd_chunk_scan_kernel)
          const float cref = a.cum[vb + j0];
          f0 = tile_factors(a.cum + vb, j0, L);
          if (f0 && w == 0) v0 = __expf(v0 - cref);
          if (f0 && w == 1) v0 = a.dtq[vb + j0 + q] * __expf(cref - v0);
        }
      }
    }
  };
  auto store = [&](int s, int buf) {
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      int row, col;
      piece<kKs, kGramThreads>(k, row, col);
      st_op<kSplit>(As[buf], row * smk<kSplit>() + col, ra[k], 1.f);
      st_op<kSplit>(Bs[buf], row * smk<kSplit>() + col, rb[k], 1.f);
    }
    if (s >= ksN && byP.mod(s - ksN) == 0 && tid < 3 * kTile) {
      vr[byP.div(s - ksN) & 1][tid / kTile][tid % kTile] = v0;
      if (tid == 0) vfac[byP.div(s - ksN) & 1] = f0;
    }
  };
  // head hd's row and column sums (left in red / redc by its epilogue) to global memory
  auto finish_head = [&](int hd) {
    const int slot = hd & 1;
    const int64_t base = bhc(a, b, g * a.hpg + hd, c);
    if (tid < kTile) {
      a.rpart[(base * a.nt + jt) * a.Q + i0 + tid] =
          (red[slot][0][tid] + red[slot][1][tid]) + (red[slot][2][tid] + red[slot][3][tid]);
    } else if (tid < 2 * kTile) {
      const int q = tid - kTile;
      a.cpart[(base * a.nt + it) * a.Q + j0 + q] = redc[slot][0][q] + redc[slot][1][q];
    }
  };
  auto compute = [&](int s, int buf) {
    tile_mma_op<kGramWn, kGramNi, false, false, kSplit>(As[buf], Bs[buf], acc);
    if (s == ksN - 1) {
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < kGramNi; ++ni)
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            cbs[((mi * kGramNi + ni) * 4 + q) * kGramThreads + tid] = acc[mi][ni][q];
            acc[mi][ni][q] = 0.f;
          }
      return;
    }
    if (s < ksN || byP.mod(s - ksN) != ksP - 1) return;
    const int hd = byP.div(s - ksN);
    if (hd > 0) finish_head(hd - 1);
    const int slot = hd & 1;
    // factored: dt_j W_ij = a_i (dt_j b_j) with a_i = exp(cum_i - cum_j0), b_j = exp(cum_j0 - cum_j)
    // (b_j <= e^kFactorSpan; a_i may underflow far below the diagonal, where W_ij <= a_i e^40 is
    // negligible); else an exp per element
    float rs[2][2] = {}, cs[kGramNi][2] = {};
    // The element loop in two builds, the choice made once per head: a select inside it became a
    // branch per element, and the column factors were read again for each row.
    auto epilogue = [&](auto factored) {
      constexpr bool kFac = decltype(factored)::value;
      float cv[kGramNi][2], dv[kGramNi][2];  // this thread's columns: vr[slot][1], vr[slot][2]
#pragma unroll
      for (int ni = 0; ni < kGramNi; ++ni)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int cl = wn + ni * 8 + 2 * tq + e;
          cv[ni][e] = vr[slot][1][cl];
          if constexpr (!kFac) dv[ni][e] = vr[slot][2][cl];
        }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const float ci = vr[slot][0][wm + mi * 16 + gq + 8 * hf];
#pragma unroll
          for (int ni = 0; ni < kGramNi; ++ni)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int q = 2 * hf + e;
              const bool ok = (okm >> ((mi * kGramNi + ni) * 4 + q)) & 1u;
              const float d = kFac ? ci * cv[ni][e] : dv[ni][e] * __expf(ci - cv[ni][e]);
              const float p = ok ? acc[mi][ni][q] * d : 0.f;
              acc[mi][ni][q] = 0.f;
              gsum[mi][ni][q] += p;
              const float w = p * cbs[((mi * kGramNi + ni) * 4 + q) * kGramThreads + tid];
              rs[mi][hf] += w;
              cs[ni][e] += w;
            }
        }
    };
    if (!kSplit && vfac[slot]) epilogue(std::true_type{});
    else epilogue(std::false_type{});
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        float v = rs[mi][hf];
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        v += __shfl_xor_sync(0xffffffffu, v, 2);
        if (tq == 0) red[slot][wn / (8 * kGramNi)][wm + mi * 16 + gq + 8 * hf] = v;
      }
#pragma unroll
    for (int ni = 0; ni < kGramNi; ++ni)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float v = cs[ni][e];
        v += __shfl_xor_sync(0xffffffffu, v, 4);
        v += __shfl_xor_sync(0xffffffffu, v, 8);
        v += __shfl_xor_sync(0xffffffffu, v, 16);
        if (gq == 0) redc[slot][wm / 32][wn + ni * 8 + 2 * tq + e] = v;
      }
  };
  if (ksN == 0)  // N = 0: CB = 0
    for (int q = 0; q < 4 * 2 * kGramNi; ++q) cbs[q * kGramThreads + tid] = 0.f;
  run_stages(stages, load, store, compute);
  if (a.hpg > 0 && ksP > 0) finish_head(a.hpg - 1);

  // CB (for dx) and Gs (for dB, dC), the whole tile (zeros where masked or past the chunk)
  const int64_t tb = bcg(a, b, c, g) * a.Q * a.Q;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int64_t row = tb + int64_t(i0 + wm + mi * 16 + gq + 8 * hf) * a.Q + j0;
#pragma unroll
      for (int ni = 0; ni < kGramNi; ++ni) {
        const int cl = wn + ni * 8 + 2 * tq;
        const int q = ((mi * kGramNi + ni) * 4 + 2 * hf) * kGramThreads + tid;
        *reinterpret_cast<float2*>(a.cb + row + cl) = make_float2(cbs[q], cbs[q + kGramThreads]);
        *reinterpret_cast<float2*>(a.gs + row + cl) = make_float2(gsum[mi][ni][2 * hf], gsum[mi][ni][2 * hf + 1]);
      }
    }
}

// ---- dx: one 64-row tile of a chunk-head, all of P in 64-column passes (128 threads) -----------
// blockIdx.x = ((b nc + c) H + h) nt + r (the heads of a chunk side by side: the group's CB, read
// by each of its heads, stays in L2). Per pass: acc = (w B_rows) dS^T (A = B rows scaled by w,
// K-contiguous; B(n, p) = dS[p][n], K-contiguous), us += x . acc; then acc += sum over the rows i
// >= r0 of (W o CB)[i, j] dY_i (A(j, i) = cb[i][j], M-contiguous; B = dY rows, N-contiguous).
// dx = dt acc + D dY; ddir = x . acc; the block's x . dY.
template <bool kDocs, bool kSplit, class XT>
__global__ void __launch_bounds__(128, kDocs ? 3 : 4) ssd_bw_dx_kernel(BwArgs a) {
  __shared__ __align__(16) uint32_t As[2][kWords64], Bs[2][kWords64];
  __shared__ float scum[kQMax];
  __shared__ int sseg[kQMax];
  __shared__ float sw[kTile], sdt[kTile], sb[kTile];
  __shared__ float sa[kSplit ? 1 : kQMax];
  __shared__ float red[2][2][kTile];
  __shared__ float dred[4];
  int64_t idx = blockIdx.x;
  const int r = int(idx % a.nt);
  idx /= a.nt;
  const int h = int(idx % a.H);
  idx /= a.H;
  const int c = int(idx % a.nc), b = int(idx / a.nc);
  const int r0 = r * kTile, c0 = c * a.Q, L = min(a.Q, a.T - c0);
  if (r0 >= L) return;
  const int tid = threadIdx.x, g = h / a.hpg;
  const int64_t vb = bhc(a, b, h, c) * a.Q;
  for (int j = tid; j < a.Q; j += 128) {
    scum[j] = a.cum[vb + j];
    if (kDocs) sseg[j] = a.seg[(int64_t(b) * a.nc + c) * a.Q + j];
  }
  __syncthreads();
  // The bf16 products factor the decay, as the forward's chunk scan does: W_ij = a_i b_j with a_i =
  // exp(cum_i - cum_r0) (i >= r0) and b_j = exp(cum_r0 - cum_j) over the tile's rows, so the
  // accumulator holds acc_j / b_j: the state part's rows scaled by w_j / b_j = exp(cum_last -
  // cum_r0), dY's row i by a_i as it is staged, CB as it is (masked only in the stages that reach
  // the diagonal), and b_j comes back where acc is read. Taken while the tile's rows span at most
  // kFactorSpan of decay (b_j <= e^40); a steeper tile multiplies each element by its own exp.
  const bool factored = !kSplit && tile_factors(scum, r0, L);
  if (tid < kTile) {
    const int j = r0 + tid;
    const bool ok = j < L && (!kDocs || sseg[j] == sseg[L - 1]);
    sw[tid] = ok ? __expf(scum[L - 1] - (factored ? scum[r0] : scum[j])) : 0.f;
    sb[tid] = factored ? __expf(scum[r0] - scum[min(j, L - 1)]) : 1.f;
    sdt[tid] = a.dtq[vb + j];
  }
  if constexpr (!kSplit)
    if (factored)
      for (int i = r0 + tid; i < L; i += 128) sa[i] = __expf(scum[i] - scum[r0]);
  __syncthreads();

  const int64_t t0 = int64_t(b) * a.T + c0;
  const int64_t ldx = int64_t(a.H) * a.P, ldb = int64_t(a.G) * a.N;
  const bool has_ds = c + 1 < a.nc || a.dfin != nullptr;
  const int ks1 = has_ds ? cdiv(a.N, kKs) : 0, ks2 = cdiv(L - r0, kKs);
  const float Dh = a.D ? a.D[h] : 0.f;
  const XT* Brow = in<XT>(a.Bm) + (t0 + r0) * ldb + int64_t(g) * a.N;
  const int64_t ds_off = bhc(a, b, h, c) * (int64_t(a.P) * a.N);
  const float* cbb = a.cb + bcg(a, b, c, g) * a.Q * a.Q;
  const XT* xb = in<XT>(a.x) + (t0 * a.H + h) * a.P;   // row t: xb + t * ldx
  const float* yb = a.dy + (t0 * a.H + h) * a.P;
  float* dxb = a.dx + (t0 * a.H + h) * a.P;
  const int lane = tid & 31, wm = frag_wm<2>(), wn = frag_wn<2, 4>();
  const int gq = lane >> 2, tq = lane & 3;

  float xs[2][2] = {}, dd[2][2] = {};
  float dsum = 0.f;
  float4 ra[4], rb[4];
  for (int p0 = 0; p0 < a.P; p0 += kTile) {
    const int pc = a.P - p0;
    Acc acc = {};
    auto load = [&](int s) {
      if (s < ks1) {
        const int k0 = s * kKs;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          int row, col;
          piece<kKs, 128>(k, row, col);
          ra[k] = ld_piece(Brow + row * ldb + k0 + col, r0 + row < L, k0 + col, a.N);
          if constexpr (kSplit) rb[k] = ld_piece(a.dS + ds_off + int64_t(p0 + row) * a.N + k0 + col, row < pc, k0 + col, a.N);
        }
        if constexpr (!kSplit) cp_bf16_stage_64x32(Bs[s & 1], a.dS16 + ds_off, p0, pc, k0, a.N);
      } else {
        const int i0 = r0 + (s - ks1) * kKs;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          int row, col;
          piece<kTile, 128>(k, row, col);
          const int i = i0 + row;
          ra[k] = ld_scratch(cbb + int64_t(i) * a.Q + r0 + col, i < L);
          rb[k] = ld_piece(yb + i * ldx + p0 + col, i < L, col, pc);
          if (col % 32 == 0 && i + kKs < L) {  // warm the next stage's rows in L2
            prefetch_l2(cbb + int64_t(i + kKs) * a.Q + r0 + col);
            if (col < pc) prefetch_l2(yb + (i + kKs) * ldx + p0 + col);
          }
        }
      }
    };
    auto store = [&](int s, int buf) {
      if (s < ks1) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          int row, col;
          piece<kKs, 128>(k, row, col);
          st_op<kSplit>(As[buf], row * smk<kSplit>() + col, ra[k], sw[row]);
          if constexpr (kSplit) st_op<kSplit>(Bs[buf], row * smk<kSplit>() + col, rb[k], 1.f);
        }
        if constexpr (!kSplit) cp_async_wait<0>();  // this thread's dS copies, before the stage's barrier
      } else {
        const int i0 = r0 + (s - ks1) * kKs;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          int row, col;
          piece<kTile, 128>(k, row, col);
          const int i = i0 + row;
          float m[4] = {ra[k].x, ra[k].y, ra[k].z, ra[k].w};
          float ai = 1.f;
          if (factored) {  // rows past L are zero as loaded; past the diagonal stages every j <= i
            if (kDocs || i0 < r0 + kTile) {
#pragma unroll
              for (int q = 0; q < 4; ++q) {
                const int j = r0 + col + q;
                if (j > i || (kDocs && sseg[i] != sseg[j])) m[q] = 0.f;
              }
            }
            if constexpr (!kSplit) ai = i < L ? sa[i] : 0.f;
          } else {
            const float ci = scum[min(i, a.Q - 1)];
#pragma unroll
            for (int q = 0; q < 4; ++q) {
              const int j = r0 + col + q;
              const bool ok = i < L && j <= i && (!kDocs || sseg[i] == sseg[j]);
              m[q] = ok ? m[q] * __expf(ci - scum[j]) : 0.f;
            }
          }
          st_op<kSplit>(As[buf], row * kSKM + col, m[0], m[1], m[2], m[3]);
          st_op<kSplit>(Bs[buf], row * kSKM + col, rb[k], ai);
        }
      }
    };
    auto compute = [&](int s, int buf) {
      if (s < ks1) {
        tile_mma_op<2, 4, false, false, kSplit>(As[buf], Bs[buf], acc);
        if (s == ks1 - 1) {  // the state part alone: x_j . w_j (dS B_j)
#pragma unroll
          for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
              const int jl = wm + mi * 16 + gq + 8 * hf, j = r0 + jl;
              if (j >= L) continue;
              const float bj = sb[jl];
#pragma unroll
              for (int ni = 0; ni < 4; ++ni) {
                const int pl = wn + ni * 8 + 2 * tq;
                const float2 xv = ld_pair(xb + j * ldx + p0 + pl, pl, pc);
                xs[mi][hf] += bj * (xv.x * acc[mi][ni][2 * hf] + xv.y * acc[mi][ni][2 * hf + 1]);
              }
            }
        }
      } else {
        tile_mma_op<2, 4, true, true, kSplit>(As[buf], Bs[buf], acc);
      }
    };
    run_stages(ks1 + ks2, load, store, compute);
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int jl = wm + mi * 16 + gq + 8 * hf, j = r0 + jl;
        if (j >= L) continue;
        const float dtj = sdt[jl], bj = sb[jl];
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          const int pl = wn + ni * 8 + 2 * tq;
          const float2 xv = ld_pair(xb + j * ldx + p0 + pl, pl, pc);
          const float2 yv = ld_pair(yb + j * ldx + p0 + pl, pl, pc);
          const float a0 = bj * acc[mi][ni][2 * hf], a1 = bj * acc[mi][ni][2 * hf + 1];
          dd[mi][hf] += xv.x * a0 + xv.y * a1;
          dsum += xv.x * yv.x + xv.y * yv.y;
          st_pair(dxb + j * ldx + p0 + pl, pl, pc, dtj * a0 + Dh * yv.x, dtj * a1 + Dh * yv.y);
        }
      }
  }
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float u = xs[mi][hf], v = dd[mi][hf];
      u += __shfl_xor_sync(0xffffffffu, u, 1);
      u += __shfl_xor_sync(0xffffffffu, u, 2);
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      if (tq == 0) {
        red[0][wn / 32][wm + mi * 16 + gq + 8 * hf] = u;
        red[1][wn / 32][wm + mi * 16 + gq + 8 * hf] = v;
      }
    }
  dsum = warp_sum(dsum);
  if (lane == 0) dred[tid >> 5] = dsum;
  __syncthreads();
  if (tid < kTile) {
    a.us[vb + r0 + tid] = red[0][0][tid] + red[0][1][tid];
    a.ddir[vb + r0 + tid] = red[1][0][tid] + red[1][1][tid];
  }
  if (tid == 0) a.dpart[bhc(a, b, h, c) * a.nt + r] = (dred[0] + dred[1]) + (dred[2] + dred[3]);
}

// ---- dB and dC: 64 rows x TN = 32 NI columns of N of a chunk-group per block (256 threads) ----
// blockIdx.x = (((b nc + c) G + g) nt + r) ntn + nn. Stages: per head of the group K = P (A = the
// head's rows scaled per row, K-contiguous; B = dS or S rows [p][n], N-contiguous), then the
// chunk's Gs part (K = rows i >= r0 for dB, A(j, i) = gs[i][j]; K = columns j < r0 + 64 for dC,
// A(i, j) = gs[i][j]). dC also takes, after each head, C_i . (this head's e_i S^T dY_i): the row
// dot of C with the accumulator's growth over that head.

template <bool kDocs, bool kIsC, bool kSplit, int NI, class XT>
__global__ void __launch_bounds__(kBcThreads, NI == 4 ? 2 : 3) ssd_bw_dbc_kernel(BwArgs a) {
  constexpr int kBcTn = 32 * NI, kBWords = bc_b_words<NI>(), kCsStride = bc_cs_stride<NI>();
  extern __shared__ __align__(16) uint32_t bc_smem[];
  uint32_t* As0 = bc_smem;
  uint32_t* Bs0 = bc_smem + 2 * kWords64;
  float* Cs = reinterpret_cast<float*>(bc_smem + bc_smem_words<NI>());  // kIsC: [64][kCsStride]
  __shared__ float red[2][4][kTile];
  __shared__ int sseg[kTile];
  __shared__ int sseglast;
  int64_t idx = blockIdx.x;
  const int nn = int(idx % a.ntn);
  idx /= a.ntn;
  const int r = int(idx % a.nt);
  idx /= a.nt;
  const int g = int(idx % a.G);
  idx /= a.G;
  const int c = int(idx % a.nc), b = int(idx / a.nc);
  const int r0 = r * kTile, n0 = nn * kBcTn, c0 = c * a.Q, L = min(a.Q, a.T - c0);
  if (r0 >= L) return;
  const int tid = threadIdx.x;
  const int64_t t0 = int64_t(b) * a.T + c0;
  const int64_t ldx = int64_t(a.H) * a.P, ldb = int64_t(a.G) * a.N;
  const int ncl = a.N - n0;
  if (kDocs) {
    const int* seg = a.seg + (int64_t(b) * a.nc + c) * a.Q;
    if (tid < kTile) sseg[tid] = seg[r0 + tid];
    if (tid == 0) sseglast = seg[L - 1];
  }
  if (kIsC) {  // C rows of the tile, for the per-head dots
    for (int q = tid; q < kTile * (kBcTn / 4); q += kBcThreads) {
      const int row = q / (kBcTn / 4), col = (q % (kBcTn / 4)) * 4;
      const float4 v = ld_piece(in<XT>(a.Cm) + (t0 + r0 + row) * ldb + int64_t(g) * a.N + n0 + col,
                                          r0 + row < L, col, ncl);
      *reinterpret_cast<float4*>(Cs + row * kCsStride + col) = v;
    }
  }
  __syncthreads();

  // dB needs dS (zero for the last chunk without dfinal_state), dC needs S (zero for the first
  // chunk without an initial state): those heads' stages are skipped.
  const bool heads_on = kIsC ? (c > 0 || a.init != nullptr) : (c + 1 < a.nc || a.dfin != nullptr);
  const int ksP = cdiv(a.P, kKs);
  const int hs = heads_on ? a.hpg * ksP : 0;
  const StageDiv byP(ksP);
  const int kend = kIsC ? min(r0 + kTile, L) : L - r0;  // K extent of the Gs part
  const int ks2 = cdiv(kend, kKs);
  const float* gsb = a.gs + bcg(a, b, c, g) * a.Q * a.Q;
  const XT* src2 = in<XT>(kIsC ? a.Bm : a.Cm);  // B operand of the Gs part
  const int lane = tid & 31, wm = frag_wm<4>(), wn = frag_wn<4, NI>();
  const int gq = lane >> 2, tq = lane & 3;
  constexpr int kSKN = skn<4, NI>();

  float4 ra[2], rb[NI];
  float sA[2] = {0.f, 0.f};  // this head's scale of the thread's two A rows
  float dprev[2][2] = {};
  AccT<NI> acc = {};
  auto load = [&](int s) {
    if (s < hs) {
      const int hd = byP.div(s), ks = s - hd * ksP;
      const int h = g * a.hpg + hd, k0 = ks * kKs;
      using AT = std::conditional_t<kIsC, float, XT>;  // dY's rows (fp32) or x's
      const AT* Ab = in<AT>(kIsC ? static_cast<const void*>(a.dy) : a.x) + ((t0 + r0) * a.H + h) * a.P;
      const int64_t s_off = bhc(a, b, h, c) * (int64_t(a.P) * a.N) + n0;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        int row, col;
        piece<kKs, kBcThreads>(k, row, col);
        ra[k] = ld_piece(Ab + row * ldx + k0 + col, r0 + row < L, k0 + col, a.P);
        if (ks == 0) {  // row scale: dC e_i = exp(cum_i); dB w_j dt_j = exp(cum_last - cum_j) dt_j
          const int64_t vb = bhc(a, b, h, c) * a.Q;
          const int j = r0 + row;
          const float cj = a.cum[vb + j];
          float sc;
          if (kIsC) {
            sc = (j < L && (!kDocs || sseg[row] == 0)) ? __expf(cj) : 0.f;
          } else {
            sc = (j < L && (!kDocs || sseg[row] == sseglast)) ? __expf(a.cum[vb + L - 1] - cj) * a.dtq[vb + j]
                                                              : 0.f;
          }
          sA[k] = sc;
        }
      }
      if constexpr (kIsC || kSplit) {
#pragma unroll
        for (int k = 0; k < NI; ++k) {  // 32 x TN floats in 16-byte pieces
          int row, col;
          piece<kBcTn, kBcThreads>(k, row, col);
          rb[k] = ld_piece((kIsC ? a.S : a.dS) + s_off + int64_t(k0 + row) * a.N + col, k0 + row < a.P, col, ncl);
        }
      } else {  // dB with the bf16 products: dS16's rows copied as they are, 16 bytes (8 halves) a copy
        uint32_t* Bs = Bs0 + (s & 1) * kBWords;
#pragma unroll
        for (int k = 0; k < NI / 2; ++k) {
          const int idx = tid + kBcThreads * k, row = idx / (kBcTn / 8), col = (idx % (kBcTn / 8)) * 8;
          const bool ok = k0 + row < a.P && col < ncl;
          const __nv_bfloat16* src = a.dS16 + s_off + int64_t(k0 + row) * a.N + col;
          cp_async16(smem_u32(Bs) + 2u * uint32_t(row * kSKN + col), ok ? src : a.dS16, ok ? 16 : 0);
        }
        cp_async_commit();
      }
    } else {
      const int k0 = (s - hs) * kKs;
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        int row, col;
        if (kIsC) {  // A(i, j) = gs[r0 + i][k0 + j]: [64][32]
          piece<kKs, kBcThreads>(k, row, col);
          ra[k] = ld_scratch(gsb + int64_t(r0 + row) * a.Q + k0 + col, r0 + row < L);
        } else {     // A(j, i) = gs[r0 + k0 + i][r0 + j]: [32][64]
          piece<kTile, kBcThreads>(k, row, col);
          ra[k] = ld_scratch(gsb + int64_t(r0 + k0 + row) * a.Q + r0 + col, k0 + row < kend);
        }
      }
      const int base_row = kIsC ? k0 : r0 + k0;  // token of the B operand's K row 0
#pragma unroll
      for (int k = 0; k < NI; ++k) {
        int row, col;
        piece<kBcTn, kBcThreads>(k, row, col);
        const int tk = base_row + row;
        rb[k] = ld_piece(src2 + (t0 + tk) * ldb + int64_t(g) * a.N + n0 + col,
                                   tk < L && k0 + row < kend, col, ncl);
      }
    }
  };
  auto store = [&](int s, int buf) {
    uint32_t* As = As0 + buf * kWords64;
    uint32_t* Bs = Bs0 + buf * kBWords;
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      int row, col;
      if (s < hs || kIsC) {
        piece<kKs, kBcThreads>(k, row, col);
        st_op<kSplit>(As, row * smk<kSplit>() + col, ra[k], s < hs ? sA[k] : 1.f);
      } else {
        piece<kTile, kBcThreads>(k, row, col);
        st_op<kSplit>(As, row * kSKM + col, ra[k], 1.f);
      }
    }
    if (kIsC || kSplit || s >= hs) {
#pragma unroll
      for (int k = 0; k < NI; ++k) {
        int row, col;
        piece<kBcTn, kBcThreads>(k, row, col);
        st_op<kSplit>(Bs, row * kSKN + col, rb[k], 1.f);
      }
    } else {
      cp_async_wait<0>();  // this thread's dS copies, before the stage's barrier
    }
  };
  auto finish_head = [&](int hd) {
    if (tid < kTile) {
      const int slot = hd & 1;
      const int64_t base = bhc(a, b, g * a.hpg + hd, c);
      a.dcs[(base * a.ntn + nn) * a.Q + r0 + tid] =
          (red[slot][0][tid] + red[slot][1][tid]) + (red[slot][2][tid] + red[slot][3][tid]);
    }
  };
  auto compute = [&](int s, int buf) {
    const uint32_t* As = As0 + buf * kWords64;
    const uint32_t* Bs = Bs0 + buf * kBWords;
    if (s < hs || kIsC) {
      tile_mma_op<4, NI, false, true, kSplit>(As, Bs, acc);
    } else {
      tile_mma_op<4, NI, true, true, kSplit>(As, Bs, acc);
    }
    if (!kIsC) return;
    if (s == hs && hs > 0) finish_head(a.hpg - 1);
    if (s >= hs || byP.mod(s) != ksP - 1) return;
    const int hd = byP.div(s);
    if (hd > 0) finish_head(hd - 1);
    const int slot = hd & 1;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int rl = wm + mi * 16 + gq + 8 * hf;
        float d = 0.f;
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
          const float2 cv = *reinterpret_cast<const float2*>(Cs + rl * kCsStride + wn + ni * 8 + 2 * tq);
          d += cv.x * acc[mi][ni][2 * hf] + cv.y * acc[mi][ni][2 * hf + 1];
        }
        d += __shfl_xor_sync(0xffffffffu, d, 1);
        d += __shfl_xor_sync(0xffffffffu, d, 2);
        const float grow = d - dprev[mi][hf];
        dprev[mi][hf] = d;
        if (tq == 0) red[slot][wn / (8 * NI)][rl] = grow;  // the warp's column quarter
      }
  };
  run_stages(hs + ks2, load, store, compute);
  if (kIsC && hs == 0 && tid < kTile) {  // the state entering the chunk is zero
    for (int hd = 0; hd < a.hpg; ++hd)
      a.dcs[(bhc(a, b, g * a.hpg + hd, c) * a.ntn + nn) * a.Q + r0 + tid] = 0.f;
  }

  float* out = (kIsC ? a.dCm : a.dBm) + (t0 + r0) * ldb + int64_t(g) * a.N + n0;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int rl = wm + mi * 16 + gq + 8 * hf;
      if (r0 + rl >= L) continue;
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        const int cl = wn + ni * 8 + 2 * tq;
        st_pair(out + rl * ldb + cl, cl, ncl, acc[mi][ni][2 * hf], acc[mi][ni][2 * hf + 1]);
      }
    }
}

template <bool kDocs, bool kSplit, class XT>
void allow_smem_once() {
  static bool done = false;
  if (done) return;
  const char* op = "ssd_chunked_backward";
  auto allow = [&](auto kernel, int bytes) {
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), op,
               "cudaFuncSetAttribute");
  };
  allow(ssd_bw_gram_kernel<kDocs, kSplit, XT>, kGramSmemBytes);
  allow(ssd_bw_dbc_kernel<kDocs, false, kSplit, 4, XT>, db_smem_bytes<4>());
  allow(ssd_bw_dbc_kernel<kDocs, true, kSplit, 4, XT>, dc_smem_bytes<4>());
  allow(ssd_bw_dbc_kernel<kDocs, false, kSplit, 2, XT>, db_smem_bytes<2>());
  allow(ssd_bw_dbc_kernel<kDocs, true, kSplit, 2, XT>, dc_smem_bytes<2>());
  done = true;
}

// Calls f(kDocs, kSplit, TypeTag<XT>) for the build of a (with_operands).
template <class F>
void with_build(bool docs, const BwArgs& a, bool split, F f) {
  with_operands(split, a.in16, [&](auto exact, auto xt) {
    if (docs) f(std::true_type{}, exact, xt);
    else f(std::false_type{}, exact, xt);
  });
}
}  // namespace

void allow_product_smem(bool docs, bool split, bool in16) {
  BwArgs a{};
  a.in16 = in16;
  with_build(docs, a, split, [](auto d, auto e, auto xt) {
    allow_smem_once<decltype(d)::value, decltype(e)::value, typename decltype(xt)::type>();
  });
}

void launch_gram(bool docs, bool split, unsigned blocks, cudaStream_t stream, const BwArgs& a) {
  with_build(docs, a, split, [&](auto d, auto e, auto xt) {
    ssd_bw_gram_kernel<decltype(d)::value, decltype(e)::value, typename decltype(xt)::type>
        <<<blocks, kGramThreads, kGramSmemBytes, stream>>>(a);
  });
}

void launch_dx(bool docs, bool split, unsigned blocks, cudaStream_t stream, const BwArgs& a) {
  with_build(docs, a, split, [&](auto d, auto e, auto xt) {
    ssd_bw_dx_kernel<decltype(d)::value, decltype(e)::value, typename decltype(xt)::type><<<blocks, 128, 0, stream>>>(a);
  });
}

void launch_dbc(bool docs, bool split, bool is_c, unsigned blocks, cudaStream_t stream, const BwArgs& a) {
  with_build(docs, a, split, [&](auto d, auto e, auto xt) {
    constexpr bool kDocs = decltype(d)::value, kSplit = decltype(e)::value;
    using XT = typename decltype(xt)::type;
    auto go = [&](auto ni) {
      constexpr int NI = decltype(ni)::value;
      if (is_c) ssd_bw_dbc_kernel<kDocs, true, kSplit, NI, XT><<<blocks, kBcThreads, dc_smem_bytes<NI>(), stream>>>(a);
      else ssd_bw_dbc_kernel<kDocs, false, kSplit, NI, XT><<<blocks, kBcThreads, db_smem_bytes<NI>(), stream>>>(a);
    };
    if (bc_ni(a.N) == 2) go(std::integral_constant<int, 2>{});
    else go(std::integral_constant<int, 4>{});
  });
}

}  // namespace mambalm::ops::cuda::ssd_bw
