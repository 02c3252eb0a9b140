// Attention for training: the causal GQA forward with document masking (packed sequences) and
// the backward. Query row i sits at key position pos = S - T + i and sees key j iff j <= pos and
// (without seq_idx, or) seq_idx[b, j] == seq_idx[b, pos].
//
// Backward (P = softmax rows, dP = dO V^T, D_i = sum_j P_ij dP_ij = dO_i . O_i):
//   dS = P o (dP - D);  dQ = scale dS K;  dK = scale dS^T Q;  dV = P^T dO
// Nothing is saved by the forward; the scores are recomputed twice:
//   pass 1, tasks (batch, query head, block of 64 queries): full score rows -> softmax -> dQ,
//           and per row lse_i = max + log(sum exp) and D_i into a [B, Hq, T] scratch;
//   pass 2, tasks (batch, KV head, block of 64 keys): for each query head of the group and each
//           block of queries that can see the keys, P^T = exp(scale K Q^T - lse), then dV and dK.
// Every output element is written by one task in a fixed order: no atomics, deterministic.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/cpu_backward.h"
#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {
constexpr int64_t kBlock = 64;

inline bool visible(const int32_t* seq, int64_t j, int64_t pos) {
  return j <= pos && (!seq || seq[j] == seq[pos]);
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

// Masked softmax of one score row in place over keys 0..nk-1; returns lse.
float softmax_row(float* row, int64_t nk, const int32_t* seq, int64_t pos) {
  float mx = -INFINITY;
  for (int64_t j = 0; j < nk; ++j)
    if (visible(seq, j, pos)) mx = std::max(mx, row[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < nk; ++j) {
    const float e = visible(seq, j, pos) ? exp_fast(row[j] - mx) : 0.0f;
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < nk; ++j) row[j] *= inv;
  return mx + std::log(sum);
}
}  // namespace

void attention_packed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                      float scale, Tensor& out) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2), group = Hq / Hkv;
  if (B == 0 || T == 0 || Hq == 0 || Dh == 0) return;
  const int64_t qblocks = (T + kBlock - 1) / kBlock;
  const int64_t ldq = Hq * Dh, ldk = Hkv * Dh;
#pragma omp parallel
  {
    std::vector<float> sc(size_t(kBlock * S));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * Hq * qblocks; ++task) {
      const int64_t b = task / (Hq * qblocks), h = (task / qblocks) % Hq, kvh = h / group;
      const int64_t i0 = (task % qblocks) * kBlock, i1 = std::min(i0 + kBlock, T), rows = i1 - i0;
      const int64_t nk = S - T + i1;
      const int32_t* seq = seq_idx ? seq_idx->data<int32_t>() + b * S : nullptr;
      const float* qb = q.f32() + ((b * T + i0) * Hq + h) * Dh;
      const float* kb = k.f32() + (b * S * Hkv + kvh) * Dh;
      const float* vb = v.f32() + (b * S * Hkv + kvh) * Dh;
      sgemm(false, true, rows, nk, Dh, scale, qb, ldq, kb, ldk, 0.0f, sc.data(), nk);
      for (int64_t r = 0; r < rows; ++r) softmax_row(sc.data() + r * nk, nk, seq, S - T + i0 + r);
      sgemm(false, false, rows, Dh, nk, 1.0f, sc.data(), nk, vb, ldk, 0.0f,
            out.f32() + ((b * T + i0) * Hq + h) * Dh, ldq);
    }
  }
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2), group = Hq / Hkv;
  dk.fill(0.0f);
  dv.fill(0.0f);
  if (B == 0 || T == 0 || Hq == 0 || Dh == 0) return;
  const int64_t qblocks = (T + kBlock - 1) / kBlock;
  const int64_t kblocks = (S + kBlock - 1) / kBlock;
  const int64_t ldq = Hq * Dh, ldk = Hkv * Dh;
  const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32(), *gp = dout.f32();
  const int32_t* seq_all = seq_idx ? seq_idx->data<int32_t>() : nullptr;
  std::vector<float> lse(size_t(B * Hq * T)), Drow(size_t(B * Hq * T));

