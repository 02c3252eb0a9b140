// Attention-side ops on the CPU: rotary position embedding (rotate-half convention), causal
// grouped-query attention over a KV sequence that may start with a cached prefix, one-query
// decode over a cache, and the backward passes.
//
// With document ids (packed training sequences) the forward is a second kernel:
// query row i sits at key position pos = S - T + i and sees key j iff j <= pos and
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
//
// Few query rows (decode: one row per sequence and head; any call with T <= kFewRows) take a
// path without BLAS: scores, softmax and P V in our own vectorised loops, one (batch, query
// head) per task, scratch of the visible keys in a per-thread buffer that only grows. The
// prefill path at T = 1 (sgemm at M = 1 inside the OpenMP region, a `64 x S` scores buffer
// allocated per thread per call) took 2.1-2.5x as long (bench/NOTES.md, issue 21). On x86 with
// AVX2, decode over a cache whose head size is a multiple of 16 reads the cache in memory order
// instead, every head of a chunk of keys at once (attention_decode_x86.cpp).
//
// Keys and values may be a BF16 KV cache (the forward with an inference state, which attends
// over the cache it has just appended to: decode and chunked prefill, never with documents).
// bf16 is the top half of an fp32, so widening is exact: the few-rows loops widen each element
// in registers, the sgemm path widens a panel of keys at a time into a per-thread buffer, and
// every product and sum stays fp32. The result is the F32 path's on the widened cache
// (tests/test_ops_attention.cpp).
#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ops/cpu/attention_decode.h"
#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

constexpr float kLog2e = 1.4426950408889634f;  // lse2 = lse log2(e)


// Angles are computed in double ((pos0 + t) * theta^(-2i/r) reaches ~1e5 rad at long context,
// where an fp32 angle would be off by ~1e-2 rad), then cos/sin are rounded to fp32 once into a
// [T, r/2] table shared by all batches and heads. The rotation itself is fp32.
namespace {
// The cos/sin table of positions pos0 .. pos0 + T - 1, kept for the next call: a decode step
// rotates q and k of every layer at the same position, so one table serves all of them (the
// double pow, cos and sin of 32 frequencies took ~12 us a call, 0.28 ms of a llama-134m token).
struct RopeTable {
  int64_t pos0 = -1, T = 0, rotary_dim = 0;
  double theta = 0.0;
  std::vector<float> cos_t, sin_t;  // [T, rotary_dim / 2] each
};

const RopeTable& rope_table(int64_t pos0, int64_t T, int64_t rotary_dim, double theta) {
  thread_local RopeTable tab;
  if (tab.pos0 == pos0 && tab.T == T && tab.rotary_dim == rotary_dim && tab.theta == theta) return tab;
  const int64_t half = rotary_dim / 2;
  tab.cos_t.resize(static_cast<size_t>(T * half));
  tab.sin_t.resize(static_cast<size_t>(T * half));
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(rotary_dim));
    for (int64_t t = 0; t < T; ++t) {
      const double angle = static_cast<double>(pos0 + t) * inv_freq;
      tab.cos_t[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(angle));
      tab.sin_t[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(angle));
    }
  }
  tab.pos0 = pos0, tab.T = T, tab.rotary_dim = rotary_dim, tab.theta = theta;
  return tab;
}

// The rotate-half rotation by sign * angle: +1 is the forward, -1 its transpose (the backward).
// Negating sin is exact, so both directions use the same fp32 factors.
void rotate_half(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta, float sign) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), Dh = x.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || x.numel() == 0) return;
  const RopeTable& tab = rope_table(pos0, T, rotary_dim, theta);
  const float* cos_t = tab.cos_t.data();
  const float* sin_t = tab.sin_t.data();
  float* xp = x.f32();
  for_each_row(B * T, B * T * H * rotary_dim > (1 << 15), [&](int64_t bt) {
    const int64_t t = bt % T;
    const float* c = cos_t + t * half;
    const float* s = sin_t + t * half;
    for (int64_t h = 0; h < H; ++h) {
      float* v = xp + (bt * H + h) * Dh;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], bb = v[i + half], si = sign * s[i];
        v[i] = a * c[i] - bb * si;
        v[i + half] = bb * c[i] + a * si;
      }
    }
  });
}
}  // namespace

