// Mamba-2 SSD: the chunked forward with document resets (ssd_chunked routes here when given
// document ids) and the chunked backward,
// templated over the scalar type (float for the ops, double for finite-difference tests).
//
// Per chunk of length L and head h (group g), with cum_i = sum_{k<=i} dt_k A (local, double),
// seg_i = number of document starts at local positions <= i, and S_prev the entering state:
//   W_ij = exp(cum_i - cum_j) if j <= i and seg_i == seg_j, else 0      (intra-chunk decay)
//   e_i  = exp(cum_i) if seg_i == 0, else 0                              (state reaches y_i)
//   w_j  = exp(cum_last - cum_j) if seg_j == seg_last, else 0            (x_j reaches S_new)
//   y_i  = sum_j W_ij (C_i . B_j) dt_j x_j + e_i S_prev C_i + D x_i
//   S_new = e_last S_prev + sum_j w_j dt_j x_j B_j^T
// This is the recurrence of ops.h with the decay forced to 0 at a document start.
//
// Backward per chunk (reverse order), given dY and dS = dLoss/dS_new, with G = dY X^T:
//   dX   = M^T dY + diag(w dt) B dS^T + D dY,             M_ij = W_ij CB_ij dt_j
//   dB  += (W dt o G)^T C + diag(w dt) X dS                  (summed over the group's heads)
//   dC  += (W dt o G) B + diag(e) dY S_prev
//   dS_prev = e_last dS + (diag(e) dY)^T C
//   ddt_j = sum_i W_ij CB_ij G_ij + w_j x_j^T dS B_j + A * sum_{k>=j} dcum_k
//   dA   += sum_j dt_j sum_{k>=j} dcum_k
// where dcum collects the derivative of every exp(.) w.r.t. the cum_k it contains.
// A masked pair never spans a document start, so no gradient reaches dt_k A across one.
//
// Work split (backward): tasks are (batch, group, block of heads in the group) as in the
// forward op; each head first recomputes its states at chunk boundaries (stored: nchunks*P*N),
// then walks the chunks in reverse. dB and dC are summed over heads, so a task with
// blocks_per_group > 1 writes a private partial that is added in block order afterwards:
// deterministic for a given thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu/blas_t.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/scan_kernels.h"

namespace mambalm::ops::cpu {

namespace {

// Decay geometry of one chunk for one head (see the file comment).
template <class R>
struct ChunkGeo {
  std::vector<double> cum;
  std::vector<int> seg;
  std::vector<R> e, w;
  R e_last = R(0);
  int64_t L = 0;

  explicit ChunkGeo(int64_t Q)
      : cum(size_t(Q)), seg(size_t(Q)), e(size_t(Q)), w(size_t(Q)) {}

