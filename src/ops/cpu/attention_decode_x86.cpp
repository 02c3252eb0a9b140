// The x86 (AVX2+FMA) decode attention over an F32 or BF16 KV cache, reading the cache in its
// memory order (attention_decode.h).
//
// The cache is [B, cap, Hkv, Dh]: one key's heads are adjacent, a head's keys are Hkv Dh apart.
// Reading head by head (attention.cpp's few-rows loops) fetches 128 of every 1,536 bytes per pass at Hkv 12,
// Dh 64 bf16, which an AMD Zen 3 core streams at ~9-10 GB/s against ~19 GB/s in order
// (bench/NOTES.md, "Decode attention in cache order"). So one task takes a chunk of kChunkKeys
// keys of one sequence and every head of it:
//   scores  S[j, h] = scale q_h . k_{j, h/group}, key by key, every head of a key before the next;
//   softmax per head over the chunk: m_h = max_j S, P = exp(S - m_h), l_h = sum_j P;
//   values  O_h = sum_j P[j, h] v_{j, h/group}, four keys at a time, every head of them.
// The chunks' partials merge as in split-K flash decoding: m = max_c m_c, and O, l are the sums
// of O_c, l_c scaled by exp(m_c - m); out_h = O_h / l_h. Chunks are fixed by the key count, not
// the thread count, and merged in order, so any thread count gives the same bits.
//
// Keys and values are read a block at a time as two vectors: 16 elements as two 8-lane vectors
// (AVX2), or 32 as two 16-lane vectors (AVX-512: one cache line of a BF16 row, half the
// instructions per key). A BF16 pair shares a 32-bit lane, so a left shift by 16 gives the even
// elements and a mask the odd ones (exact): the kernel works in that even/odd order within each
// block, q is permuted into it and the output back. F32 uses the natural order. Every product and
// sum is fp32; the sums run in a different order from the portable loops, and the two widths in
// different orders from each other (docs/numerics.md, the attention_decode rows).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/cpu/attention_decode.h"
#include "ops/cpu/cpu_ops.h"

#if defined(__x86_64__)
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own AVX-512 intrinsics as
// uninitialised when they are inlined into a function whose target is wider than -march (GCC bug
// 105593, fixed in GCC 13), as in gemv_x86.cpp: silenced for this file's kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define MAMBALM_AVX2 __attribute__((target("avx2,fma")))
#define MAMBALM_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma")))

namespace mambalm::ops::cpu {
namespace {

// Keys read ahead by software prefetch. The prefetchers alone left one thread reading a 113 MB
// run of caches at 7-11 GB/s (two threads 16-18); 1, 2, 3, 4 keys ahead: 12, 13.5, 11.5, 12
// (two threads 23, 22, 20, 19) GB/s, against ~19 GB/s for a plain in-order read (NOTES).
constexpr int64_t kPrefetchKeys = 2;

// Keys per task: 64 keys of Hkv 12, Dh 64 bf16 are 96 KiB of keys and 96 KiB of values, a
// stretch the prefetchers follow; a 768-key context is 12 tasks, which two threads share evenly.
constexpr int64_t kChunkKeys = 64;

// Elements p[0..16) as two 8-lane vectors in the kernel's order: natural for F32, even/odd for BF16.
MAMBALM_AVX2 inline void load16(const float* p, __m256& a, __m256& b) {
  a = _mm256_loadu_ps(p);
  b = _mm256_loadu_ps(p + 8);
}
MAMBALM_AVX2 inline void load16(const uint16_t* p, __m256& a, __m256& b) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  a = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));                                               // 0, 2, .., 14
  b = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));  // 1, 3, .., 15
}

// Elements p[0..32) as two 16-lane vectors in the AVX-512 kernel's order.
MAMBALM_AVX512 inline void load32(const float* p, __m512& a, __m512& b) {
  a = _mm512_loadu_ps(p);
  b = _mm512_loadu_ps(p + 16);
}
MAMBALM_AVX512 inline void load32(const uint16_t* p, __m512& a, __m512& b) {
  const __m512i v = _mm512_loadu_si512(p);
  a = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));                                               // 0, 2, .., 30
  b = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));  // 1, 3, .., 31
}

