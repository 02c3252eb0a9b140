// Mamba-1 selective scan: the forward with document resets (selective_scan routes here when
// given document ids) and the chunked backward,
// templated over the scalar type (float for the ops, double for finite-difference tests).
//
//   h_t = a_t h_{t-1} + delta_t u_t B_t,  a_t = exp(delta_t A)   (h_{t-1} := 0 at a document start)
//   p_t = h_t . C_t + D u_t;   y_t = p_t silu(z_t)  (or y_t = p_t without z)
//
// Backward, walking t downwards with dh = dLoss/dh_t (from later steps):
//   dp = dy silu(z);  dz = dy p silu'(z);  dh += dp C_t;  dC_t += dp h_t;  dD += dp u
//   dB_t += dh delta u;  du = D dp + sum_n dh delta B;  ddelta = sum_n dh (u B + A a h_{t-1})
//   dA += dh delta a h_{t-1};  dh <- a dh  (0 at a document start)
//
// Memory: the states entering each chunk are stored (nchunks x Di x N per batch row); inside a
// chunk the L states are recomputed from the chunk's entering state into an L x block x N
// buffer, so the live memory is O(chunk * Di * N), not O(T * Di * N).
//
// Work split: one task per block of 16 channels (all batch rows inside, so dA and dD are owned
// by the task). dB and dC sum over channels: each thread accumulates into its own [B, T, N]
// partial and the partials are added in thread order afterwards (static schedule: the same
// thread count gives bit-identical results).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu/blas_t.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/scan_kernels.h"

namespace mambalm::ops::cpu {

namespace {
constexpr int64_t kBlock = 16;

inline bool is_reset(const int32_t* seq, int64_t t) { return seq && t > 0 && seq[t] != seq[t - 1]; }

// One step for channels [d0, d0+nd) at time t: h (nd x N) in place.
template <class R>
inline void scan_step(const ScanProblem<R>& p, int64_t b, int64_t t, int64_t d0, int64_t nd,
                      bool reset, R* h) {
  const int64_t T = p.T, Di = p.Di, N = p.N;
  const int64_t row = (b * T + t) * Di + d0;
  const R* Bt = p.Bm + (b * T + t) * N;
  for (int64_t dd = 0; dd < nd; ++dd) {
    const R dl = p.delta[row + dd];
    const R du = dl * p.u[row + dd];
    const R* Ad = p.A + (d0 + dd) * N;
    R* hd = h + dd * N;
    for (int64_t n = 0; n < N; ++n) {
      const R prev = reset ? R(0) : hd[n];
      hd[n] = exp_r<R>(dl * Ad[n]) * prev + du * Bt[n];
    }
  }
}
}  // namespace

template <class R>
void selective_scan_forward(const ScanProblem<R>& p, const R* state_in, R* state_out, R* y, R* chunk_states) {
  const int64_t Bsz = p.Bsz, T = p.T, Di = p.Di, N = p.N;
  const int64_t blocks = (Di + kBlock - 1) / kBlock;
  const int64_t Q = std::max<int64_t>(p.chunk, 1), nc = (T + Q - 1) / Q;
#pragma omp parallel
  {
    std::vector<R> h(size_t(kBlock * N));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < Bsz; ++b) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t d0 = blk * kBlock, nd = std::min(kBlock, Di - d0);
        const int32_t* seq = p.seq_idx ? p.seq_idx + b * T : nullptr;
        if (state_in) {
          std::copy(state_in + (b * Di + d0) * N, state_in + (b * Di + d0 + nd) * N, h.begin());
        } else {
          std::fill(h.begin(), h.end(), R(0));
        }
        for (int64_t t = 0; t < T; ++t) {
          if (chunk_states && t % Q == 0)  // the state entering step t, before a reset there
            std::copy(h.begin(), h.begin() + nd * N, chunk_states + ((b * nc + t / Q) * Di + d0) * N);
          scan_step(p, b, t, d0, nd, is_reset(seq, t), h.data());
          const int64_t row = (b * T + t) * Di + d0;
          const R* Ct = p.Cm + (b * T + t) * N;
          for (int64_t dd = 0; dd < nd; ++dd) {
            R acc = R(0);
            for (int64_t n = 0; n < N; ++n) acc += h[size_t(dd * N + n)] * Ct[n];
            R out = acc + (p.D ? p.D[d0 + dd] * p.u[row + dd] : R(0));
            if (p.z) {
              const R zv = p.z[row + dd];
              out *= zv / (R(1) + exp_r<R>(-zv));
            }
            y[row + dd] = out;
          }
        }
        if (state_out) std::copy(h.begin(), h.begin() + nd * N, state_out + (b * Di + d0) * N);
      }
    }
  }
}

