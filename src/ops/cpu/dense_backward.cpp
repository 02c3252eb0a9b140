// Backward of the dense and elementwise ops on the CPU: linear (sgemm), embedding (scatter-add),
// the activations, softplus_dt and rope. Column reductions (db, dt_bias, embedding rows) are
// arranged so that each output element is summed by one thread in a fixed order: no atomics,
// bit-identical results run to run.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_backward.h"
#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;

// out[c] += sum_r m[r, c] for a row-major [rows, cols] matrix, threads owning column ranges,
// each column summed in row order in double.
void add_column_sums(const float* m, int64_t rows, int64_t cols, float* out) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (cols + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (rows * cols > kParallelMin)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kCols, c1 = std::min(cols, c0 + kCols);
    double acc[kCols] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float* mr = m + r * cols;
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += mr[c];
    }
    for (int64_t c = c0; c < c1; ++c) out[c] += static_cast<float>(acc[c - c0]);
  }
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }
}  // namespace

// Forward y[M, N] = x[M, K] w[N, K]^T + b.
void linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor* dw,
                     Tensor* db) {
  const int64_t N = w.dim(0), K = w.dim(1);
  const int64_t M = N > 0 ? dy.numel() / N : (K > 0 ? x.numel() / K : 0);
  if (dx && dx->numel() > 0) {
    if (N == 0) {
      dx->fill(0.0f);
    } else {  // dx[M, K] = dy[M, N] w[N, K]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(M),
                  static_cast<blasint>(K), static_cast<blasint>(N), 1.0f, dy.f32(),
                  static_cast<blasint>(N), w.f32(), static_cast<blasint>(K), 0.0f, dx->f32(),
                  static_cast<blasint>(K));
    }
  }
  if (dw && M > 0 && N > 0 && K > 0) {  // dw[N, K] += dy^T[N, M] x[M, K]
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(N),
                static_cast<blasint>(K), static_cast<blasint>(M), 1.0f, dy.f32(),
                static_cast<blasint>(N), x.f32(), static_cast<blasint>(K), 1.0f, dw->f32(),
                static_cast<blasint>(K));
  }
  if (db && M > 0) add_column_sums(dy.f32(), M, N, db->f32());
}

// Threads own column ranges of the table and walk all tokens in order.
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const int64_t n = ids.numel(), V = dtable.dim(0), D = dtable.dim(1);
  const int32_t* id = ids.data<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (id[i] < 0 || id[i] >= V)
      fail("op embedding_backward",
           "token id " + std::to_string(id[i]) + " at flat position " + std::to_string(i) +
               " is out of range for a table of " + std::to_string(V) + " rows",
           "the tokenizer and the model's vocab_size disagree");
  }
  const float* g = dy.f32();
  float* t = dtable.f32();
  constexpr int64_t kCols = 256;
  const int64_t blocks = (D + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (n * D > kParallelMin)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kCols, c1 = std::min(D, c0 + kCols);
    for (int64_t i = 0; i < n; ++i) {
      float* row = t + static_cast<int64_t>(id[i]) * D;
      const float* gi = g + i * D;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) row[c] += gi[c];
    }
  }
}

// d/dx [x sigmoid(x)] = s (1 + x (1 - s))
void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  const int64_t n = x.numel();
  const float* xp = x.f32();
  const float* gp = dy.f32();
  float* op = dx.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid(xp[i]);
    op[i] = gp[i] * s * (1.0f + xp[i] * (1.0f - s));
  }
}

void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  const int64_t n = x.numel();
  const float* xp = x.f32();
  const float* gp = dy.f32();
  float* op = dx.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) op[i] = xp[i] > 0.0f ? 2.0f * xp[i] * gp[i] : 0.0f;
}

// d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi via erfc (no cancellation for x << 0).
void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  const int64_t n = x.numel();
  const float* xp = x.f32();
  const float* gp = dy.f32();
  float* op = dx.f32();
  const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
#pragma omp parallel for schedule(static) if (n > kParallelMin / 4)
  for (int64_t i = 0; i < n; ++i) {
    const float v = xp[i];
    const float cdf = 0.5f * std::erfc(-v * inv_sqrt2);
    const float pdf = inv_sqrt_2pi * std::exp(-0.5f * v * v);
    op[i] = gp[i] * (cdf + v * pdf);
  }
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate,
                     Tensor& dup) {
  const int64_t n = gate.numel();
  const float* gp = gate.f32();
  const float* upp = up.f32();
  const float* dyp = dy.f32();
  float* dg = dgate.f32();
  float* du = dup.f32();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = gp[i], s = sigmoid(x), g = dyp[i], u = upp[i];
    dg[i] = g * u * s * (1.0f + x * (1.0f - s));
    du[i] = g * x * s;
  }
}

