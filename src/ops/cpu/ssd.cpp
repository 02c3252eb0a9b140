// Mamba-2's state-space dual (SSD) on the CPU: dt preprocessing (softplus_dt), the per-token
// recurrence (ssd_sequential, the reference and the decode path) and the chunked algorithm
// (ssd_chunked, the prefill path) that turns most of the work into gemms.
//
// Shapes (see ops.h): x [B, T, H, P], dt [B, T, H], A [H], Bm/Cm [B, T, G, N], D [H],
// state [B, H, P, N], y [B, T, H, P]. Head h reads group g = h / (H / G).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/blas_core.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/onednn_gemm.h"
#include "ops/cpu/scan_kernels.h"

namespace mambalm::ops::cpu {

namespace {

// out[i] = x[i] rounded to bf16 (to nearest even), i < n.
void round_to_bf16(const float* x, int64_t n, uint16_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

}  // namespace

// One (batch, head) pair per task; the state S[P, N] lives in a local buffer (16-64 KB, stays
// in L1/L2) for the whole sequence. The inner loop over N is unit-stride and vectorises.
void ssd_sequential(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, Tensor* state, Tensor& y) {
  const int64_t Bsz = x.dim(0), T = x.dim(1), H = x.dim(2), P = x.dim(3);
  const int64_t G = Bm.dim(2), N = Bm.dim(3);
  const int64_t heads_per_group = H / G;
  const float* xp = x.f32();
  const float* dtp = dt.f32();
  const float* Ap = A.f32();
  const float* Bp = Bm.f32();
  const float* Cp = Cm.f32();
  const float* Dp = D ? D->f32() : nullptr;
  float* sp = state ? state->f32() : nullptr;
  float* yp = y.f32();

  // A given state is updated in place (a decode step reads and writes each element once, no
  // copies); without one each thread scans from zeros in a buffer of its own.
#pragma omp parallel if (Bsz * H * T * P * N > kParallelMin)
  {
    std::vector<float> S(sp ? 0 : static_cast<size_t>(P * N));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < Bsz; ++b) {
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / heads_per_group;
        float* Sh = sp ? sp + (b * H + h) * P * N : S.data();
        if (!sp) std::fill(S.begin(), S.end(), 0.0f);
        const float Ah = Ap[h];
        const float Dh = Dp ? Dp[h] : 0.0f;
        for (int64_t t = 0; t < T; ++t) {
          const float dtv = dtp[(b * T + t) * H + h];
          const float decay = std::exp(dtv * Ah);
          const float* xr = xp + ((b * T + t) * H + h) * P;
          const float* Bt = Bp + ((b * T + t) * G + g) * N;
          const float* Ct = Cp + ((b * T + t) * G + g) * N;
          float* yr = yp + ((b * T + t) * H + h) * P;
          for (int64_t p = 0; p < P; ++p) {
            float* Sp = Sh + p * N;
            const float coef = dtv * xr[p];
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t n = 0; n < N; ++n) {
              float s = decay * Sp[n] + coef * Bt[n];
              Sp[n] = s;
              acc += s * Ct[n];
            }
            yr[p] = acc + Dh * xr[p];
          }
        }
      }
    }
  }
}

