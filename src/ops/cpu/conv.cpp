// Causal depthwise 1-D convolution on the CPU (Mamba's short conv, d_conv = 4 typically),
// with an optional streaming state so prefill and token-by-token decode give the same numbers.
//
// Layout: x, y are [B, T, C] (channels last), so the kernel vectorises over channels. The
// weights [C, K] and the state [B, C, K-1] are channel-major; both are transposed once per call
// into time-major scratch ([K, C] and [B, K-1, C]) so that every inner loop is unit-stride,
// except in a decode step (T = 1), which reads them in place (conv_step).
//
// With document ids (packed sequences) a second forward, and the backward. Padded input index
// i = t + k (k = 0..K-1) is history row i when i < K-1, else x row i - (K-1); its time is
// s = i - (K-1). With documents, output t reads input s only when
// doc(s) == doc(t), where doc(s < 0) = doc(0) (the history continues token 0's document).
//
// Backward with pre = the conv output before SiLU (recomputed):
//   dpre = dy silu'(pre)  (or dy)
//   dxpad[i] = sum_k w[c, k] dpre[i - k]        (same-document terms only)
//   dw[c, k] += sum_t dpre[t] xpad[t + k];  dbias[c] += sum_t dpre[t]
// The second pass runs over blocks of channels (threads own channels, so dw and dbias need no
// reduction across threads and the result is deterministic).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

namespace {

// a * b + c as conv_one_document's vectorised loop computes it: fused where the target has FMA
// (the compiler contracts that loop), two roundings where it has none. Written out, because the
// compiler may instead vectorise a short scalar sum as products first, then adds.
inline float mul_add(float a, float b, float c) {
#ifdef __FP_FAST_FMAF
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// One decode step (T = 1) with a state: each channel reads its K-1 history values and its new
// input where they lie, and shifts its history in place. The sum runs from the bias in k order,
// as conv_one_document's, so the result is the same; what it skips is that function's
// transposed copies of the weights and the state ([K, C] and [K-1, C] scratch, written and read
// back element by element): ~5 us of a 42 us Mamba-2 decode step at C 3584 (bench/NOTES.md).
void conv_step(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& state, bool apply_silu, Tensor& y) {
  const int64_t B = x.dim(0), C = x.dim(2), K = w.dim(1), H = K - 1;
  const float* xp = x.f32();  // [B, 1, C]
  const float* wp = w.f32();  // [C, K]
  const float* bp = bias ? bias->f32() : nullptr;
  float* sp = state.f32();  // [B, C, H], oldest first
  float* yp = y.f32();      // [B, 1, C]
  for (int64_t b = 0; b < B; ++b) {
    if (H == 3) {  // d_conv 4 (every model of the study): fixed strides, which the compiler vectorises
      float* s = sp + b * C * 3;
      const float* xb = xp + b * C;
      float* yb = yp + b * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float s0 = s[3 * c], s1 = s[3 * c + 1], s2 = s[3 * c + 2], xin = xb[c];
        float acc = bp ? bp[c] : 0.0f;
        acc = mul_add(wp[4 * c], s0, acc);
        acc = mul_add(wp[4 * c + 1], s1, acc);
        acc = mul_add(wp[4 * c + 2], s2, acc);
        yb[c] = mul_add(wp[4 * c + 3], xin, acc);
        s[3 * c] = s1, s[3 * c + 1] = s2, s[3 * c + 2] = xin;
      }
      continue;
    }
    for (int64_t c = 0; c < C; ++c) {
      float* s = sp + (b * C + c) * H;
      const float* wc = wp + c * K;
      const float xin = xp[b * C + c];
      float acc = bp ? bp[c] : 0.0f;
      for (int64_t k = 0; k < H; ++k) acc = mul_add(wc[k], s[k], acc);
      acc = mul_add(wc[H], xin, acc);
      yp[b * C + c] = acc;
      for (int64_t j = 0; j + 1 < H; ++j) s[j] = s[j + 1];
      s[H - 1] = xin;
    }
  }
  if (apply_silu) {  // apart, so that it vectorises
    const int64_t n = B * C;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) yp[i] = yp[i] / (1.0f + exp_fast(-yp[i]));
  }
}