template <class R>
void selective_scan_backward(const ScanProblem<R>& p, const R* state_in, const R* dstate_out,
                             const R* dy, R* du, R* ddelta, R* dA, R* dB, R* dC, R* dD, R* dz,
                             R* dstate_in) {
  const int64_t Bsz = p.Bsz, T = p.T, Di = p.Di, N = p.N;
  const int64_t blocks = (Di + kBlock - 1) / kBlock;
  // With the forward's chunk states the chunk is theirs (and must not be clamped to T: their
  // layout counts ceil(T / chunk) chunks either way).
  const int64_t Q = p.chunk_states ? std::max<int64_t>(p.chunk, 1)
                                   : std::min<int64_t>(std::max<int64_t>(p.chunk, 1), std::max<int64_t>(T, 1));
  const int64_t nc = (T + Q - 1) / Q;
  const int64_t bt_size = Bsz * T * N;
  const int threads = omp_get_max_threads();
  std::vector<std::vector<R>> partB(static_cast<size_t>(threads)), partC(static_cast<size_t>(threads));

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    std::vector<R>& pB = partB[size_t(tid)];
    std::vector<R>& pC = partC[size_t(tid)];
    pB.assign(size_t(bt_size), R(0));
    pC.assign(size_t(bt_size), R(0));
    std::vector<R> hb(size_t(nc * kBlock * N)), hs(size_t(Q * kBlock * N)), dh(size_t(kBlock * N));
    std::vector<double> dA_loc(size_t(kBlock * N)), dD_loc(static_cast<size_t>(kBlock));

#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t d0 = blk * kBlock, nd = std::min(kBlock, Di - d0);
      std::fill(dA_loc.begin(), dA_loc.end(), 0.0);
      std::fill(dD_loc.begin(), dD_loc.end(), 0.0);
      for (int64_t b = 0; b < Bsz; ++b) {
        const int32_t* seq = p.seq_idx ? p.seq_idx + b * T : nullptr;
        // Phase 1: states entering each chunk (the forward's, when it kept them).
        R* h = hs.data();
        if (p.chunk_states) {
          for (int64_t c = 0; c < nc; ++c) {
            const R* src = p.chunk_states + ((b * nc + c) * Di + d0) * N;
            std::copy(src, src + nd * N, hb.begin() + c * kBlock * N);
          }
        } else if (state_in) {
          std::copy(state_in + (b * Di + d0) * N, state_in + (b * Di + d0 + nd) * N, h);
        } else {
          std::fill(h, h + nd * N, R(0));
        }
        for (int64_t c = 0; c < nc && !p.chunk_states; ++c) {
          std::copy(h, h + nd * N, hb.begin() + c * kBlock * N);
          if (c + 1 == nc) break;
          for (int64_t t = c * Q; t < (c + 1) * Q; ++t) scan_step(p, b, t, d0, nd, is_reset(seq, t), h);
        }
        // Phase 2: chunks in reverse.
        if (dstate_out) {
          std::copy(dstate_out + (b * Di + d0) * N, dstate_out + (b * Di + d0 + nd) * N, dh.begin());
        } else {
          std::fill(dh.begin(), dh.end(), R(0));
        }
        for (int64_t c = nc - 1; c >= 0; --c) {
          const int64_t c0 = c * Q, L = std::min(Q, T - c0);
          const R* hentry = hb.data() + c * kBlock * N;
          for (int64_t i = 0; i < L; ++i) {  // hs[i] = state after step c0 + i
            R* hi = hs.data() + i * kBlock * N;
            std::copy(i == 0 ? hentry : hi - kBlock * N, (i == 0 ? hentry : hi - kBlock * N) + nd * N, hi);
            scan_step(p, b, c0 + i, d0, nd, is_reset(seq, c0 + i), hi);
          }
          for (int64_t i = L - 1; i >= 0; --i) {
            const int64_t t = c0 + i;
            const bool reset = is_reset(seq, t);
            const R* hcur = hs.data() + i * kBlock * N;
            const R* hprev = i > 0 ? hcur - kBlock * N : hentry;
            const int64_t row = (b * T + t) * Di + d0;
            const R* Bt = p.Bm + (b * T + t) * N;
            const R* Ct = p.Cm + (b * T + t) * N;
            R* pBt = pB.data() + (b * T + t) * N;
            R* pCt = pC.data() + (b * T + t) * N;
            for (int64_t dd = 0; dd < nd; ++dd) {
              const R uv = p.u[row + dd], dl = p.delta[row + dd];
              const R Dd = p.D ? p.D[d0 + dd] : R(0);
              const R* hc = hcur + dd * N;
              const R* hp = hprev + dd * N;
              R dyp = dy[row + dd];
              if (p.z) {
                R pre = Dd * uv;
                for (int64_t n = 0; n < N; ++n) pre += hc[n] * Ct[n];
                const R zv = p.z[row + dd];
                const R sg = R(1) / (R(1) + exp_r<R>(-zv));
                dz[row + dd] = dyp * pre * sg * (R(1) + zv * (R(1) - sg));
                dyp = dyp * zv * sg;
              }
              dD_loc[size_t(dd)] += static_cast<double>(dyp) * uv;
              const R* Ad = p.A + (d0 + dd) * N;
              R* dhd = dh.data() + dd * N;
              double* dAd = dA_loc.data() + dd * N;
              const R dlu = dl * uv;
              R du_acc = Dd * dyp, ddl_acc = R(0);
              for (int64_t n = 0; n < N; ++n) {
                const R a = exp_r<R>(dl * Ad[n]);
                const R hpn = reset ? R(0) : hp[n];
                const R g = dhd[n] + dyp * Ct[n];
                pCt[n] += dyp * hc[n];
                pBt[n] += g * dlu;
                du_acc += g * dl * Bt[n];
                ddl_acc += g * (uv * Bt[n] + Ad[n] * a * hpn);
                dAd[n] += static_cast<double>(g * dl * a * hpn);
                dhd[n] = reset ? R(0) : a * g;
              }
              du[row + dd] = du_acc;
              ddelta[row + dd] = ddl_acc;
            }
          }
        }
        if (dstate_in) std::copy(dh.begin(), dh.begin() + nd * N, dstate_in + (b * Di + d0) * N);
      }
      if (dA)
        for (int64_t k = 0; k < nd * N; ++k) dA[d0 * N + k] += static_cast<R>(dA_loc[size_t(k)]);
      if (dD)
        for (int64_t dd = 0; dd < nd; ++dd) dD[d0 + dd] += static_cast<R>(dD_loc[size_t(dd)]);
    }
  }
  std::fill(dB, dB + bt_size, R(0));
  std::fill(dC, dC + bt_size, R(0));
  for (int k = 0; k < threads; ++k) {
    const R* pb = partB[size_t(k)].data();
    const R* pc = partC[size_t(k)].data();
    if (partB[size_t(k)].empty()) continue;
#pragma omp parallel for schedule(static) if (bt_size > (1 << 16))
    for (int64_t i = 0; i < bt_size; ++i) {
      dB[i] += pb[i];
      dC[i] += pc[i];
    }
  }
}