  // dtc: dt of the chunk's first token for this head (stride H); seq: the batch row of seq_idx.
  void compute(const R* dtc, int64_t H, double Ah, const int32_t* seq, int64_t c0, int64_t len) {
    L = len;
    double run = 0.0;
    int s = 0;
    for (int64_t i = 0; i < L; ++i) {
      run += static_cast<double>(dtc[i * H]) * Ah;
      cum[size_t(i)] = run;
      const int64_t t = c0 + i;
      if (seq && t > 0 && seq[t] != seq[t - 1]) ++s;
      seg[size_t(i)] = s;
    }
    const double last = cum[size_t(L - 1)];
    for (int64_t i = 0; i < L; ++i) {
      e[size_t(i)] = seg[size_t(i)] == 0 ? exp_r<R>(R(cum[size_t(i)])) : R(0);
      w[size_t(i)] = seg[size_t(i)] == s ? exp_r<R>(R(last - cum[size_t(i)])) : R(0);
    }
    e_last = e[size_t(L - 1)];
  }
  R decay(int64_t i, int64_t j) const {  // W_ij for j <= i
    return seg[size_t(i)] == seg[size_t(j)] ? exp_r<R>(R(cum[size_t(i)] - cum[size_t(j)])) : R(0);
  }
};

// S = e_last S + sum_j w_j dt_j x_j B_j^T  (Xw is L x P scratch)
template <class R>
void advance_state(const ChunkGeo<R>& geo, const R* dtc, const R* xc, const R* Bc, int64_t H,
                   int64_t P, int64_t N, int64_t ldbc, R* Xw, R* S) {
  const int64_t L = geo.L;
  for (int64_t j = 0; j < L; ++j) {
    const R c = geo.w[size_t(j)] * dtc[j * H];
    const R* xj = xc + j * H * P;
    for (int64_t p = 0; p < P; ++p) Xw[j * P + p] = c * xj[p];
  }
  gemm_rm<R>(true, false, P, N, L, R(1), Xw, P, Bc, ldbc, geo.e_last, S, N);
}

}  // namespace

template <class R>
void ssd_chunked_forward(const SsdProblem<R>& pr, const R* state_in, R* state_out, R* y) {
  const int64_t Bsz = pr.Bsz, T = pr.T, H = pr.H, P = pr.P, G = pr.G, N = pr.N;
  if (Bsz == 0 || H == 0 || P == 0) return;
  const int64_t hpg = H / G;
  const int64_t Q = std::min<int64_t>(std::max<int64_t>(pr.chunk, 1), std::max<int64_t>(T, 1));
  const int64_t ldx = H * P, ldbc = G * N;

#pragma omp parallel
  {
    ChunkGeo<R> geo(Q);
    std::vector<R> CB(size_t(Q * Q)), M(size_t(Q * Q)), Cs(size_t(Q * N)), Xw(size_t(Q * P)),
        S(size_t(P * N));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < Bsz; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / hpg;
        const int32_t* seq = pr.seq_idx ? pr.seq_idx + b * T : nullptr;
        if (state_in) {
          std::copy(state_in + (b * H + h) * P * N, state_in + (b * H + h + 1) * P * N, S.begin());
        } else {
          std::fill(S.begin(), S.end(), R(0));
        }
        const R Dh = pr.D ? pr.D[h] : R(0);
        for (int64_t c0 = 0; c0 < T; c0 += Q) {
          const int64_t L = std::min(Q, T - c0);
          const R* Bc = pr.Bm + ((b * T + c0) * G + g) * N;
          const R* Cc = pr.Cm + ((b * T + c0) * G + g) * N;
          const R* dtc = pr.dt + (b * T + c0) * H + h;
          const R* xc = pr.x + ((b * T + c0) * H + h) * P;
          R* yc = y + ((b * T + c0) * H + h) * P;
          geo.compute(dtc, H, static_cast<double>(pr.A[h]), seq, c0, L);
          gemm_rm<R>(false, true, L, L, N, R(1), Cc, ldbc, Bc, ldbc, R(0), CB.data(), L);
          for (int64_t i = 0; i < L; ++i) {
            for (int64_t j = 0; j < L; ++j)
              M[size_t(i * L + j)] = j <= i ? CB[size_t(i * L + j)] * geo.decay(i, j) * dtc[j * H] : R(0);
            M[size_t(i * L + i)] += Dh;
          }
          gemm_rm<R>(false, false, L, P, L, R(1), M.data(), L, xc, ldx, R(0), yc, ldx);
          for (int64_t i = 0; i < L; ++i)
            for (int64_t n = 0; n < N; ++n) Cs[size_t(i * N + n)] = geo.e[size_t(i)] * Cc[i * ldbc + n];
          gemm_rm<R>(false, true, L, P, N, R(1), Cs.data(), N, S.data(), N, R(1), yc, ldx);
          advance_state(geo, dtc, xc, Bc, H, P, N, ldbc, Xw.data(), S.data());
        }
        if (state_out) std::copy(S.begin(), S.end(), state_out + (b * H + h) * P * N);
      }
    }
  }
}