void rope(Tensor& x, int64_t pos0, int64_t rotary_dim, double theta) { rotate_half(x, pos0, rotary_dim, theta, 1.0f); }

namespace {
// The softmax numerators of one score row, in place: row[i] = exp(row[i] - max) for i < n (n >= 1);
// returns their sum and sets mx to the max. Inlined into each instruction-set variant below.
[[gnu::always_inline]] inline float exp_shifted_in_place(float* row, int64_t n, float& mx) {
  mx = row[0];
#pragma omp simd reduction(max : mx)
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, row[i]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp_fast(row[i] - mx);
    row[i] = e;
    sum += e;
  }
  return sum;
}
}  // namespace

// ---- few query rows (decode) ------------------------------------------------------------------
namespace {

// A key or value element as fp32. A bf16 element is the top 16 bits of the fp32 with the same
// value, so the widening is a shift: exact, and inline so that the loops below vectorise it.
[[gnu::always_inline]] inline float widen(float x) { return x; }
[[gnu::always_inline]] inline float widen(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Query rows at or below which attention() takes the few-rows path (as linear()'s GEMV limit).
constexpr int64_t kFewRows = 8;

// `rows` query rows of one (batch, query head): row r (Dh floats at q + r ldq) sees keys
// 0 .. visible0 + r - 1 (key j at k + j ldk, its value at v + j ldk) and writes out + r ldo and,
// when lse2 is given, lse2[r] = log2 sum_j exp(scale q.k_j). KV is float (F32 keys and values)
// or uint16_t (a BF16 cache, widened as read).
template <class KV>
struct RowsJob {
  const float* q;
  int64_t ldq;
  const KV* k;
  const KV* v;
  int64_t ldk;
  int64_t Dh, rows, visible0;
  float scale;
  float* out;
  int64_t ldo;
  float* lse2;
};

// Four keys per step in both products: four independent dot products share each load of q, and
// the P V update adds four weighted rows per pass over the output (a quarter of the dependent
// load-add-store chains on `out`). Scores are exponentiated in place, the output is normalised
// once at the end. `s` holds visible0 + rows - 1 floats.
template <class KV>
[[gnu::always_inline]] inline void attend_rows_impl(const RowsJob<KV>& a, float* s) {
  const int64_t Dh = a.Dh, ldk = a.ldk;
  for (int64_t r = 0; r < a.rows; ++r) {
    const int64_t n = a.visible0 + r;
    const float* qr = a.q + r * a.ldq;
    float* o = a.out + r * a.ldo;
    if (n <= 0) {  // no visible key (not reachable through the ops' checks): a defined zero row
      for (int64_t d = 0; d < Dh; ++d) o[d] = 0.0f;
      if (a.lse2) a.lse2[r] = -INFINITY;
      continue;
    }
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const KV* k0 = a.k + j * ldk;
      const KV *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
      float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int64_t d = 0; d < Dh; ++d) {
        const float x = qr[d];
        s0 += x * widen(k0[d]);
        s1 += x * widen(k1[d]);
        s2 += x * widen(k2[d]);
        s3 += x * widen(k3[d]);
      }
      s[j] = a.scale * s0;
      s[j + 1] = a.scale * s1;
      s[j + 2] = a.scale * s2;
      s[j + 3] = a.scale * s3;
    }
    for (; j < n; ++j) {
      const KV* kj = a.k + j * ldk;
      float s0 = 0.0f;
#pragma omp simd reduction(+ : s0)
      for (int64_t d = 0; d < Dh; ++d) s0 += qr[d] * widen(kj[d]);
      s[j] = a.scale * s0;
    }
    float mx;
    const float sum = exp_shifted_in_place(s, n, mx);
    if (a.lse2) a.lse2[r] = (mx + std::log(sum)) * kLog2e;
    for (int64_t d = 0; d < Dh; ++d) o[d] = 0.0f;
    j = 0;
    for (; j + 4 <= n; j += 4) {
      const KV* v0 = a.v + j * ldk;
      const KV *v1 = v0 + ldk, *v2 = v1 + ldk, *v3 = v2 + ldk;
      const float p0 = s[j], p1 = s[j + 1], p2 = s[j + 2], p3 = s[j + 3];
#pragma omp simd
      for (int64_t d = 0; d < Dh; ++d)
        o[d] += (p0 * widen(v0[d]) + p1 * widen(v1[d])) + (p2 * widen(v2[d]) + p3 * widen(v3[d]));
    }
    for (; j < n; ++j) {
      const KV* vj = a.v + j * ldk;
      const float p = s[j];
#pragma omp simd
      for (int64_t d = 0; d < Dh; ++d) o[d] += p * widen(vj[d]);
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t d = 0; d < Dh; ++d) o[d] *= inv;
  }
}

// One variant per instruction set, as the GEMV kernels (ops/cpu/gemv.h): the same loops compiled
// with a function-level target, so a portable (-march=x86-64-v2) binary still runs 8- or
// 16-wide FMAs where the CPU has them. Each is instantiated for F32 and BF16 keys and values.
// The BF16 cache is widened here too on AVX512-BF16 machines: vdpbf16ps would round q and the
// softmax weights to bf16 as well (ops/cpu/gemv.h made the same choice for weights).
template <class KV>
using AttendRowsFn = void (*)(const RowsJob<KV>&, float*);
template <class KV>
void attend_rows_portable(const RowsJob<KV>& a, float* s) { attend_rows_impl(a, s); }
#if defined(__x86_64__)
template <class KV>
__attribute__((target("avx2,fma"))) void attend_rows_avx2(const RowsJob<KV>& a, float* s) { attend_rows_impl(a, s); }
template <class KV>
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void attend_rows_avx512(const RowsJob<KV>& a, float* s) {
  attend_rows_impl(a, s);
}
#endif

template <class KV>
AttendRowsFn<KV> attend_rows_kernel(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512 || isa == Isa::Avx512Bf16) return attend_rows_avx512<KV>;
  if (isa == Isa::Avx2) return attend_rows_avx2<KV>;
#endif
  (void)isa;
  return attend_rows_portable<KV>;  // Scalar, and Neon (the portable loops vectorise to NEON there)
}

