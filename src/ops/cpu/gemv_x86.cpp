// The x86-64 decode GEMV kernels (gemv.h): AVX2+FMA, AVX-512 and AVX512-BF16. Each function
// carries its own target attribute, so this file compiles to the same code whatever the global
// -march is, and only runs where cpu_features.h says the CPU has the instructions.
// Every kernel streams one weight row at a time with several independent accumulators (to hide
// the FMA latency) and dots it with the M rows of x while it is in L1. F32 and BF16 weights are
// widened to fp32 exactly before multiplying (except in the vdpbf16ps kernel, which rounds x);
// Q8 weights meet x rounded to int16 per block (gemv.h x_as_q8) in integer multiply-adds.
#include "ops/cpu/gemv.h"

#if defined(__x86_64__)
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own AVX-512 intrinsics as
// uninitialised when they are inlined into a function whose target is wider than -march
// (GCC bug 105593, fixed in GCC 13): silenced for this file's kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "ops/cpu/q8_format.h"

#define MAMBALM_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MAMBALM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define MAMBALM_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

namespace mambalm::ops::cpu {
namespace {

// Calls dot(row n, x row m) for the rows of one range and writes y with the bias.
template <class Dot>
inline void for_rows(const void* w, int64_t N, int64_t K, int64_t row_bytes, const float* x, int64_t M,
                     const float* bias, float* y, int64_t n0, int64_t n1, Dot dot) {
  for (int64_t n = n0; n < n1; ++n) {
    const auto* wr = static_cast<const uint8_t*>(w) + n * row_bytes;
    for (int64_t m = 0; m < M; ++m) y[m * N + n] = dot(wr, x + m * K) + (bias ? bias[n] : 0.0f);
  }
}

// Software prefetch of the bf16 and q8 weight streams prefetch_bytes() ahead (past a row's end
// it touches the next row, which is next in memory), one prefetch per 64-byte line. Decode at 1
// thread on an AMD EPYC (Zen 3; bench/NOTES.md, "Prefetch 1 KiB ahead"), 0 / 1 KiB / 2 KiB
// ahead: llama-134m bf16 60-63 / 64-67 / 54-59 tokens/s, q8 82-88 / 92-99 / 88-104,
// mamba2-130m q8 75-88 / 92-95 / 91-106; a 128 MiB bf16 matrix read 8.5-9.1 / 10.7-12.7 GB/s
// on an Intel Xeon (Sapphire Rapids). On AMD's AVX-512 cores the hardware prefetchers do better
// alone: on a Zen 4 EPYC 2 KiB ahead cost bf16 decode 20-30%, and on a Zen 5 EPYC llama-134m at 1
// thread decoded bf16 at 93.9-127.9 tokens/s without against 79.7-101.9 with 1 KiB, q8 at
// 129.5-159.9 against 122.7-134.8 (bench/NOTES.md, "Software prefetch on Zen 5"). So the
// default is 1 KiB, and none on an AMD CPU with AVX-512. The f32 kernels prefetch nothing ahead:
// their weights stay views of the file on 4 KiB pages, where 1 KiB ahead cost hybrid-24l f32
// decode 5% (26-29 -> 25-28 tokens/s).
// MAMBALM_GEMV_PREFETCH_BYTES (read once; 0 turns it off) overrides.
int64_t prefetch_bytes() {
  static const int64_t bytes = [] {
    const char* v = std::getenv("MAMBALM_GEMV_PREFETCH_BYTES");
    if (v) return std::clamp<int64_t>(std::strtoll(v, nullptr, 10), 0, 1 << 16);
    return __builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f") ? int64_t{0} : int64_t{1024};
  }();
  return bytes;
}
// Whether the bf16 kernels and the f32 kernel touch their weight lines with a
// non-temporal hint (bf16 at the prefetch distance; f32 at 0: just before its loads). On an
// AMD CPU the L3 is filled with what L2 evicts, so a weight stream read once a token cycles the
// whole L3 and pushes out what the next token reads again: the KV cache, the SSM states, the activations. Lines fetched with
// PREFETCHNTA are not kept there. Zen 5 EPYC, decode after a 512-token prompt, 4 models at 1
// and 2 threads, the binaries before and after alternated three times (bench/NOTES.md, "Weights
// past the L3"): faster in 20 of 24 pairs with bf16 weights (median 0.96-1.44x per row), 16 of
// 24 with f32 (0.97-1.14x), against 10 of 24 for the unchanged Q8 kernels (the machine's noise).
// Q8 with NTA moved both ways (down to 0.76x at 2 threads), so Q8 keeps the plain hint.
// Default: on AMD CPUs with AVX-512 (the only ones measured); MAMBALM_GEMV_PREFETCH_NTA=0/1
// overrides.
bool nta_weights() {
  static const bool nta = [] {
    if (const char* v = std::getenv("MAMBALM_GEMV_PREFETCH_NTA")) return std::strcmp(v, "0") != 0;
    return __builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f");
  }();
  return nta;
}

// Lines prefetched ahead of p (p + prefetch_bytes() onwards); with 0 bytes it touches p itself,
// which the loads that follow bring in anyway (with `nta`, not into the L3).
template <int Lines>
inline void prefetch_ahead(const void* p, int64_t bytes, bool nta = false) {
  const char* at = static_cast<const char*>(p) + bytes;
  if (nta) {
    for (int i = 0; i < Lines; ++i) _mm_prefetch(at + 64 * i, _MM_HINT_NTA);
  } else {
    for (int i = 0; i < Lines; ++i) _mm_prefetch(at + 64 * i, _MM_HINT_T0);
  }
}

MAMBALM_AVX2 inline float q8_scale(const uint8_t* blk) {
  uint16_t d16;
  std::memcpy(&d16, blk, 2);
  return _cvtsh_ss(d16);
}

// ---- AVX2 + FMA ------------------------------------------------------------------------------

MAMBALM_AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

MAMBALM_AVX2 inline __m256 bf16x8_avx2(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

// Elements of a row before its first 64-byte boundary (0 when it starts on one), for the AVX-512
// kernels that read the rest line by line (see dot_bf16_dp). Rows whose address is not even a
// multiple of the element size stay as they are.
inline int64_t elements_to_line(const void* p, int64_t elem_bytes, int64_t K) {
  const uintptr_t mis = reinterpret_cast<uintptr_t>(p) & 63;
  if (mis == 0 || mis % static_cast<uintptr_t>(elem_bytes) != 0) return 0;
  return std::min<int64_t>(K, static_cast<int64_t>((64 - mis) / static_cast<uintptr_t>(elem_bytes)));
}

// 256-bit loads, two to a line, whatever the row's alignment; AVX-512 CPUs take this kernel too
// (gemv_kernels_avx512). With `nta` (nta_weights()) every line is touched by PREFETCHNTA just
// before its loads, as the bf16 kernels do.
MAMBALM_AVX2 float dot_f32_avx2(const float* w, const float* x, int64_t K) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const bool nta = nta_weights();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    if (nta) prefetch_ahead<2>(w + k, 0, true);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
  }
  for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
  float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; k < K; ++k) s += w[k] * x[k];
  return s;
}