// Chunked SSD. For a chunk of length L (the last may be shorter) and one head, with
// cum_i = sum_{k<=i} dt_k A (local to the chunk) and S_prev the state entering the chunk:
//   y_i  = sum_{j<=i} exp(cum_i - cum_j) (C_i . B_j) dt_j x_j      (intra-chunk, "attention")
//        + exp(cum_i) C_i S_prev^T                                 (state contribution)
//        + D x_i                                                   (folded into M's diagonal)
//   S    = exp(cum_{L-1}) S_prev + sum_j exp(cum_{L-1} - cum_j) dt_j x_j B_j^T
// Matrix parts are sgemms that read x/B/C and write y in place through leading dimensions.
//
// Work split: one task per (batch, group, block of heads in the group). C B^T depends only on
// the group, so a task computes it once per chunk and reuses it for each of its heads, and the
// state terms (C_c S_prev^T and Xw^T B_c) are one sgemm over all its heads at once, their
// states stacked as the rows of one matrix (per head they were two small products); heads are
// split into blocks only as far as needed to give every thread a task. Chunks run in order
// inside a task (the state is carried), so the live memory is a few chunk-sized scratch
// matrices per thread plus the task's states, independent of T.
//
// BLAS calls here run inside our OpenMP region. The OpenMP flavour of OpenBLAS (which CMake
// links) then runs them on the calling thread; the pthread flavour would spawn its own threads
// per call and oversubscribe (measured: 10x slower at 16 threads). Keep the OpenMP flavour.
//
// Speed (B=1, T=2048, H=8, P=64, G=1, N=64, 16-core x86 host, min of 5): sequential 18.8 ms on
// 1 thread / 2.3 ms on 16; chunked(64) 8.4 / 1.7 ms, chunked(128) 17.8 / 2.4 ms. The intra-chunk
// term costs ~T*Q*P flops, so on a CPU a chunk near 32-64 is fastest: longer chunks of a config
// run as cpu_ssd_chunk's 64 (scan_kernels.h).
//
// Precision: cumulative sums are kept in double (they grow like L * |dt A| and the decays are
// exp of their differences, which would otherwise lose absolute precision); everything else is
// fp32 with fp32 gemm accumulation. With `Fp32Products::Tf32` (inference with bf16 or 8-bit
// weights) on a CPU with AVX512-BF16 and oneDNN, the three products C B^T, C S_prev^T and
// Xw^T B take bf16 operands with fp32 accumulation, as the GPU's bf16 path and mamba_ssm's
// kernels do: oneDNN's bf16 GEMM runs them at about twice sgemm's rate at these sizes
// (bench/NOTES.md). The decays, the intra-chunk product M x, the sums and the state stay fp32.
void ssd_chunked(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                 const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size, Tensor* state, Tensor& y,
                 Fp32Products products) {
  if (seq_idx) return ssd_chunked_with_documents(x, dt, A, Bm, Cm, D, *seq_idx, chunk_size, state, y);
  const int64_t Bsz = x.dim(0), T = x.dim(1), H = x.dim(2), P = x.dim(3);
  const int64_t G = Bm.dim(2), N = Bm.dim(3);
  const int64_t hpg = H / G;  // heads per group
  const int64_t Q = std::min<int64_t>(cpu_ssd_chunk(chunk_size), std::max<int64_t>(T, 1));
  const float* xp = x.f32();
  const float* dtp = dt.f32();
  const float* Ap = A.f32();
  const float* Bp = Bm.f32();
  const float* Cp = Cm.f32();
  const float* Dp = D ? D->f32() : nullptr;
  float* sp = state ? state->f32() : nullptr;
  float* yp = y.f32();
  if (Bsz == 0 || H == 0 || P == 0) return;

  const int64_t threads = omp_get_max_threads();
  const int64_t blocks_per_group =
      std::clamp<int64_t>((threads + Bsz * G - 1) / (Bsz * G), 1, hpg);
  const int64_t hb = (hpg + blocks_per_group - 1) / blocks_per_group;  // heads per task
  const int64_t tasks = Bsz * G * blocks_per_group;
  const blasint ldx = static_cast<blasint>(H * P);  // row stride of x and y for one head
  const blasint ldbc = static_cast<blasint>(G * N);  // row stride of B and C for one group
  const bool bf16 = products == Fp32Products::Tf32 && onednn_bf16_prefill();
  // oneDNN's calls run inside the parallel region: a failure is kept here and thrown after it.
  std::atomic<int> onednn_status{0};
  auto gemm_bf16 = [&](char ta, char tb, int64_t M, int64_t Nc, int64_t K, const uint16_t* a, int64_t lda,
                       const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    const int status = onednn_bf16_gemm_status(ta, tb, M, Nc, K, a, lda, b, ldb, beta, c, ldc);
    if (status != 0) onednn_status.store(status);
  };

#pragma omp parallel
  {
    const int64_t W = hb * P;                            // the block's heads side by side
    std::vector<float> CB(static_cast<size_t>(Q * Q));   // C_c B_c^T                      [L, L]
    std::vector<float> M(static_cast<size_t>(Q * Q));    // decayed, dt-weighted           [L, L]
    std::vector<float> CS(static_cast<size_t>(Q * W));   // C_c S_prev^T, every head        [L, nh*P]
    std::vector<float> Xw(bf16 ? 0 : Q * W);             // decay_j dt_j x_j, every head    [L, nh*P]
    std::vector<double> cum(static_cast<size_t>(Q));     // the current head's              [L]
    std::vector<float> S(static_cast<size_t>(W * N));    // the block's states              [nh*P, N]
    // bf16 operands (bf16 products only): C_c, B_c, the states, Xw
    std::vector<uint16_t> Cb(bf16 ? Q * N : 0), Bb(bf16 ? Q * N : 0);  // [L, N]
    std::vector<uint16_t> Sb(bf16 ? W * N : 0);                         // [nh*P, N]
    std::vector<uint16_t> Xwb(bf16 ? Q * W : 0);                        // [L, nh*P]

#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / (G * blocks_per_group);
      const int64_t g = (task / blocks_per_group) % G;
      const int64_t h_begin = g * hpg + (task % blocks_per_group) * hb;
      const int64_t h_end = std::min(h_begin + hb, (g + 1) * hpg);
      if (h_begin >= h_end) continue;
      const int64_t nh = h_end - h_begin;
      const blasint Wb = static_cast<blasint>(nh * P);

      if (sp) {
        std::memcpy(S.data(), sp + (b * H + h_begin) * P * N, static_cast<size_t>(nh * P * N) * sizeof(float));
      } else {
        std::fill(S.begin(), S.begin() + nh * P * N, 0.0f);
      }
      // A prefill from the start passes a zero state: its first chunk needs no C_c S_prev^T.
      bool S_nonzero = sp != nullptr && std::any_of(S.begin(), S.begin() + nh * P * N, [](float v) { return v != 0.0f; });

      for (int64_t c0 = 0; c0 < T; c0 += Q) {
        const int64_t L = std::min(Q, T - c0);
        const blasint Lb = static_cast<blasint>(L);
        const float* Bc = Bp + ((b * T + c0) * G + g) * N;
        const float* Cc = Cp + ((b * T + c0) * G + g) * N;
        const float* dtc = dtp + (b * T + c0) * H;              // [L, H], row stride H
        const float* xc = xp + ((b * T + c0) * H + h_begin) * P;  // [L, nh*P], row stride H*P
        float* yc = yp + ((b * T + c0) * H + h_begin) * P;
        if (bf16) {
          for (int64_t i = 0; i < L; ++i) {
            round_to_bf16(Cc + i * ldbc, N, Cb.data() + i * N);
            round_to_bf16(Bc + i * ldbc, N, Bb.data() + i * N);
          }
          gemm_bf16('N', 'T', L, L, N, Cb.data(), N, Bb.data(), N, 0.0f, CB.data(), L);
        } else {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Lb, Lb, static_cast<blasint>(N), 1.0f,
                      Cc, ldbc, Bc, ldbc, 0.0f, CB.data(), Lb);
        }
        // C_c S_prev^T for every head of the block in one product (the heads' states are rows of
        // S): one sgemm of [L, N] x [N, nh*P] instead of one small one per head.
        if (S_nonzero && bf16) {
          round_to_bf16(S.data(), nh * P * N, Sb.data());
          gemm_bf16('N', 'T', L, nh * P, N, Cb.data(), N, Sb.data(), N, 0.0f, CS.data(), nh * P);
        } else if (S_nonzero) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Lb, Wb, static_cast<blasint>(N), 1.0f, Cc, ldbc,
                      S.data(), static_cast<blasint>(N), 0.0f, CS.data(), Wb);
        }

        for (int64_t hh = 0; hh < nh; ++hh) {
          const int64_t h = h_begin + hh;
          double* cumh = cum.data();
          const double Ah = Ap[h];
          double run = 0.0;
          for (int64_t i = 0; i < L; ++i) {
            run += static_cast<double>(dtc[i * H + h]) * Ah;
            cumh[i] = run;
          }

          // M[i, j] = (C_i . B_j) exp(cum_i - cum_j) dt_j for j <= i (lower triangle only; the
          // upper one is never read). The skip term D x_i is folded into the diagonal.
          const float Dh = Dp ? Dp[h] : 0.0f;
          for (int64_t i = 0; i < L; ++i) {
            const double ci = cumh[i];
            float* Mi = M.data() + i * L;
            const float* CBi = CB.data() + i * L;
#pragma omp simd
            for (int64_t j = 0; j <= i; ++j)
              Mi[j] = CBi[j] * exp_fast(static_cast<float>(ci - cumh[j])) * dtc[j * H + h];
            Mi[i] += Dh;
          }
          // y_c = M x_c as a triangular product (half the flops of a gemm): copy x_c into the
          // y_c rows, then strmm overwrites them in place.
          float* yh = yc + hh * P;
          for (int64_t i = 0; i < L; ++i)
            std::memcpy(yh + i * H * P, xc + i * H * P + hh * P, static_cast<size_t>(P) * sizeof(float));
          cblas_strmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, Lb,
                      static_cast<blasint>(P), 1.0f, M.data(), Lb, yh, ldx);

          // y_c += diag(exp(cum)) C_c S_prev^T
          if (S_nonzero) {
            for (int64_t i = 0; i < L; ++i) {
              const float e = exp_fast(static_cast<float>(cumh[i]));
              const float* CSi = CS.data() + i * nh * P + hh * P;
              float* yi = yh + i * H * P;
#pragma omp simd
              for (int64_t p = 0; p < P; ++p) yi[p] += e * CSi[p];
            }
          }

          // This head's state decays over the chunk, and its rows of Xw are
          // Xw[j, :] = exp(cum_last - cum_j) dt_j x_j.
          const double last = cumh[L - 1];
          float* Sh = S.data() + hh * P * N;
          const float decay = exp_fast(static_cast<float>(last));