struct RowsScratchTag {};  // per-thread score scratch (cpu_ops.h thread_buffer)

// tasks jobs (one per (batch, query head)), job(t) describing task t, over the OpenMP threads
// when the keys to read are worth a fork; max_keys bounds every job's visible0 + rows - 1.
template <class KV, class MakeJob>
void run_rows_jobs(Isa isa, int64_t tasks, int64_t max_keys, int64_t work, MakeJob job) {
  const AttendRowsFn<KV> fn = attend_rows_kernel<KV>(isa);
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && work > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) fn(job(t), thread_buffer<float, RowsScratchTag>(std::max<int64_t>(max_keys, 1)));
}

// A key or value tensor's elements as KV (float for F32, uint16_t for BF16).
template <class KV>
const KV* kv_data(const Tensor& t) {
  if constexpr (std::is_same_v<KV, float>) return t.f32();
  else return t.data<uint16_t>();
}

// attention() for T <= kFewRows without documents.
template <class KV>
void attention_few_rows(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out, float* lse2) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2), group = Hq / Hkv;
  const float* qp = q.f32();
  const KV *kp = kv_data<KV>(k), *vp = kv_data<KV>(v);
  float* op = out.f32();
  run_rows_jobs<KV>(active_isa(), B * Hq, S, B * Hq * T * S * Dh, [&](int64_t t) {
    const int64_t b = t / Hq, h = t % Hq, kvh = h / group;
    return RowsJob<KV>{qp + (b * T * Hq + h) * Dh, Hq * Dh, kp + (b * S * Hkv + kvh) * Dh,
                       vp + (b * S * Hkv + kvh) * Dh, Hkv * Dh, Dh, T, S - T + 1, scale,
                       op + (b * T * Hq + h) * Dh, Hq * Dh, lse2 ? lse2 + (b * Hq + h) * T : nullptr};
  });
}

template <class KV>
void attention_decode_kv(Isa isa, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                         float scale, Tensor& out) {
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2);
  const int64_t cap = k_cache.dim(1), Hkv = k_cache.dim(2), group = Hq / Hkv;
  const int32_t* len = lengths.data<int32_t>();
  int64_t max_len = 0, keys = 0;
  for (int64_t b = 0; b < B; ++b) max_len = std::max<int64_t>(max_len, len[b]), keys += len[b];
  const float* qp = q.f32();
  const KV *kp = kv_data<KV>(k_cache), *vp = kv_data<KV>(v_cache);
  float* op = out.f32();
  run_rows_jobs<KV>(isa, B * Hq, max_len, keys * Hq * Dh, [&](int64_t t) {
    const int64_t b = t / Hq, h = t % Hq, kvh = h / group;
    return RowsJob<KV>{qp + t * Dh, Dh, kp + (b * cap * Hkv + kvh) * Dh, vp + (b * cap * Hkv + kvh) * Dh,
                       Hkv * Dh, Dh, 1, len[b], scale, op + t * Dh, Dh, nullptr};
  });
}

}  // namespace

