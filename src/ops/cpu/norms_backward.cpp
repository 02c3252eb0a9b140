// Backward of the norms on the CPU. Row statistics are recomputed from x exactly as the forward
// does (double sums), so no statistics need saving. With xhat the normalised row and r the
// inverse RMS / standard deviation:
//   RMSNorm:   dx = r (dxhat - xhat mean(dxhat xhat)),                dxhat = dy w
//   LayerNorm: dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dxhat = dy (w [+1])
//   gated:     the RMSNorm formula per group on g = x silu(z), then dx = dg silu(z),
//              dz = dg x silu'(z)
// Parameter gradients (dw, db) are column sums over rows: rows are split into a fixed number of
// blocks, each with its own double partial, added in block order (deterministic, no atomics).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {

constexpr int64_t kRowBlocks = 32;
constexpr int64_t kParallelMinElems = 1 << 14;

// Runs body(row, pw, pb) for every row, where pw/pb are the [D] double partials of the row's
// block, then adds the partials into dw/db (each may be null).
template <class Body>
void rows_with_column_partials(int64_t rows, int64_t D, float* dw, float* db, Body body) {
  const int64_t nb = std::max<int64_t>(1, std::min(kRowBlocks, rows));
  const bool need = dw || db;
  std::vector<double> pw(need ? size_t(nb * D) : 0, 0.0), pb(db ? size_t(nb * D) : 0, 0.0);
#pragma omp parallel for schedule(static) if (rows * D > kParallelMinElems)
  for (int64_t blk = 0; blk < nb; ++blk) {
    const int64_t r0 = rows * blk / nb, r1 = rows * (blk + 1) / nb;
    double* w = need ? pw.data() + blk * D : nullptr;
    double* b = db ? pb.data() + blk * D : nullptr;
    for (int64_t r = r0; r < r1; ++r) body(r, w, b);
  }
  for (int64_t blk = 0; blk < nb && need; ++blk)
    for (int64_t i = 0; i < D; ++i) {
      if (dw) dw[i] += static_cast<float>(pw[size_t(blk * D + i)]);
      if (db) db[i] += static_cast<float>(pb[size_t(blk * D + i)]);
    }
}

inline double sum_squares(const float* p, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

// RMSNorm backward of one group: g (input), gw (gain), dy -> dg (or dg += with acc); adds
// dy*ghat into pw.
inline void rms_group_backward(const float* g, const float* gw, const float* dy, int64_t n,
                               float eps, float* dg, double* pw, bool acc = false) {
  const double ms = sum_squares(g, n) / static_cast<double>(n);
  const double r = 1.0 / std::sqrt(ms + static_cast<double>(eps));
  double dot = 0.0;  // sum dxhat * xhat
  for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(dy[i]) * gw[i] * g[i] * r;
  const double mean_dot = dot / static_cast<double>(n);
  const float rf = static_cast<float>(r), mf = static_cast<float>(mean_dot);
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = g[i] * rf;
    if (pw) pw[i] += static_cast<double>(dy[i]) * xhat;
    const float v = rf * (dy[i] * gw[i] - xhat * mf);
    dg[i] = acc ? dg[i] + v : v;
  }
}

}  // namespace

void rms_norm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx,
                       Tensor* dw, bool accumulate_dx) {
  const int64_t D = x.dim(-1), rows = D > 0 ? x.numel() / D : 0;
  const float *xp = x.f32(), *wp = w.f32(), *gp = dy.f32();
  float* op = dx.f32();
  rows_with_column_partials(rows, D, dw ? dw->f32() : nullptr, nullptr,
                            [&](int64_t r, double* pw, double*) {
                              rms_group_backward(xp + r * D, wp, gp + r * D, D, eps, op + r * D, pw, accumulate_dx);
                            });
}

void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered,
                         const Tensor& dy, Tensor& dx, Tensor* dw, Tensor* db, bool accumulate_dx) {
  const int64_t D = x.dim(-1), rows = D > 0 ? x.numel() / D : 0;
  const float *xp = x.f32(), *wp = w.f32(), *gp = dy.f32();
  const float off = zero_centered ? 1.0f : 0.0f;
  float* op = dx.f32();
  rows_with_column_partials(
      rows, D, dw ? dw->f32() : nullptr, db ? db->f32() : nullptr,
      [&](int64_t r, double* pw, double* pb) {
        const float* xr = xp + r * D;
        const float* gr = gp + r * D;
        float* dr = op + r * D;
        double sum = 0.0;
        for (int64_t i = 0; i < D; ++i) sum += xr[i];
        const double mean = sum / static_cast<double>(D);
        double var = 0.0;
        for (int64_t i = 0; i < D; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= static_cast<double>(D);
        const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
        double s1 = 0.0, s2 = 0.0;  // sum dxhat, sum dxhat * xhat
        for (int64_t i = 0; i < D; ++i) {
          const double dxh = static_cast<double>(gr[i]) * (wp[i] + off);
          s1 += dxh;
          s2 += dxh * (xr[i] - mean) * inv;
        }
        const float m1 = static_cast<float>(s1 / D), m2 = static_cast<float>(s2 / D);
        const float invf = static_cast<float>(inv), meanf = static_cast<float>(mean);
        for (int64_t i = 0; i < D; ++i) {
          const float xhat = (xr[i] - meanf) * invf;
          if (pw) pw[i] += static_cast<double>(gr[i]) * xhat;
          if (pb) pb[i] += gr[i];
          const float v = invf * (gr[i] * (wp[i] + off) - m1 - xhat * m2);
          dr[i] = accumulate_dx ? dr[i] + v : v;
        }
      });
}

void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w,
                             int64_t group_size, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dz, Tensor* dw, int64_t dz_col0) {
  const int64_t D = x.dim(-1), rows = D > 0 ? x.numel() / D : 0;
  const int64_t groups = D / group_size;
  const float *xp = x.f32(), *zp = z.f32(), *wp = w.f32(), *gp = dy.f32();
  // dz's rows: its own, or columns [dz_col0, dz_col0 + D) of a wider tensor's
  const int64_t ldz = dz_col0 >= 0 ? dz.dim(-1) : D;
  float *dxp = dx.f32(), *dzp = dz.f32() + std::max<int64_t>(dz_col0, 0);
  rows_with_column_partials(
      rows, D, dw ? dw->f32() : nullptr, nullptr, [&](int64_t r, double* pw, double*) {
        thread_local std::vector<float> g, dg;
        g.resize(size_t(D));
        dg.resize(size_t(D));
        const float* xr = xp + r * D;
        const float* zr = zp + r * D;
        for (int64_t i = 0; i < D; ++i) g[size_t(i)] = xr[i] * (zr[i] / (1.0f + exp_fast(-zr[i])));
        for (int64_t k = 0; k < groups; ++k)
          rms_group_backward(g.data() + k * group_size, wp + k * group_size,
                             gp + r * D + k * group_size, group_size, eps,
                             dg.data() + k * group_size, pw ? pw + k * group_size : nullptr);
        for (int64_t i = 0; i < D; ++i) {
          const float zv = zr[i], s = 1.0f / (1.0f + exp_fast(-zv));
          dxp[r * D + i] = dg[size_t(i)] * zv * s;
          dzp[r * ldz + i] = dg[size_t(i)] * xr[i] * s * (1.0f + zv * (1.0f - s));
        }
      });
}

}  // namespace mambalm::ops::cpu