// Where the output's channels go: block i is a [B, T, width_i] tensor holding channels
// [col0_i, col0_i + width_i) (causal_conv1d_parts), or one block, the whole [B, T, C] y.
struct OutBlock {
  float* base;
  int64_t col0, width;
};

std::vector<OutBlock> out_blocks(std::initializer_list<Tensor*> parts) {
  std::vector<OutBlock> blocks;
  int64_t col = 0;
  for (Tensor* p : parts) {
    blocks.push_back({p->f32(), col, p->dim(-1)});
    col += p->dim(-1);
  }
  return blocks;
}

// Channels [c0, c0 + n) of one output row into y[n] for K = 4 (every Mamba config): the sum from
// the bias in k order (as conv_step's), then SiLU. x0..x3 are the padded input rows t .. t + 3, wt
// the weights [4, C].
void conv4_block_in_registers(const float* x0, const float* x1, const float* x2, const float* x3, const float* wt,
                              const float* bias, int64_t C, int64_t c0, int64_t n, bool apply_silu, float* y) {
  const float* w0 = wt + c0;
  const float* w1 = wt + C + c0;
  const float* w2 = wt + 2 * C + c0;
  const float* w3 = wt + 3 * C + c0;
  const float* b = bias + c0;
  x0 += c0, x1 += c0, x2 += c0, x3 += c0;
  if (apply_silu) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) {
      const float acc = mul_add(w3[c], x3[c], mul_add(w2[c], x2[c], mul_add(w1[c], x1[c], mul_add(w0[c], x0[c], b[c]))));
      y[c] = acc / (1.0f + exp_fast(-acc));
    }
  } else {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c)
      y[c] = mul_add(w3[c], x3[c], mul_add(w2[c], x2[c], mul_add(w1[c], x1[c], mul_add(w0[c], x0[c], b[c]))));
  }
}

// One document per row: the streaming forward (prefill and decode), each row's channels written
// block by block into `out` (every element's sum runs in the same order whatever the blocks).
void conv_one_document(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor* state, bool apply_silu,
                       const std::vector<OutBlock>& out) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2);
  const int64_t K = w.dim(1);
  const int64_t H = K - 1;  // history length
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* bp = bias ? bias->f32() : nullptr;

  std::vector<float> wt(static_cast<size_t>(K * C));  // [K, C]
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) wt[static_cast<size_t>(k * C + c)] = wp[c * K + k];

  // hist[b, j, c]: input at time j - H (oldest first); zeros without a state.
  std::vector<float> hist(static_cast<size_t>(B * H * C), 0.0f);
  if (state && H > 0) {
    const float* sp = state->f32();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < H; ++j)
          hist[static_cast<size_t>((b * H + j) * C + c)] = sp[(b * C + c) * H + j];
  }

  // Row i of the padded input (i = t + k) is hist row i when i < H, else x row i - H.
  auto padded_row = [&](int64_t b, int64_t i) -> const float* {
    return i < H ? hist.data() + (b * H + i) * C : xp + (b * T + (i - H)) * C;
  };

  const std::vector<float> zeros(bp || K != 4 ? 0 : static_cast<size_t>(C), 0.0f);  // the K 4 path's bias without one
  const float* bias_or_zeros = bp ? bp : zeros.data();  // [C]
  for_each_row(B * T, B * T * C * K > (1 << 16), [&](int64_t bt) {
    const int64_t b = bt / T, t = bt % T;
    if (K == 4) {
      // Each output summed in registers and stored once (the loop below stores it K + 2 times).
      const float *x0 = padded_row(b, t), *x1 = padded_row(b, t + 1), *x2 = padded_row(b, t + 2), *x3 = padded_row(b, t + 3);
      for (const OutBlock& o : out)
        conv4_block_in_registers(x0, x1, x2, x3, wt.data(), bias_or_zeros, C, o.col0, o.width, apply_silu, o.base + bt * o.width);
      return;
    }
    for (const OutBlock& o : out) {
      const int64_t c0 = o.col0, n = o.width;
      float* yr = o.base + bt * n;  // [n]: channels c0 .. c0 + n of row (b, t)
      if (bp) {
        std::memcpy(yr, bp + c0, static_cast<size_t>(n) * sizeof(float));
      } else {
        std::memset(yr, 0, static_cast<size_t>(n) * sizeof(float));
      }
      for (int64_t k = 0; k < K; ++k) {
        const float* xr = padded_row(b, t + k) + c0;
        const float* wk = wt.data() + k * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) yr[c] += wk[c] * xr[c];
      }
      if (apply_silu) {
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) yr[c] = yr[c] / (1.0f + exp_fast(-yr[c]));
      }
    }
  });

  // New state: the last H rows of the padded input, i.e. padded rows T .. T+H-1.
  if (state && H > 0) {
    float* sp = state->f32();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const float* src = padded_row(b, T + j);
        for (int64_t c = 0; c < C; ++c) sp[(b * C + c) * H + j] = src[c];
      }
  }
}