void attention_decode_isa(Isa isa, const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                          const Tensor& lengths, float scale, Tensor& out) {
#if defined(__x86_64__)
  const bool wide = isa == Isa::Avx512 || isa == Isa::Avx512Bf16;
  if (wide && decode_x86_fits(q.dim(2), true)) return attention_decode_x86(q, k_cache, v_cache, lengths, scale, true, out);
  if ((isa == Isa::Avx2 || wide) && decode_x86_fits(q.dim(2), false))
    return attention_decode_x86(q, k_cache, v_cache, lengths, scale, false, out);
#endif
  if (k_cache.dtype() == DType::BF16) attention_decode_kv<uint16_t>(isa, q, k_cache, v_cache, lengths, scale, out);
  else attention_decode_kv<float>(isa, q, k_cache, v_cache, lengths, scale, out);
}

// Tasks are (batch, query head, block of queries). For a block of rows [i0, i1) the keys needed
// are 0 .. S-T+i1-1; scores for the block are one sgemm (Q_blk K^T, scaled), then a masked
// max-subtracted softmax per row in fp32, then one sgemm (P V) straight into `out`.
// The sgemms run inside the OpenMP region, single-threaded with the OpenMP flavour of OpenBLAS
// (see ssd.cpp). The block height is capped so a thread's score scratch stays around 4 MB at any S.
// Only for T > kFewRows (prefill); fewer rows take attention_few_rows above.
// A BF16 cache (prefill after a cached prefix) is widened kKeyPanel keys at a time into a
// per-thread buffer and each panel is one sgemm of the score block and one of P V (accumulated):
// the fp32 copy stays kKeyPanel x Dh floats at any context, where widening a whole head would
// hold S x Dh per thread. F32 keys are one panel of all nk keys, read in place.
namespace {

constexpr int64_t kKeyPanel = 512;

// Rows [j0, j0 + n) of one head's keys or values (row stride ld elements) as fp32 rows for sgemm,
// and their row stride: F32 in place; BF16 widened (exactly) into `buf` [n, Dh].
const float* key_rows(const float* base, int64_t j0, int64_t /*n*/, int64_t ld, int64_t /*Dh*/, float* /*buf*/,
                      int64_t& ld_rows) {
  ld_rows = ld;
  return base + j0 * ld;
}
const float* key_rows(const uint16_t* base, int64_t j0, int64_t n, int64_t ld, int64_t Dh, float* buf, int64_t& ld_rows) {
  for (int64_t j = 0; j < n; ++j) {
    const uint16_t* h = base + (j0 + j) * ld;
    float* o = buf + j * Dh;
#pragma omp simd
    for (int64_t d = 0; d < Dh; ++d) o[d] = widen(h[d]);
  }
  ld_rows = Dh;
  return buf;
}

// One document per row (inference, and training without packing).
template <class KV>
void attention_one_document(const Tensor& q, const Tensor& k, const Tensor& v, float scale, Tensor& out,
                            float* lse2 /*[B, Hq, T] or null*/ = nullptr) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  const int64_t group = Hq / Hkv;
  if (B == 0 || T == 0 || Hq == 0 || Dh == 0) return;
  constexpr bool kWiden = !std::is_same_v<KV, float>;
  const int64_t block = std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(S, 1), 1, 64);
  const int64_t qblocks = (T + block - 1) / block;
  const int64_t tasks = B * Hq * qblocks;
  const float* qp = q.f32();
  const KV* kp = kv_data<KV>(k);
  const KV* vp = kv_data<KV>(v);
  float* op = out.f32();
  const blasint ldq = static_cast<blasint>(Hq * Dh);
  const int64_t ldk = Hkv * Dh;