void softplus_dt_backward(const Tensor& dt, const Tensor& dt_bias, float dt_min, float dt_max,
                          const Tensor& dy, Tensor& ddt, Tensor* ddt_bias) {
  const int64_t H = dt.dim(-1), n = dt.numel();
  const float* dp = dt.f32();
  const float* bp = dt_bias.f32();
  const float* gp = dy.f32();
  float* op = ddt.f32();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float v = dp[i] + bp[i % H];
    const float sp = v > 20.0f ? v : std::log1p(std::exp(v));  // as the forward
    const bool clamped = sp < dt_min || sp > dt_max;
    op[i] = clamped ? 0.0f : gp[i] * (v > 20.0f ? 1.0f : 1.0f / (1.0f + std::exp(-v)));
  }
  if (ddt_bias && H > 0) add_column_sums(op, n / H, H, ddt_bias->f32());
}

// The forward rotation by +angle; its transpose (the backward) is the rotation by -angle.
void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta) {
  const int64_t B = dx.dim(0), T = dx.dim(1), H = dx.dim(2), Dh = dx.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || dx.numel() == 0) return;
  std::vector<float> cos_t(size_t(T * half)), sin_t(size_t(T * half));
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = std::pow(theta, -2.0 * double(i) / double(rotary_dim));
    for (int64_t t = 0; t < T; ++t) {
      const double angle = double(pos0 + t) * inv_freq;
      cos_t[size_t(t * half + i)] = static_cast<float>(std::cos(angle));
      sin_t[size_t(t * half + i)] = static_cast<float>(std::sin(angle));
    }
  }
  float* xp = dx.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * T * H * rotary_dim > kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const float* c = cos_t.data() + t * half;
      const float* s = sin_t.data() + t * half;
      for (int64_t h = 0; h < H; ++h) {
        float* v = xp + ((b * T + t) * H + h) * Dh;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], bb = v[i + half];
          v[i] = a * c[i] + bb * s[i];
          v[i + half] = bb * c[i] - a * s[i];
        }
      }
    }
  }
}

// Per row: m = max, lse = m + log sum exp(l - m) (sum in double), loss = lse - l[target];
// dlogits = scale (exp(l - lse) - [j == target]) with scale = grad_scale / n_valid.
// The row's statistics are complete before any dlogits element is written, so dlogits may be
// the logits buffer itself.
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& targets, Tensor* dlogits,
                                 float grad_scale) {
  const int64_t Nr = logits.dim(0), V = logits.dim(1);
  const int32_t* tg = targets.data<int32_t>();
  int64_t n_valid = 0;
  for (int64_t r = 0; r < Nr; ++r) {
    if (tg[r] == -1) continue;
    if (tg[r] < 0 || tg[r] >= V)
      fail("op cross_entropy",
           "target " + std::to_string(tg[r]) + " at row " + std::to_string(r) +
               " is out of range for " + std::to_string(V) + " classes",
           "targets must be token ids < vocab_size, or -1 to ignore the row");
    ++n_valid;
  }
  const float scale = n_valid > 0 ? grad_scale / static_cast<float>(n_valid) : 0.0f;
  std::vector<double> row_loss(size_t(Nr), 0.0);
  const float* lp = logits.f32();
  float* gp = dlogits ? dlogits->f32() : nullptr;
#pragma omp parallel for schedule(static) if (Nr * V > kParallelMin)
  for (int64_t r = 0; r < Nr; ++r) {
    const float* l = lp + r * V;
    float* g = gp ? gp + r * V : nullptr;
    if (tg[r] == -1) {
      if (g) std::fill(g, g + V, 0.0f);
      continue;
    }
    float mx = l[0];
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, l[j]);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < V; ++j) sum += static_cast<double>(exp_fast(l[j] - mx));
    const double lse = static_cast<double>(mx) + std::log(sum);
    row_loss[size_t(r)] = lse - static_cast<double>(l[tg[r]]);
    if (g) {
      const float lsef = static_cast<float>(lse);
      const int64_t t = tg[r];
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) g[j] = scale * exp_fast(l[j] - lsef);
      g[t] -= scale;
    }
  }
  CrossEntropyResult res;
  for (int64_t r = 0; r < Nr; ++r) res.sum_loss += row_loss[size_t(r)];
  res.n_valid = n_valid;
  res.mean_loss = n_valid > 0 ? res.sum_loss / static_cast<double>(n_valid) : 0.0;
  return res;
}

}  // namespace mambalm::ops::cpu