// True when output t may read the input at time s (s <= t, s may be negative).
inline bool same_doc(const int32_t* seq, int64_t s, int64_t t) {
  if (!seq) return true;
  return seq[s < 0 ? 0 : s] == seq[t];
}

// Pre-activation of row (b, t) into out[C].
void conv_row(const float* xp, const float* hist /*[H, C] for batch b*/, const float* wt /*[K, C]*/,
              const float* bp, const int32_t* seq, int64_t T, int64_t C, int64_t K, int64_t b,
              int64_t t, float* out) {
  const int64_t H = K - 1;
  if (bp) {
    std::memcpy(out, bp, size_t(C) * sizeof(float));
  } else {
    std::fill(out, out + C, 0.0f);
  }
  for (int64_t k = 0; k < K; ++k) {
    const int64_t s = t + k - H;
    if (!same_doc(seq, s, t)) continue;
    const float* xr = s < 0 ? hist + (s + H) * C : xp + (b * T + s) * C;
    const float* wk = wt + k * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) out[c] += wk[c] * xr[c];
  }
}

std::vector<float> transpose_weights(const Tensor& w) {  // [C, K] -> [K, C]
  const int64_t C = w.dim(0), K = w.dim(1);
  std::vector<float> wt(size_t(K * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) wt[size_t(k * C + c)] = w.f32()[c * K + k];
  return wt;
}

std::vector<float> history(const Tensor* state, int64_t B, int64_t C, int64_t H) {  // [B, H, C]
  std::vector<float> hist(size_t(B * H * C), 0.0f);
  if (state && H > 0)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < H; ++j)
          hist[size_t((b * H + j) * C + c)] = state->f32()[(b * C + c) * H + j];
  return hist;
}
}  // namespace

void causal_conv1d(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                   bool apply_silu, Tensor& y) {
  if (!seq_idx && state && x.dim(1) == 1 && w.dim(1) > 1) return conv_step(x, w, bias, *state, apply_silu, y);
  if (!seq_idx) return conv_one_document(x, w, bias, state, apply_silu, {OutBlock{y.f32(), 0, x.dim(2)}});
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1), H = K - 1;
  const std::vector<float> wt = transpose_weights(w);
  const std::vector<float> hist = history(state, B, C, H);
  const float* xp = x.f32();
  const float* bp = bias ? bias->f32() : nullptr;
  float* yp = y.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C * K > (1 << 16))
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) {
      const int32_t* seq = seq_idx ? seq_idx->data<int32_t>() + b * T : nullptr;
      float* yr = yp + (b * T + t) * C;
      conv_row(xp, hist.data() + b * H * C, wt.data(), bp, seq, T, C, K, b, t, yr);
      if (apply_silu) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = yr[c] / (1.0f + exp_fast(-yr[c]));
      }
    }
  }
  if (state && H > 0) {  // the last H inputs (padded rows T .. T+H-1)
    float* sp = state->f32();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < H; ++j) {
        const int64_t i = T + j;
        const float* src = i < H ? hist.data() + (b * H + i) * C : xp + (b * T + (i - H)) * C;
        for (int64_t c = 0; c < C; ++c) sp[(b * C + c) * H + j] = src[c];
      }
  }
}