#pragma omp parallel
  {
    std::vector<float> sc(size_t(kBlock * S)), dp(size_t(kBlock * S));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * Hq * qblocks; ++task) {
      const int64_t b = task / (Hq * qblocks), h = (task / qblocks) % Hq, kvh = h / group;
      const int64_t i0 = (task % qblocks) * kBlock, i1 = std::min(i0 + kBlock, T), rows = i1 - i0;
      const int64_t nk = S - T + i1;
      const int32_t* seq = seq_all ? seq_all + b * S : nullptr;
      const float* qb = qp + ((b * T + i0) * Hq + h) * Dh;
      const float* gb = gp + ((b * T + i0) * Hq + h) * Dh;
      const float* kb = kp + (b * S * Hkv + kvh) * Dh;
      const float* vb = vp + (b * S * Hkv + kvh) * Dh;
      sgemm(false, true, rows, nk, Dh, scale, qb, ldq, kb, ldk, 0.0f, sc.data(), nk);
      sgemm(false, true, rows, nk, Dh, 1.0f, gb, ldq, vb, ldk, 0.0f, dp.data(), nk);
      for (int64_t r = 0; r < rows; ++r) {
        float* pr = sc.data() + r * nk;
        float* dr = dp.data() + r * nk;
        const float l = softmax_row(pr, nk, seq, S - T + i0 + r);
        double d = 0.0;
        for (int64_t j = 0; j < nk; ++j) d += static_cast<double>(pr[j]) * dr[j];
        const float df = static_cast<float>(d);
        for (int64_t j = 0; j < nk; ++j) dr[j] = pr[j] * (dr[j] - df);
        lse[size_t((b * Hq + h) * T + i0 + r)] = l;
        Drow[size_t((b * Hq + h) * T + i0 + r)] = df;
      }
      sgemm(false, false, rows, Dh, nk, scale, dp.data(), nk, kb, ldk, 0.0f,
            dq.f32() + ((b * T + i0) * Hq + h) * Dh, ldq);
    }

    // Pass 2: dK, dV per key block (needs every lse/D of pass 1: the implicit barrier above).
    std::vector<float> pt(size_t(kBlock * kBlock)), dpt(size_t(kBlock * kBlock));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * Hkv * kblocks; ++task) {
      const int64_t b = task / (Hkv * kblocks), kvh = (task / kblocks) % Hkv;
      const int64_t j0 = (task % kblocks) * kBlock, j1 = std::min(j0 + kBlock, S), nkb = j1 - j0;
      const int32_t* seq = seq_all ? seq_all + b * S : nullptr;
      const float* kb = kp + ((b * S + j0) * Hkv + kvh) * Dh;
      const float* vb = vp + ((b * S + j0) * Hkv + kvh) * Dh;
      float* dkb = dk.f32() + ((b * S + j0) * Hkv + kvh) * Dh;
      float* dvb = dv.f32() + ((b * S + j0) * Hkv + kvh) * Dh;
      const int64_t i_first = std::max<int64_t>(0, j0 - (S - T));  // first query that sees j0
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int64_t ia = i_first; ia < T; ia += kBlock) {
          const int64_t ib = std::min(ia + kBlock, T), rows = ib - ia;
          const float* qb = qp + ((b * T + ia) * Hq + h) * Dh;
          const float* gb = gp + ((b * T + ia) * Hq + h) * Dh;
          sgemm(false, true, nkb, rows, Dh, scale, kb, ldk, qb, ldq, 0.0f, pt.data(), rows);
          sgemm(false, true, nkb, rows, Dh, 1.0f, vb, ldk, gb, ldq, 0.0f, dpt.data(), rows);
          const float* l = lse.data() + (b * Hq + h) * T + ia;
          const float* dd = Drow.data() + (b * Hq + h) * T + ia;
          for (int64_t jj = 0; jj < nkb; ++jj) {
            float* prow = pt.data() + jj * rows;
            float* drow = dpt.data() + jj * rows;
            for (int64_t r = 0; r < rows; ++r) {
              const float p = visible(seq, j0 + jj, S - T + ia + r) ? exp_fast(prow[r] - l[r]) : 0.0f;
              prow[r] = p;
              drow[r] = p * (drow[r] - dd[r]);
            }
          }
          sgemm(false, false, nkb, Dh, rows, 1.0f, pt.data(), rows, gb, ldq, 1.0f, dvb, ldk);
          sgemm(false, false, nkb, Dh, rows, scale, dpt.data(), rows, qb, ldq, 1.0f, dkb, ldk);
        }
      }
    }
  }
}

}  // namespace mambalm::ops::cpu