template <class R>
void ssd_chunked_backward(const SsdProblem<R>& pr, const R* state_in, const R* dstate_out,
                          const R* dy, R* dx, R* ddt, R* dA, R* dB, R* dC, R* dD, R* dstate_in) {
  const int64_t Bsz = pr.Bsz, T = pr.T, H = pr.H, P = pr.P, G = pr.G, N = pr.N;
  const int64_t hpg = H / G;
  const int64_t Q = std::min<int64_t>(std::max<int64_t>(pr.chunk, 1), std::max<int64_t>(T, 1));
  const int64_t nc = (T + Q - 1) / Q;
  const int64_t ldx = H * P, ldbc = G * N;
  const int64_t bc_size = Bsz * T * G * N;
  std::fill(dB, dB + bc_size, R(0));
  std::fill(dC, dC + bc_size, R(0));
  if (Bsz == 0 || H == 0) return;
  if (P == 0 || T == 0) {
    std::fill(ddt, ddt + Bsz * T * H, R(0));
    if (dstate_in) std::fill(dstate_in, dstate_in + Bsz * H * P * N, R(0));
    return;
  }

  const int64_t threads = omp_get_max_threads();
  const int64_t bpg = std::clamp<int64_t>((threads + Bsz * G - 1) / (Bsz * G), 1, hpg);
  const int64_t hb = (hpg + bpg - 1) / bpg;
  const int64_t tasks = Bsz * G * bpg;
  // partial[k] for block k of every group; block 0 writes straight into dB/dC.
  std::vector<std::vector<R>> partB(size_t(bpg - 1)), partC(size_t(bpg - 1));
  for (int64_t k = 0; k + 1 < bpg; ++k) {
    partB[size_t(k)].assign(size_t(bc_size), R(0));
    partC[size_t(k)].assign(size_t(bc_size), R(0));
  }

  // dA and dD sum over the batch: tasks of different sequences reach the same head, so each
  // (sequence, head) writes its own slot and the slots are added in sequence order afterwards
  // (a shared += would race, and a reduction's order would depend on thread timing).
  std::vector<double> dA_bh(size_t(Bsz * H), 0.0), dD_bh(size_t(Bsz * H), 0.0);

#pragma omp parallel
  {
    ChunkGeo<R> geo(Q);
    std::vector<R> CB(size_t(Q * Q)), M(size_t(Q * Q)), MG(size_t(Q * Q)), Gm(size_t(Q * Q));
    std::vector<R> Ys(size_t(Q * P)), dYe(size_t(Q * P)), Tmp(size_t(Q * P)), Xw(size_t(Q * P));
    std::vector<double> dcum(static_cast<size_t>(Q)), ddir(static_cast<size_t>(Q));
    std::vector<R> Sb(size_t(nc * P * N)), S(size_t(P * N)), dS(size_t(P * N));

#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / (G * bpg);
      const int64_t g = (task / bpg) % G;
      const int64_t blk = task % bpg;
      const int64_t h_begin = g * hpg + blk * hb;
      const int64_t h_end = std::min(h_begin + hb, (g + 1) * hpg);
      R* dBt = blk == 0 ? dB : partB[size_t(blk - 1)].data();
      R* dCt = blk == 0 ? dC : partC[size_t(blk - 1)].data();
      const int32_t* seq = pr.seq_idx ? pr.seq_idx + b * T : nullptr;

      for (int64_t h = h_begin; h < h_end; ++h) {
        const double Ah = static_cast<double>(pr.A[h]);
        const R Dh = pr.D ? pr.D[h] : R(0);
        // Phase 1: states entering each chunk.
        if (state_in) {
          std::copy(state_in + (b * H + h) * P * N, state_in + (b * H + h + 1) * P * N, S.begin());
        } else {
          std::fill(S.begin(), S.end(), R(0));
        }
        for (int64_t c = 0; c < nc; ++c) {
          const int64_t c0 = c * Q, L = std::min(Q, T - c0);
          std::copy(S.begin(), S.end(), Sb.begin() + c * P * N);
          if (c + 1 == nc) break;  // the final state is not needed
          const R* dtc = pr.dt + (b * T + c0) * H + h;
          geo.compute(dtc, H, Ah, seq, c0, L);
          advance_state(geo, dtc, pr.x + ((b * T + c0) * H + h) * P,
                        pr.Bm + ((b * T + c0) * G + g) * N, H, P, N, ldbc, Xw.data(), S.data());
        }
        // Phase 2: chunks in reverse, carrying dS.
        if (dstate_out) {
          std::copy(dstate_out + (b * H + h) * P * N, dstate_out + (b * H + h + 1) * P * N, dS.begin());
        } else {
          std::fill(dS.begin(), dS.end(), R(0));
        }
        double dA_h = 0.0, dD_h = 0.0;
        for (int64_t c = nc - 1; c >= 0; --c) {
          const int64_t c0 = c * Q, L = std::min(Q, T - c0);
          const R* Bc = pr.Bm + ((b * T + c0) * G + g) * N;
          const R* Cc = pr.Cm + ((b * T + c0) * G + g) * N;
          const R* dtc = pr.dt + (b * T + c0) * H + h;
          const R* xc = pr.x + ((b * T + c0) * H + h) * P;
          const R* dyc = dy + ((b * T + c0) * H + h) * P;
          R* dxc = dx + ((b * T + c0) * H + h) * P;
          R* dBc = dBt + ((b * T + c0) * G + g) * N;
          R* dCc = dCt + ((b * T + c0) * G + g) * N;
          const R* Sp = Sb.data() + c * P * N;
          geo.compute(dtc, H, Ah, seq, c0, L);
          std::fill(dcum.begin(), dcum.begin() + L, 0.0);
          std::fill(ddir.begin(), ddir.begin() + L, 0.0);

          // Intra-chunk quadratic part.
          gemm_rm<R>(false, true, L, L, N, R(1), Cc, ldbc, Bc, ldbc, R(0), CB.data(), L);
          gemm_rm<R>(false, true, L, L, P, R(1), dyc, ldx, xc, ldx, R(0), Gm.data(), L);
          for (int64_t i = 0; i < L; ++i) {
            for (int64_t j = 0; j < L; ++j) {
              const size_t ij = size_t(i * L + j);
              if (j > i) {
                M[ij] = R(0);
                MG[ij] = R(0);
                continue;
              }
              const R W = geo.decay(i, j);
              const R wdt = W * dtc[j * H];
              M[ij] = wdt * CB[ij];
              MG[ij] = wdt * Gm[ij];
              const double q = static_cast<double>(M[ij]) * Gm[ij];
              dcum[size_t(i)] += q;
              dcum[size_t(j)] -= q;
              ddir[size_t(j)] += static_cast<double>(W) * CB[ij] * Gm[ij];
            }
          }
          gemm_rm<R>(true, false, L, P, L, R(1), M.data(), L, dyc, ldx, R(0), dxc, ldx);
          gemm_rm<R>(true, false, L, N, L, R(1), MG.data(), L, Cc, ldbc, R(1), dBc, ldbc);
          gemm_rm<R>(false, false, L, N, L, R(1), MG.data(), L, Bc, ldbc, R(1), dCc, ldbc);

          // Entering state -> y.
          gemm_rm<R>(false, true, L, P, N, R(1), Cc, ldbc, Sp, N, R(0), Ys.data(), P);
          for (int64_t i = 0; i < L; ++i) {
            const R ei = geo.e[size_t(i)];
            double r = 0.0;
            for (int64_t p = 0; p < P; ++p) {
              r += static_cast<double>(dyc[i * ldx + p]) * Ys[size_t(i * P + p)];
              dYe[size_t(i * P + p)] = ei * dyc[i * ldx + p];
            }
            dcum[size_t(i)] += static_cast<double>(ei) * r;
          }
          gemm_rm<R>(false, false, L, N, P, R(1), dYe.data(), P, Sp, N, R(1), dCc, ldbc);

          // Chunk inputs -> leaving state.
          gemm_rm<R>(false, true, L, P, N, R(1), Bc, ldbc, dS.data(), N, R(0), Tmp.data(), P);
          for (int64_t j = 0; j < L; ++j) {
            const R wj = geo.w[size_t(j)], wdt = wj * dtc[j * H];
            double v = 0.0, xdy = 0.0;
            for (int64_t p = 0; p < P; ++p) {
              const R xv = xc[j * ldx + p];
              v += static_cast<double>(xv) * Tmp[size_t(j * P + p)];
              xdy += static_cast<double>(xv) * dyc[j * ldx + p];
              dxc[j * ldx + p] += wdt * Tmp[size_t(j * P + p)] + Dh * dyc[j * ldx + p];
              Xw[size_t(j * P + p)] = wdt * xv;
            }
            dD_h += xdy;
            ddir[size_t(j)] += static_cast<double>(wj) * v;
            const double u = static_cast<double>(wdt) * v;
            dcum[size_t(L - 1)] += u;
            dcum[size_t(j)] -= u;
          }
          gemm_rm<R>(false, false, L, N, P, R(1), Xw.data(), P, dS.data(), N, R(1), dBc, ldbc);
          double sds = 0.0;
          for (int64_t k = 0; k < P * N; ++k) sds += static_cast<double>(dS[size_t(k)]) * Sp[k];
          dcum[size_t(L - 1)] += static_cast<double>(geo.e_last) * sds;

          // dS_prev = e_last dS + (diag(e) dY)^T C
          gemm_rm<R>(true, false, P, N, L, R(1), dYe.data(), P, Cc, ldbc, geo.e_last, dS.data(), N);

          // cum_k = sum_{m<=k} dt_m A  ->  reverse cumulative sum of dcum.
          double acc = 0.0;
          for (int64_t m = L - 1; m >= 0; --m) {
            acc += dcum[size_t(m)];
            ddt[(b * T + c0 + m) * H + h] = static_cast<R>(ddir[size_t(m)] + Ah * acc);
            dA_h += static_cast<double>(dtc[m * H]) * acc;
          }
        }
        dA_bh[size_t(b * H + h)] = dA_h;
        dD_bh[size_t(b * H + h)] = dD_h;
        if (dstate_in) std::copy(dS.begin(), dS.end(), dstate_in + (b * H + h) * P * N);
      }
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    double a = 0.0, d = 0.0;
    for (int64_t b = 0; b < Bsz; ++b) {
      a += dA_bh[size_t(b * H + h)];
      d += dD_bh[size_t(b * H + h)];
    }
    if (dA) dA[h] += static_cast<R>(a);
    if (dD) dD[h] += static_cast<R>(d);
  }
  for (int64_t k = 0; k + 1 < bpg; ++k) {
    const R* pb = partB[size_t(k)].data();
    const R* pc = partC[size_t(k)].data();
#pragma omp parallel for schedule(static) if (bc_size > (1 << 16))
    for (int64_t i = 0; i < bc_size; ++i) {
      dB[i] += pb[i];
      dC[i] += pc[i];
    }
  }
}