// A row of Dh (a multiple of the block) natural elements into the kernel's order, and back.
void to_kernel_order(const float* x, int64_t Dh, float* y, float /*kv*/, int64_t /*block*/) { std::copy(x, x + Dh, y); }
void to_kernel_order(const float* x, int64_t Dh, float* y, uint16_t /*kv*/, int64_t block) {
  const int64_t half = block / 2;
  for (int64_t c = 0; c < Dh; c += block)
    for (int64_t i = 0; i < half; ++i) y[c + i] = x[c + 2 * i], y[c + half + i] = x[c + 2 * i + 1];
}
void to_natural_order(const float* y, int64_t Dh, float* x, float /*kv*/, int64_t /*block*/) { std::copy(y, y + Dh, x); }
void to_natural_order(const float* y, int64_t Dh, float* x, uint16_t /*kv*/, int64_t block) {
  const int64_t half = block / 2;
  for (int64_t c = 0; c < Dh; c += block)
    for (int64_t i = 0; i < half; ++i) x[c + 2 * i] = y[c + i], x[c + 2 * i + 1] = y[c + half + i];
}

// The lane sums of eight accumulators as one vector: hadd pairs twice (each 128-bit half then
// holds its half's partial sums of heads 0-3 and 4-7), then add the halves.
MAMBALM_AVX2 inline __m256 lane_sums8(const __m256* acc) {
  const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
  const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

struct Shape {
  int64_t Hq, Hkv, Dh, group;
  int64_t ldk;  // elements from one key to the next: Hkv Dh
  int64_t hq8;  // Hq rounded up to 8: a score row's stride
};

// Softmax numerators per head over a chunk's scores s [n, hq8] (lanes are heads): m = the
// chunk's maximum, s = exp(s - m) in place, l = their sum.
void chunk_softmax(float* s, int64_t n, int64_t hq8, float* m, float* l) {
  for (int64_t h = 0; h < hq8; ++h) m[h] = s[h];
  for (int64_t j = 1; j < n; ++j)
#pragma omp simd
    for (int64_t h = 0; h < hq8; ++h) m[h] = std::max(m[h], s[j * hq8 + h]);
  for (int64_t h = 0; h < hq8; ++h) l[h] = 0.0f;
  for (int64_t j = 0; j < n; ++j)
#pragma omp simd
    for (int64_t h = 0; h < hq8; ++h) {
      const float e = exp_fast(s[j * hq8 + h] - m[h]);
      s[j * hq8 + h] = e;
      l[h] += e;
    }
}

// One chunk's partials: keys [0, n) at k and values at v (query head h reads k + j ldk + kv_off[h]),
// q [Hq, Dh] in kernel order; writes m [hq8], l [hq8] and o [Hq, Dh] (unnormalised, kernel
// order), with scores in s [n, hq8].
template <class KV>
MAMBALM_AVX2 void chunk_partials(const Shape& sh, const int64_t* kv_off, const float* q, const KV* k, const KV* v,
                                 int64_t n, float scale, float* s, float* m, float* l, float* o) {
  const int64_t Hq = sh.Hq, Dh = sh.Dh, ldk = sh.ldk, hq8 = sh.hq8;
  const __m256 vscale = _mm256_set1_ps(scale);
  // Scores, key by key; heads in groups of eight, one accumulator each (absent heads stay zero),
  // the eight chains interleaved chunk by chunk.
  const int64_t key_bytes = ldk * static_cast<int64_t>(sizeof(KV));
  for (int64_t j = 0; j < n; ++j) {
    const KV* kj = k + j * ldk;
    const char* ahead = reinterpret_cast<const char*>(kj + kPrefetchKeys * ldk);  // may pass the chunk: harmless
    for (int64_t b = 0; b < key_bytes; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    for (int64_t h0 = 0; h0 < Hq; h0 += 8) {
      const int64_t hn = std::min<int64_t>(8, Hq - h0);
      __m256 acc[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_ps();
      for (int64_t c = 0; c < Dh; c += 16) {
#pragma GCC unroll 8
        for (int r = 0; r < 8; ++r) {
          if (r >= hn) break;
          const float* qh = q + (h0 + r) * Dh + c;
          __m256 ka, kb;
          load16(kj + kv_off[h0 + r] + c, ka, kb);
          acc[r] = _mm256_fmadd_ps(ka, _mm256_loadu_ps(qh), acc[r]);
          acc[r] = _mm256_fmadd_ps(kb, _mm256_loadu_ps(qh + 8), acc[r]);
        }
      }
      _mm256_storeu_ps(s + j * hq8 + h0, _mm256_mul_ps(vscale, lane_sums8(acc)));
    }
  }
  chunk_softmax(s, n, hq8, m, l);
  // O_h = sum_j P[j, h] v_j: four keys a pass, every head of them, O in L1.
  std::fill(o, o + Hq * Dh, 0.0f);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const KV* vj = v + j * ldk;
    const float* pj = s + j * hq8;
    const char* ahead = reinterpret_cast<const char*>(vj + kPrefetchKeys * ldk);
    for (int64_t b = 0; b < 4 * key_bytes; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    for (int64_t h = 0; h < Hq; ++h) {
      const KV* v0 = vj + kv_off[h];
      const __m256 p0 = _mm256_broadcast_ss(pj + h), p1 = _mm256_broadcast_ss(pj + hq8 + h);
      const __m256 p2 = _mm256_broadcast_ss(pj + 2 * hq8 + h), p3 = _mm256_broadcast_ss(pj + 3 * hq8 + h);
      float* oh = o + h * Dh;
      for (int64_t c = 0; c < Dh; c += 16) {
        __m256 a0, b0, a1, b1, a2, b2, a3, b3;
        load16(v0 + c, a0, b0);
        load16(v0 + ldk + c, a1, b1);
        load16(v0 + 2 * ldk + c, a2, b2);
        load16(v0 + 3 * ldk + c, a3, b3);
        __m256 oa = _mm256_loadu_ps(oh + c), ob = _mm256_loadu_ps(oh + c + 8);
        const __m256 sa =
            _mm256_fmadd_ps(p0, a0, _mm256_fmadd_ps(p1, a1, _mm256_fmadd_ps(p2, a2, _mm256_mul_ps(p3, a3))));
        const __m256 sb =
            _mm256_fmadd_ps(p0, b0, _mm256_fmadd_ps(p1, b1, _mm256_fmadd_ps(p2, b2, _mm256_mul_ps(p3, b3))));
        oa = _mm256_add_ps(oa, sa);
        ob = _mm256_add_ps(ob, sb);
        _mm256_storeu_ps(oh + c, oa);
        _mm256_storeu_ps(oh + c + 8, ob);
      }
    }
  }
  for (; j < n; ++j) {
    const KV* vj = v + j * ldk;
    for (int64_t h = 0; h < Hq; ++h) {
      const KV* v0 = vj + kv_off[h];
      const __m256 p0 = _mm256_broadcast_ss(s + j * hq8 + h);
      float* oh = o + h * Dh;
      for (int64_t c = 0; c < Dh; c += 16) {
        __m256 a0, b0;
        load16(v0 + c, a0, b0);
        _mm256_storeu_ps(oh + c, _mm256_fmadd_ps(p0, a0, _mm256_loadu_ps(oh + c)));
        _mm256_storeu_ps(oh + c + 8, _mm256_fmadd_ps(p0, b0, _mm256_loadu_ps(oh + c + 8)));
      }
    }
  }
}

// chunk_partials with 32-element blocks in 16-lane vectors (Dh a multiple of 32): the same
// three phases, each accumulator folded to 8 lanes before the heads' lane sums.
MAMBALM_AVX512 inline __m256 fold16(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
// acc += q . k over one 32-element block (both in kernel order).
template <class KV>
MAMBALM_AVX512 inline void score_block(const float* q, const KV* k, __m512& acc) {
  __m512 ka, kb;
  load32(k, ka, kb);
  acc = _mm512_fmadd_ps(ka, _mm512_loadu_ps(q), acc);
  acc = _mm512_fmadd_ps(kb, _mm512_loadu_ps(q + 16), acc);
}
template <class KV>
MAMBALM_AVX512 void chunk_partials_avx512(const Shape& sh, const int64_t* kv_off, const float* q, const KV* k,
                                          const KV* v, int64_t n, float scale, float* s, float* m, float* l, float* o) {
  const int64_t Hq = sh.Hq, Dh = sh.Dh, ldk = sh.ldk, hq8 = sh.hq8;
  const __m256 vscale = _mm256_set1_ps(scale);
  const int64_t key_bytes = ldk * static_cast<int64_t>(sizeof(KV));
  for (int64_t j = 0; j < n; ++j) {
    const KV* kj = k + j * ldk;
    const char* ahead = reinterpret_cast<const char*>(kj + kPrefetchKeys * ldk);  // may pass the chunk: harmless
    for (int64_t b = 0; b < key_bytes; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    for (int64_t h0 = 0; h0 < Hq; h0 += 8) {
      const int64_t hn = std::min<int64_t>(8, Hq - h0);
      __m512 acc[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) acc[r] = _mm512_setzero_ps();
      for (int64_t c = 0; c < Dh; c += 32)
#pragma GCC unroll 8
        for (int r = 0; r < 8; ++r) {
          if (r >= hn) break;
          score_block(q + (h0 + r) * Dh + c, kj + kv_off[h0 + r] + c, acc[r]);
        }
      __m256 folded[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) folded[r] = fold16(acc[r]);
      _mm256_storeu_ps(s + j * hq8 + h0, _mm256_mul_ps(vscale, lane_sums8(folded)));
    }
  }
  chunk_softmax(s, n, hq8, m, l);
  std::fill(o, o + Hq * Dh, 0.0f);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const KV* vj = v + j * ldk;
    const float* pj = s + j * hq8;
    const char* ahead = reinterpret_cast<const char*>(vj + kPrefetchKeys * ldk);
    for (int64_t b = 0; b < 4 * key_bytes; b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
    for (int64_t h = 0; h < Hq; ++h) {
      const KV* v0 = vj + kv_off[h];
      const __m512 p0 = _mm512_set1_ps(pj[h]), p1 = _mm512_set1_ps(pj[hq8 + h]);
      const __m512 p2 = _mm512_set1_ps(pj[2 * hq8 + h]), p3 = _mm512_set1_ps(pj[3 * hq8 + h]);
      float* oh = o + h * Dh;
      for (int64_t c = 0; c < Dh; c += 32) {
        __m512 a0, b0, a1, b1, a2, b2, a3, b3;
        load32(v0 + c, a0, b0);
        load32(v0 + ldk + c, a1, b1);
        load32(v0 + 2 * ldk + c, a2, b2);
        load32(v0 + 3 * ldk + c, a3, b3);
        const __m512 sa =
            _mm512_fmadd_ps(p0, a0, _mm512_fmadd_ps(p1, a1, _mm512_fmadd_ps(p2, a2, _mm512_mul_ps(p3, a3))));
        const __m512 sb =
            _mm512_fmadd_ps(p0, b0, _mm512_fmadd_ps(p1, b1, _mm512_fmadd_ps(p2, b2, _mm512_mul_ps(p3, b3))));
        _mm512_storeu_ps(oh + c, _mm512_add_ps(_mm512_loadu_ps(oh + c), sa));
        _mm512_storeu_ps(oh + c + 16, _mm512_add_ps(_mm512_loadu_ps(oh + c + 16), sb));
      }
    }
  }
  for (; j < n; ++j) {
    const KV* vj = v + j * ldk;
    for (int64_t h = 0; h < Hq; ++h) {
      const KV* v0 = vj + kv_off[h];
      const __m512 p0 = _mm512_set1_ps(s[j * hq8 + h]);
      float* oh = o + h * Dh;
      for (int64_t c = 0; c < Dh; c += 32) {
        __m512 a0, b0;
        load32(v0 + c, a0, b0);
        _mm512_storeu_ps(oh + c, _mm512_fmadd_ps(p0, a0, _mm512_loadu_ps(oh + c)));
        _mm512_storeu_ps(oh + c + 16, _mm512_fmadd_ps(p0, b0, _mm512_loadu_ps(oh + c + 16)));
      }
    }
  }
}

struct ScratchTag {};
struct PartialsTag {};
struct FirstTaskTag {};
struct HeadOffsetsTag {};

template <class KV>
void decode_in_cache_order(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                           float scale, bool avx512, Tensor& out) {
  const int64_t block = avx512 ? 32 : 16;  // elements per kernel block (the even/odd order's span)
  const int64_t B = q.dim(0), Hq = q.dim(1), Dh = q.dim(2);
  const int64_t cap = k_cache.dim(1), Hkv = k_cache.dim(2);
  const Shape sh{Hq, Hkv, Dh, Hq / Hkv, Hkv * Dh, (Hq + 7) / 8 * 8};
  const int32_t* len = lengths.data<int32_t>();
  const KV* kc = static_cast<const KV*>(k_cache.raw());
  const KV* vc = static_cast<const KV*>(v_cache.raw());
  // Tasks: (sequence, chunk) in order; first[b] is sequence b's first task.
  int64_t* first = thread_buffer<int64_t, FirstTaskTag>(B + 1);
  first[0] = 0;
  for (int64_t b = 0; b < B; ++b)
    first[b + 1] = first[b] + (std::max<int64_t>(len[b], 0) + kChunkKeys - 1) / kChunkKeys;
  const int64_t tasks = first[B];
  const int64_t part = Hq * Dh + 2 * sh.hq8;  // a task's partials: o [Hq, Dh], m [hq8], l [hq8]
  float* parts = thread_buffer<float, PartialsTag>(tasks * part);
  const float* qp = q.f32();
  int64_t* kv_off = thread_buffer<int64_t, HeadOffsetsTag>(Hq);  // query head h reads KV head h / group
  for (int64_t h = 0; h < Hq; ++h) kv_off[h] = (h / sh.group) * Dh;
  int64_t work = 0;
  for (int64_t b = 0; b < B; ++b) work += std::max<int64_t>(len[b], 0) * Hq * Dh;
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && work > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = std::upper_bound(first, first + B + 1, t) - first - 1;
    const int64_t j0 = (t - first[b]) * kChunkKeys, n = std::min<int64_t>(kChunkKeys, len[b] - j0);
    float* buf = thread_buffer<float, ScratchTag>(Hq * Dh + kChunkKeys * sh.hq8);
    float* qo = buf;               // q of sequence b [Hq, Dh], kernel order
    float* s = buf + Hq * Dh;      // scores [n, hq8]
    for (int64_t h = 0; h < Hq; ++h) to_kernel_order(qp + (b * Hq + h) * Dh, Dh, qo + h * Dh, KV{}, block);
    float* o = parts + t * part;
    const int64_t base = (b * cap + j0) * Hkv * Dh;
    if (avx512)
      chunk_partials_avx512(sh, kv_off, qo, kc + base, vc + base, n, scale, s, o + Hq * Dh, o + Hq * Dh + sh.hq8, o);
    else
      chunk_partials(sh, kv_off, qo, kc + base, vc + base, n, scale, s, o + Hq * Dh, o + Hq * Dh + sh.hq8, o);
  }
  // Merge each sequence's chunks in order.
  float* op = out.f32();
  float* row = thread_buffer<float, ScratchTag>(Dh);  // the tasks are done with it
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h) {
      float* dst = op + (b * Hq + h) * Dh;
      if (first[b + 1] == first[b]) {  // no visible key (not reachable through the ops' checks): a zero row
        std::fill(dst, dst + Dh, 0.0f);
        continue;
      }
      float mx = -INFINITY;
      for (int64_t t = first[b]; t < first[b + 1]; ++t) mx = std::max(mx, parts[t * part + Hq * Dh + h]);
      float sum = 0.0f;
      std::fill(row, row + Dh, 0.0f);
      for (int64_t t = first[b]; t < first[b + 1]; ++t) {
        const float* o = parts + t * part;
        const float w = std::exp(o[Hq * Dh + h] - mx);
        sum += w * o[Hq * Dh + sh.hq8 + h];
        for (int64_t d = 0; d < Dh; ++d) row[d] += w * o[h * Dh + d];
      }
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < Dh; ++d) row[d] *= inv;
      to_natural_order(row, Dh, dst, KV{}, block);
    }
  }
}

}  // namespace

void attention_decode_x86(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& lengths,
                          float scale, bool avx512, Tensor& out) {
  if (k_cache.dtype() == DType::BF16) decode_in_cache_order<uint16_t>(q, k_cache, v_cache, lengths, scale, avx512, out);
  else decode_in_cache_order<float>(q, k_cache, v_cache, lengths, scale, avx512, out);
}

}  // namespace mambalm::ops::cpu
#pragma GCC diagnostic pop
#endif