#pragma omp simd
          for (int64_t i = 0; i < P * N; ++i) Sh[i] *= decay;
          for (int64_t j = 0; j < L; ++j) {
            const float wj = exp_fast(static_cast<float>(last - cumh[j])) * dtc[j * H + h];
            const float* xj = xc + j * H * P + hh * P;
            if (bf16) {
              uint16_t* Xj = Xwb.data() + j * nh * P + hh * P;
#pragma omp simd
              for (int64_t p = 0; p < P; ++p) Xj[p] = f32_to_bf16(wj * xj[p]);
              continue;
            }
            float* Xj = Xw.data() + j * nh * P + hh * P;
#pragma omp simd
            for (int64_t p = 0; p < P; ++p) Xj[p] = wj * xj[p];
          }
        }
        // S += Xw^T B_c for every head in one product: [nh*P, L] x [L, N].
        if (bf16)
          gemm_bf16('T', 'N', nh * P, N, L, Xwb.data(), nh * P, Bb.data(), N, 1.0f, S.data(), N);
        else
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Wb, static_cast<blasint>(N), Lb, 1.0f, Xw.data(), Wb,
                      Bc, ldbc, 1.0f, S.data(), static_cast<blasint>(N));
        S_nonzero = true;
      }

      if (sp) std::memcpy(sp + (b * H + h_begin) * P * N, S.data(), static_cast<size_t>(nh * P * N) * sizeof(float));
    }
  }
  if (onednn_status.load() != 0)
    fail("op ssd_chunked", "oneDNN's bf16 GEMM returned status " + std::to_string(onednn_status.load()));
}

}  // namespace mambalm::ops::cpu