template void ssd_chunked_forward<float>(const SsdProblem<float>&, const float*, float*, float*);
template void ssd_chunked_forward<double>(const SsdProblem<double>&, const double*, double*, double*);
template void ssd_chunked_backward<float>(const SsdProblem<float>&, const float*, const float*,
                                          const float*, float*, float*, float*, float*, float*,
                                          float*, float*);
template void ssd_chunked_backward<double>(const SsdProblem<double>&, const double*, const double*,
                                           const double*, double*, double*, double*, double*,
                                           double*, double*, double*);

// ---- Tensor-level entry points (dispatch has checked shapes) -----------------------------------

namespace {
SsdProblem<float> ssd_problem(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                              const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                              int64_t chunk) {
  SsdProblem<float> p;
  p.Bsz = x.dim(0);
  p.T = x.dim(1);
  p.H = x.dim(2);
  p.P = x.dim(3);
  p.G = Bm.dim(2);
  p.N = Bm.dim(3);
  p.chunk = cpu_ssd_chunk(chunk);
  p.x = x.f32();
  p.dt = dt.f32();
  p.A = A.f32();
  p.Bm = Bm.f32();
  p.Cm = Cm.f32();
  p.D = D ? D->f32() : nullptr;
  p.seq_idx = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  return p;
}
}  // namespace

void ssd_chunked_with_documents(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                                const Tensor* D, const Tensor& seq_idx, int64_t chunk_size, Tensor* state, Tensor& y) {
  float* s = state ? state->f32() : nullptr;
  ssd_chunked_forward(ssd_problem(x, dt, A, Bm, Cm, D, &seq_idx, chunk_size), s, s, y.f32());
}

void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                          int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt,
                          Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                          Tensor* dinitial_state, Fp32Products /*always exact here*/) {
  ssd_chunked_backward(ssd_problem(x, dt, A, Bm, Cm, D, seq_idx, chunk_size),
                       initial_state ? initial_state->f32() : nullptr,
                       dfinal_state ? dfinal_state->f32() : nullptr, dy.f32(), dx.f32(), ddt.f32(),
                       dA ? dA->f32() : nullptr, dBm.f32(), dCm.f32(), dD ? dD->f32() : nullptr,
                       dinitial_state ? dinitial_state->f32() : nullptr);
}

}  // namespace mambalm::ops::cpu