MAMBALM_AVX2 float dot_bf16_avx2(const uint16_t* w, const float* x, int64_t K) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t pf = prefetch_bytes();
  const bool nta = nta_weights();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    prefetch_ahead<1>(w + k, pf, nta);
    a0 = _mm256_fmadd_ps(bf16x8_avx2(w + k), _mm256_loadu_ps(x + k), a0);
    a1 = _mm256_fmadd_ps(bf16x8_avx2(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
    a2 = _mm256_fmadd_ps(bf16x8_avx2(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
    a3 = _mm256_fmadd_ps(bf16x8_avx2(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
  }
  for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(bf16x8_avx2(w + k), _mm256_loadu_ps(x + k), a0);
  float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; k < K; ++k) {
    const uint32_t bits = static_cast<uint32_t>(w[k]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    s += f * x[k];
  }
  return s;
}

// One block's sum_i qw_i qx_i as 8 lanes of 4 products each, converted to fp32: exact, since
// |lane| <= 4 * 127 * 32767 < 2^24. The weights are sign-extended to int16 and madd multiplies
// pairs into int32.
MAMBALM_AVX2 inline __m256 q8x16_block_avx2(const uint8_t* blk, const int16_t* qx) {
  const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
  const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18)));
  const __m256i p0 = _mm256_madd_epi16(w0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx)));
  const __m256i p1 = _mm256_madd_epi16(w1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + 16)));
  return _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1));
}

// A Q8 row against one row of x as rounded by x_as_q8 (blocks zero-padded past K, so every block
// is whole): per block (dw dx) times its integer sum, into four accumulators (independent chains).
MAMBALM_AVX2 float dot_q8x16_avx2(const uint8_t* row, const int16_t* qx, const float* dx, int64_t blocks) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t pf = prefetch_bytes();
  int64_t b = 0;
  for (; b + 4 <= blocks; b += 4) {  // 136 bytes: up to three lines, two prefetched
    const uint8_t* blk = row + b * kQ8BlockBytes;
    prefetch_ahead<2>(blk, pf);
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk) * dx[b]), q8x16_block_avx2(blk, qx + b * kQ8Block), a0);
    a1 = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk + kQ8BlockBytes) * dx[b + 1]),
                         q8x16_block_avx2(blk + kQ8BlockBytes, qx + (b + 1) * kQ8Block), a1);
    a2 = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk + 2 * kQ8BlockBytes) * dx[b + 2]),
                         q8x16_block_avx2(blk + 2 * kQ8BlockBytes, qx + (b + 2) * kQ8Block), a2);
    a3 = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk + 3 * kQ8BlockBytes) * dx[b + 3]),
                         q8x16_block_avx2(blk + 3 * kQ8BlockBytes, qx + (b + 3) * kQ8Block), a3);
  }
  for (; b < blocks; ++b) {
    const uint8_t* blk = row + b * kQ8BlockBytes;
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(q8_scale(blk) * dx[b]), q8x16_block_avx2(blk, qx + b * kQ8Block), a0);
  }
  return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