// Without documents a prefill writes each block in place (no whole-width result and no copy:
// 5.9 ms of split_columns in hybrid-24l's 241 ms bf16 prefill at 2 threads, bench/NOTES.md); a
// decode step or documents take the whole-width op and split its result.
void causal_conv1d_parts(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* seq_idx, Tensor* state,
                         bool apply_silu, std::initializer_list<Tensor*> parts) {
  if (!seq_idx && !(state && x.dim(1) == 1)) return conv_one_document(x, w, bias, state, apply_silu, out_blocks(parts));
  Tensor y = Tensor::empty(x.shape());  // [B, T, C]
  causal_conv1d(x, w, bias, seq_idx, state, apply_silu, y);
  split_columns(y, parts);
}

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias,
                            const Tensor* seq_idx, const Tensor* initial_state, bool apply_silu,
                            const Tensor& dy, Tensor& dx, Tensor* dw, Tensor* dbias,
                            Tensor* dinitial_state) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), K = w.dim(1), H = K - 1;
  const std::vector<float> wt = transpose_weights(w);
  const std::vector<float> hist = history(initial_state, B, C, H);
  const float* xp = x.f32();
  const float* wp = w.f32();
  const float* bp = bias ? bias->f32() : nullptr;
  const int32_t* seq_all = seq_idx ? seq_idx->data<int32_t>() : nullptr;

  // Pass 1: dpre (= dy without SiLU).
  std::vector<float> dpre_buf;
  const float* dpre = dy.f32();
  if (apply_silu) {
    dpre_buf.resize(size_t(B * T * C));
    const float* gp = dy.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C * K > (1 << 16))
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        float* r = dpre_buf.data() + (b * T + t) * C;
        conv_row(xp, hist.data() + b * H * C, wt.data(), bp, seq_all ? seq_all + b * T : nullptr,
                 T, C, K, b, t, r);
        const float* g = gp + (b * T + t) * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float s = 1.0f / (1.0f + exp_fast(-r[c]));
          r[c] = g[c] * s * (1.0f + r[c] * (1.0f - s));
        }
      }
    }
    dpre = dpre_buf.data();
  }

  // Pass 2: per block of channels.
  constexpr int64_t kCh = 64;
  const int64_t blocks = (C + kCh - 1) / kCh;
  float* dxp = dx.f32();
  float* dwp = dw ? dw->f32() : nullptr;
  float* dbp = dbias ? dbias->f32() : nullptr;
  float* dsp = dinitial_state ? dinitial_state->f32() : nullptr;
#pragma omp parallel for schedule(static) if (B * T * C * K > (1 << 16))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kCh, c1 = std::min(C, c0 + kCh), nc = c1 - c0;
    std::vector<double> dw_acc(size_t(nc * K), 0.0), db_acc(size_t(nc), 0.0);
    std::vector<float> acc(static_cast<size_t>(nc));
    for (int64_t b = 0; b < B; ++b) {
      const int32_t* seq = seq_all ? seq_all + b * T : nullptr;
      const float* hb = hist.data() + b * H * C;
      for (int64_t i = 0; i < T + H; ++i) {  // padded input index; input time s = i - H
        const int64_t s = i - H;
        std::fill(acc.begin(), acc.end(), 0.0f);
        const float* xr = s < 0 ? hb + i * C : xp + (b * T + s) * C;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t t = i - k;  // output that reads this input through tap k
          if (t < 0 || t >= T || !same_doc(seq, s, t)) continue;
          const float* dr = dpre + (b * T + t) * C;
          for (int64_t c = c0; c < c1; ++c) {
            acc[size_t(c - c0)] += wp[c * K + k] * dr[c];
            dw_acc[size_t((c - c0) * K + k)] += static_cast<double>(dr[c]) * xr[c];
          }
        }
        if (s >= 0) {
          std::copy(acc.begin(), acc.end(), dxp + (b * T + s) * C + c0);
          const float* dr = dpre + (b * T + s) * C;
          for (int64_t c = c0; c < c1; ++c) db_acc[size_t(c - c0)] += dr[c];
        } else if (dsp) {
          for (int64_t c = c0; c < c1; ++c) dsp[(b * C + c) * H + i] = acc[size_t(c - c0)];
        }
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (dwp)
        for (int64_t k = 0; k < K; ++k) dwp[c * K + k] += static_cast<float>(dw_acc[size_t((c - c0) * K + k)]);
      if (dbp) dbp[c] += static_cast<float>(db_acc[size_t(c - c0)]);
    }
  }
}

}  // namespace mambalm::ops::cpu