template void selective_scan_forward<float>(const ScanProblem<float>&, const float*, float*, float*, float*);
template void selective_scan_forward<double>(const ScanProblem<double>&, const double*, double*, double*,
                                             double*);
template void selective_scan_backward<float>(const ScanProblem<float>&, const float*, const float*,
                                             const float*, float*, float*, float*, float*, float*,
                                             float*, float*, float*);
template void selective_scan_backward<double>(const ScanProblem<double>&, const double*,
                                              const double*, const double*, double*, double*,
                                              double*, double*, double*, double*, double*, double*);

// ---- Tensor-level entry points ---------------------------------------------------------------

namespace {
ScanProblem<float> scan_problem(const Tensor& u, const Tensor& delta, const Tensor& A,
                                const Tensor& Bm, const Tensor& Cm, const Tensor* D,
                                const Tensor* z, const Tensor* seq_idx, int64_t chunk) {
  ScanProblem<float> p;
  p.Bsz = u.dim(0);
  p.T = u.dim(1);
  p.Di = u.dim(2);
  p.N = A.dim(1);
  p.chunk = chunk;
  p.u = u.f32();
  p.delta = delta.f32();
  p.A = A.f32();
  p.Bm = Bm.f32();
  p.Cm = Cm.f32();
  p.D = D ? D->f32() : nullptr;
  p.z = z ? z->f32() : nullptr;
  p.seq_idx = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  return p;
}
}  // namespace

void selective_scan_with_documents(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                   const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx,
                                   Tensor* state, Tensor& y, Tensor* chunk_states) {
  float* s = state ? state->f32() : nullptr;
  selective_scan_forward(scan_problem(u, delta, A, Bm, Cm, D, z, seq_idx, kScanStateChunk), s, s, y.f32(),
                         chunk_states ? chunk_states->f32() : nullptr);
}

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A,
                             const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                             const Tensor* seq_idx, const Tensor* initial_state,
                             const Tensor* dfinal_state, int64_t chunk_size, const Tensor& dy,
                             Tensor& du, Tensor& ddelta, Tensor* dA, Tensor& dBm, Tensor& dCm,
                             Tensor* dD, Tensor* dz, Tensor* dinitial_state, const Tensor* chunk_states,
                             Tensor* ddelta_bias) {
  ScanProblem<float> p = scan_problem(u, delta, A, Bm, Cm, D, z, seq_idx, chunk_states ? kScanStateChunk : chunk_size);
  p.chunk_states = chunk_states ? chunk_states->f32() : nullptr;
  selective_scan_backward(p,
                          initial_state ? initial_state->f32() : nullptr,
                          dfinal_state ? dfinal_state->f32() : nullptr, dy.f32(), du.f32(),
                          ddelta.f32(), dA ? dA->f32() : nullptr, dBm.f32(), dCm.f32(),
                          dD ? dD->f32() : nullptr, dz ? dz->f32() : nullptr,
                          dinitial_state ? dinitial_state->f32() : nullptr);
  if (ddelta_bias) {  // delta = softplus(raw + bias): d/draw = 1 - exp(-delta), then the bias's sums
    const int64_t n = ddelta.numel(), Di = u.dim(2);
    const float* dl = delta.f32();
    float* g = ddelta.f32();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) g[i] *= -std::expm1(-dl[i]);
    if (Di > 0) add_column_sums(g, n / Di, Di, ddelta_bias->f32());
  }
}

}  // namespace mambalm::ops::cpu