MAMBALM_AVX2 void rows_f32_avx2(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias,
                                float* y, int64_t n0, int64_t n1) {
  for_rows(w, N, K, K * 4, x, M, bias, y, n0, n1,
           [K](const uint8_t* r, const float* xm) { return dot_f32_avx2(reinterpret_cast<const float*>(r), xm, K); });
}
MAMBALM_AVX2 void rows_bf16_avx2(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias,
                                 float* y, int64_t n0, int64_t n1) {
  for_rows(w, N, K, K * 2, x, M, bias, y, n0, n1,
           [K](const uint8_t* r, const float* xm) { return dot_bf16_avx2(reinterpret_cast<const uint16_t*>(r), xm, K); });
}
MAMBALM_AVX2 void rows_q8_avx2(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias,
                               float* y, int64_t n0, int64_t n1) {
  q8_rows(w, N, K, x, M, bias, y, n0, n1, dot_q8x16_avx2);
}

// ---- AVX-512 ---------------------------------------------------------------------------------

MAMBALM_AVX512 inline __mmask16 tail16(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

MAMBALM_AVX512 inline __m512 bf16x16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

MAMBALM_AVX512 float dot_bf16_avx512(const uint16_t* w, const float* x, int64_t K) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t pf = prefetch_bytes();
  const bool nta = nta_weights();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    prefetch_ahead<2>(w + k, pf, nta);
    a0 = _mm512_fmadd_ps(bf16x16(w + k), _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(bf16x16(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
    a2 = _mm512_fmadd_ps(bf16x16(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
    a3 = _mm512_fmadd_ps(bf16x16(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
  }
  for (; k + 16 <= K; k += 16) a0 = _mm512_fmadd_ps(bf16x16(w + k), _mm512_loadu_ps(x + k), a0);
  if (k < K) {
    const __mmask16 m = tail16(K - k);
    const __m512 wt = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + k)), 16));
    a1 = _mm512_fmadd_ps(wt, _mm512_maskz_loadu_ps(m, x + k), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// One block's sum_i qw_i qx_i as 16 lanes of 2 products each, converted to fp32: exact, since
// |lane| <= 2 * 127 * 32767 < 2^24. Half the instructions of the AVX2 block (one widening, one
// madd, one conversion), which on a Zen 5 leaves the loop room to keep the loads in flight.
MAMBALM_AVX512 inline __m512 q8x16_block_avx512(const uint8_t* blk, const int16_t* qx) {
  const __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)));
  return _mm512_cvtepi32_ps(_mm512_madd_epi16(w, _mm512_loadu_si512(qx)));
}

// dot_q8x16_avx2 with 512-bit blocks.
MAMBALM_AVX512 float dot_q8x16_avx512(const uint8_t* row, const int16_t* qx, const float* dx, int64_t blocks) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t pf = prefetch_bytes();
  int64_t b = 0;
  for (; b + 4 <= blocks; b += 4) {
    const uint8_t* blk = row + b * kQ8BlockBytes;
    prefetch_ahead<2>(blk, pf);
    a0 = _mm512_fmadd_ps(_mm512_set1_ps(q8_scale(blk) * dx[b]), q8x16_block_avx512(blk, qx + b * kQ8Block), a0);
    a1 = _mm512_fmadd_ps(_mm512_set1_ps(q8_scale(blk + kQ8BlockBytes) * dx[b + 1]),
                         q8x16_block_avx512(blk + kQ8BlockBytes, qx + (b + 1) * kQ8Block), a1);
    a2 = _mm512_fmadd_ps(_mm512_set1_ps(q8_scale(blk + 2 * kQ8BlockBytes) * dx[b + 2]),
                         q8x16_block_avx512(blk + 2 * kQ8BlockBytes, qx + (b + 2) * kQ8Block), a2);
    a3 = _mm512_fmadd_ps(_mm512_set1_ps(q8_scale(blk + 3 * kQ8BlockBytes) * dx[b + 3]),
                         q8x16_block_avx512(blk + 3 * kQ8BlockBytes, qx + (b + 3) * kQ8Block), a3);
  }
  for (; b < blocks; ++b) {
    const uint8_t* blk = row + b * kQ8BlockBytes;
    a0 = _mm512_fmadd_ps(_mm512_set1_ps(q8_scale(blk) * dx[b]), q8x16_block_avx512(blk, qx + b * kQ8Block), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

MAMBALM_AVX512 void rows_bf16_avx512(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias,
                                     float* y, int64_t n0, int64_t n1) {
  for_rows(w, N, K, K * 2, x, M, bias, y, n0, n1,
           [K](const uint8_t* r, const float* xm) { return dot_bf16_avx512(reinterpret_cast<const uint16_t*>(r), xm, K); });
}
MAMBALM_AVX512 void rows_q8_avx512(const void* w, int64_t N, int64_t K, const float* x, int64_t M, const float* bias,
                                   float* y, int64_t n0, int64_t n1) {
  q8_rows(w, N, K, x, M, bias, y, n0, n1, dot_q8x16_avx512);
}

// ---- AVX512-BF16: x rounded to bf16 once per call, pairs multiplied by vdpbf16ps -------------

// Weights read in place from a safetensors file sit wherever the file's header ends (the format
// aligns the data to 8 bytes): 24 bytes past a cache line in the benchmark's files, so every
// 64-byte load of such a row would span two lines. Here the row's head up to a line boundary
// goes through one masked load, so that the 64-byte loads after it each read one line. Zen 5,
// 230 MB of rows 24 bytes past a line: 24.6-26.9 GB/s before, 25.2-30.5 after (29.0-32.3 on a
// line), 2 threads 32.3-41.2 before, 35.4-46.0 after.
MAMBALM_AVX512BF16 float dot_bf16_dp(const uint16_t* w, const uint16_t* xb, int64_t K) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  const int64_t pf = prefetch_bytes();
  const bool nta = nta_weights();
  int64_t k = elements_to_line(w, 2, K);
  if (k > 0) {
    const __mmask32 m = static_cast<__mmask32>((1u << k) - 1u);
    a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_maskz_loadu_epi16(m, w), (__m512bh)_mm512_maskz_loadu_epi16(m, xb));
  }
  for (; k + 64 <= K; k += 64) {
    prefetch_ahead<2>(w + k, pf, nta);
    a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(xb + k));
    a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + k + 32), (__m512bh)_mm512_loadu_si512(xb + k + 32));
  }
  for (; k < K; k += 32) {  // zero-filled tail lanes add nothing
    const int64_t len = std::min<int64_t>(32, K - k);
    const __mmask32 m = static_cast<__mmask32>(len == 32 ? 0xffffffffu : (1u << len) - 1u);
    a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi16(m, w + k), (__m512bh)_mm512_maskz_loadu_epi16(m, xb + k));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

