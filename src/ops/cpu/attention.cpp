// Attention-side ops on the CPU: rotary position embedding (rotate-half convention) and causal
// grouped-query attention over a KV sequence that may start with a cached prefix.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

// Angles are computed in double ((pos0 + t) * theta^(-2i/r) reaches ~1e5 rad at long context,
// where an fp32 angle would be off by ~1e-2 rad), then cos/sin are rounded to fp32 once into a
// [T, r/2] table shared by all batches and heads. The rotation itself is fp32.
void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), Dh = x.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || x.numel() == 0) return;
  std::vector<float> cos_t(static_cast<size_t>(T * half)), sin_t(static_cast<size_t>(T * half));
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rotary_dim));
    for (int64_t t = 0; t < T; ++t) {
      const double angle = static_cast<double>(pos0 + t) * inv_freq;
      cos_t[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(angle));
      sin_t[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(angle));
    }
  }
  float* xp = x.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * T * H * rotary_dim > (1 << 15))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const float* c = cos_t.data() + t * half;
      const float* s = sin_t.data() + t * half;
      for (int64_t h = 0; h < H; ++h) {
        float* v = xp + ((b * T + t) * H + h) * Dh;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], bb = v[i + half];
          v[i] = a * c[i] - bb * s[i];
          v[i + half] = bb * c[i] + a * s[i];
        }
      }
    }
  }
}

// Tasks are (batch, query head, block of queries). For a block of rows [i0, i1) the keys needed
// are 0 .. S-T+i1-1; scores for the block are one sgemm (Q_blk K^T, scaled), then a masked
// max-subtracted softmax per row in fp32, then one sgemm (P V) straight into `out`.
// The sgemms run inside the OpenMP region, single-threaded with the OpenMP flavour of OpenBLAS
// (see ssd.cpp). The block height is capped so a thread's score scratch stays around 4 MB at any S.
void attention(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  const int64_t group = Hq / Hkv;
  if (B == 0 || T == 0 || Hq == 0 || Dh == 0) return;
  const int64_t block = std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(S, 1), 1, 64);
  const int64_t qblocks = (T + block - 1) / block;
  const int64_t tasks = B * Hq * qblocks;
  const float* qp = q.f32();
  const float* kp = k.f32();
  const float* vp = v.f32();
  float* op = out.f32();
  const blasint ldq = static_cast<blasint>(Hq * Dh);
  const blasint ldk = static_cast<blasint>(Hkv * Dh);

#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(block * S));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / (Hq * qblocks);
      const int64_t h = (task / qblocks) % Hq;
      const int64_t kvh = h / group;
      const int64_t i0 = (task % qblocks) * block;
      const int64_t i1 = std::min(i0 + block, T);
      const int64_t rows = i1 - i0;
      const int64_t nk = S - T + i1;  // keys visible to the last row of the block
      const float* qblk = qp + ((b * T + i0) * Hq + h) * Dh;
      const float* kb = kp + (b * S * Hkv + kvh) * Dh;
      const float* vb = vp + (b * S * Hkv + kvh) * Dh;
      float* oblk = op + ((b * T + i0) * Hq + h) * Dh;
      float* sc = scores.data();

      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                  static_cast<blasint>(nk), static_cast<blasint>(Dh), scale, qblk, ldq, kb, ldk,
                  0.0f, sc, static_cast<blasint>(nk));

      for (int64_t r = 0; r < rows; ++r) {
        float* row = sc + r * nk;
        const int64_t visible = S - T + i0 + r + 1;  // keys 0 .. position
        float mx = row[0];
        for (int64_t j = 1; j < visible; ++j) mx = std::max(mx, row[j]);
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < visible; ++j) {
          const float e = exp_fast(row[j] - mx);
          row[j] = e;
          sum += e;
        }
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
        for (int64_t j = visible; j < nk; ++j) row[j] = 0.0f;
      }

      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                  static_cast<blasint>(Dh), static_cast<blasint>(nk), 1.0f, sc,
                  static_cast<blasint>(nk), vb, ldk, 0.0f, oblk, ldq);
    }
  }
}

}  // namespace mambalm::ops::cpu