#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(block * S));
    std::vector<float> panel(kWiden ? static_cast<size_t>(std::min(S, kKeyPanel) * Dh) : 0);  // [kKeyPanel, Dh] widened rows
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / (Hq * qblocks);
      const int64_t h = (task / qblocks) % Hq;
      const int64_t kvh = h / group;
      const int64_t i0 = (task % qblocks) * block;
      const int64_t i1 = std::min(i0 + block, T);
      const int64_t rows = i1 - i0;
      const int64_t nk = S - T + i1;  // keys visible to the last row of the block
      const int64_t step = kWiden ? kKeyPanel : nk;
      const float* qblk = qp + ((b * T + i0) * Hq + h) * Dh;
      const KV* kb = kp + (b * S * Hkv + kvh) * Dh;
      const KV* vb = vp + (b * S * Hkv + kvh) * Dh;
      float* oblk = op + ((b * T + i0) * Hq + h) * Dh;
      float* sc = scores.data();

      for (int64_t j0 = 0; j0 < nk; j0 += step) {  // sc[:, j0 : j0 + n] = scale Q_blk K_panel^T
        const int64_t n = std::min(step, nk - j0);
        int64_t ld = 0;
        const float* kr = key_rows(kb, j0, n, ldk, Dh, panel.data(), ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(n),
                    static_cast<blasint>(Dh), scale, qblk, ldq, kr, static_cast<blasint>(ld), 0.0f, sc + j0,
                    static_cast<blasint>(nk));
      }

      for (int64_t r = 0; r < rows; ++r) {
        float* row = sc + r * nk;
        const int64_t visible = S - T + i0 + r + 1;  // keys 0 .. position
        float mx;
        const float sum = exp_shifted_in_place(row, visible, mx);
        const float inv = 1.0f / sum;
        if (lse2) lse2[(b * Hq + h) * T + i0 + r] = (mx + std::log(sum)) * kLog2e;
#pragma omp simd
        for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
        for (int64_t j = visible; j < nk; ++j) row[j] = 0.0f;
      }

      for (int64_t j0 = 0; j0 < nk; j0 += step) {  // O_blk (+)= P[:, j0 : j0 + n] V_panel
        const int64_t n = std::min(step, nk - j0);
        int64_t ld = 0;
        const float* vr = key_rows(vb, j0, n, ldk, Dh, panel.data(), ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows), static_cast<blasint>(Dh),
                    static_cast<blasint>(n), 1.0f, sc + j0, static_cast<blasint>(nk), vr, static_cast<blasint>(ld),
                    j0 == 0 ? 0.0f : 1.0f, oblk, ldq);
      }
    }
  }
}

}  // namespace


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

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx, float scale, Tensor& out,
               Tensor* lse2_out) {
  float* lse2 = lse2_out ? lse2_out->f32() : nullptr;
  if (!seq_idx) {
    const bool bf16 = k.dtype() == DType::BF16;  // a BF16 KV cache (the dispatch allows it only here)
    if (q.dim(1) <= kFewRows)
      return bf16 ? attention_few_rows<uint16_t>(q, k, v, scale, out, lse2) : attention_few_rows<float>(q, k, v, scale, out, lse2);
    return bf16 ? attention_one_document<uint16_t>(q, k, v, scale, out, lse2)
                : attention_one_document<float>(q, k, v, scale, out, lse2);
  }
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
      for (int64_t r = 0; r < rows; ++r) {
        const float lse = softmax_row(sc.data() + r * nk, nk, seq, S - T + i0 + r);
        if (lse2) lse2[(b * Hq + h) * T + i0 + r] = lse * kLog2e;
      }
      sgemm(false, false, rows, Dh, nk, 1.0f, sc.data(), nk, vb, ldk, 0.0f,
            out.f32() + ((b * T + i0) * Hq + h) * Dh, ldq);
    }
  }
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv,
                        const Tensor* /*out*/, const Tensor* /*lse2: recomputed here, in fp32*/) {
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

void attention_decode(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                      float scale, Tensor& out) {
  attention_decode_isa(active_isa(), q, k_cache, v_cache, lengths, scale, out);
}

// The forward rotation by +angle; its transpose (the backward) is the rotation by -angle.
void rope_backward(Tensor& dx, int64_t pos0, int64_t rotary_dim, double theta) {
  rotate_half(dx, pos0, rotary_dim, theta, -1.0f);
}

}  // namespace mambalm::ops::cpu