MAMBALM_AVX512BF16 void rows_bf16_avx512bf16(const void* w, int64_t N, int64_t K, const float* x, int64_t M,
                                             const float* bias, float* y, int64_t n0, int64_t n1) {
  const uint16_t* xb = x_as_bf16(x, M * K);  // per thread, cheap next to the rows it streams
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* wr = static_cast<const uint16_t*>(w) + n * K;
    for (int64_t m = 0; m < M; ++m) y[m * N + n] = dot_bf16_dp(wr, xb + m * K, K) + (bias ? bias[n] : 0.0f);
  }
}

}  // namespace

GemvKernels gemv_kernels_avx2() { return {rows_f32_avx2, rows_bf16_avx2, rows_q8_avx2}; }
// F32 weights take the AVX2 kernel on AVX-512 CPUs too (bench/NOTES.md, "F32 rows in 256-bit
// loads"): a 512-bit kernel that read each row line by line after a masked head matched it on
// freshly cached files but fell to 20 GB/s against its 27-28 on a page cache that had aged for an
// hour (mamba-130m's products, a Zen 5 core, interleaved token by token).
GemvKernels gemv_kernels_avx512() { return {rows_f32_avx2, rows_bf16_avx512, rows_q8_avx512}; }
GemvKernels gemv_kernels_avx512bf16() { return {nullptr, rows_bf16_avx512bf16, nullptr}; }

}  // namespace mambalm::ops::cpu

#pragma GCC diagnostic pop

#else  // not x86-64: no kernels here

namespace mambalm::ops::cpu {
GemvKernels gemv_kernels_avx2() { return {}; }
GemvKernels gemv_kernels_avx512() { return {}; }
GemvKernels gemv_kernels_avx512bf16() { return {}; }
}  // namespace mambalm::ops::cpu

#endif
