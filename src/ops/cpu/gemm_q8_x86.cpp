// The integer Q8 prefill GEMM of gemm_q8.h for x86-64: AVX2 tiles, and AVX512-VNNI tiles where
// the CPU has them. Each kernel carries its own target attribute, so this file compiles to the
// same code whatever the global -march is.
#include "ops/cpu/gemm_q8.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/tensor.h"
#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/q8_format.h"

#if defined(__x86_64__)
// GCC 12 warns about the _mm512_undefined_*() placeholders of its own AVX-512 intrinsics when
// they are inlined into a function whose target is wider than -march (GCC bug 105593, as in
// gemv_x86.cpp): silenced for this file's kernels only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define MAMBALM_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MAMBALM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

namespace mambalm::ops::cpu {
namespace {

constexpr int kPairs = kQ8Block / 2;  // pairs of k per block

struct PanelPairsTag {};
struct PanelScalesTag {};
struct XScalesTag {};
struct XValuesTag {};

// Columns [n0, n0 + Cols) of w packed: pairs [blocks, 16 pairs, Cols columns] (each int32 holds
// q[2p] in its low and q[2p + 1] in its high int16, as madd pairs them), scales [blocks, Cols]
// (the blocks' dw). Columns past N are zeros.
template <int64_t Cols>
void pack_panel(const uint8_t* w, int64_t N, int64_t K, int64_t n0, int32_t* pairs, float* scales) {
  const int64_t blocks = q8_blocks(K), row_bytes = q8_row_bytes(K);
  for (int64_t c = 0; c < Cols; ++c) {
    const int64_t n = n0 + c;
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t* dst = pairs + b * kPairs * Cols + c;
      if (n >= N) {
        for (int p = 0; p < kPairs; ++p) dst[p * Cols] = 0;
        scales[b * Cols + c] = 0.0f;
        continue;
      }
      const uint8_t* blk = w + n * row_bytes + b * kQ8BlockBytes;
      uint16_t d16;
      std::memcpy(&d16, blk, 2);
      scales[b * Cols + c] = f16_to_f32(d16);
      const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
      for (int p = 0; p < kPairs; ++p)
        dst[p * Cols] = static_cast<int32_t>(static_cast<uint16_t>(int16_t{q[2 * p]})) |
                         static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(int16_t{q[2 * p + 1]})) << 16);
    }
  }
}

// quantize_x_for_q8 of one row of x, 32 values a pass: the same bits (tests/test_cpu_gemm_q8.cpp).
// The scalar loop took 0.76 ms for 512 x 768 values, ~6% of the product at that shape.
MAMBALM_AVX2 void round_x_row(const float* x, int64_t K, float* scales, int16_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 max_finite = _mm256_set1_ps(std::numeric_limits<float>::max());
  const __m256 lo = _mm256_set1_ps(-32767.0f), hi = _mm256_set1_ps(32767.0f);
  const int64_t whole = K / kQ8Block;
  for (int64_t b = 0; b < whole; ++b) {
    __m256 v[4], amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + b * kQ8Block + 8 * i);
      const __m256 a = _mm256_and_ps(v[i], abs_mask);
      bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, max_finite, _CMP_NLE_UQ));  // inf or NaN
      amax = _mm256_max_ps(amax, a);
    }
    int16_t* qb = q + b * kQ8Block;
    if (_mm256_movemask_ps(bad)) {  // as quantize_x_for_q8: scale NaN, values 0
      scales[b] = std::numeric_limits<float>::quiet_NaN();
      std::memset(qb, 0, kQ8Block * sizeof(int16_t));
      continue;
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 32767.0f;
    const float inv = d >= std::numeric_limits<float>::min() ? 1.0f / d : 0.0f;
    scales[b] = d;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i r[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 t = _mm256_round_ps(_mm256_mul_ps(v[i], vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(t, lo), hi));
    }
    // packs works within 128-bit halves: the permute puts the 16 values back in order.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb), _mm256_permute4x64_epi64(_mm256_packs_epi32(r[0], r[1]), 0xd8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + 16),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(r[2], r[3]), 0xd8));
  }
  if (whole * kQ8Block < K)  // the last, partial block (zero-padded)
    quantize_x_for_q8(x + whole * kQ8Block, K - whole * kQ8Block, scales + whole, q + whole * kQ8Block);
}

// acc += v (vpaddd) in inline assembly: with the intrinsic GCC 12 wrote each sum to another
// register and copied it back (6 moves a pair of k). Without them 1536 x 768 x 512 went from 101
// to 120 GFLOP/s on a Zen 3, where the vector pipes then bound the loop (full unrolling instead
// spilled every product to the stack; bench/NOTES.md "Integer Q8 prefill GEMM").
MAMBALM_AVX2 inline void add_in_place(__m256i& acc, __m256i v) { asm("vpaddd %1, %0, %0" : "+x"(acc) : "x"(v)); }

// y[r, n0 + c] = tile[r, c] + bias[n0 + c] for the tile's R rows of kCols values and the panel's
// first `cols` columns (the last panel may be partial).
void write_tile(const float* tile, int R, int64_t tile_cols, const float* bias, float* y, int64_t N, int64_t n0,
                int64_t cols) {
  for (int r = 0; r < R; ++r) {
    const float* t = tile + r * tile_cols;
    float* yr = y + r * N + n0;
    for (int64_t c = 0; c < cols; ++c) yr[c] = t[c] + (bias ? bias[n0 + c] : 0.0f);
  }
}

// The tiles of one ISA: kRows rows of x times the kCols columns of a panel. tile<R> computes y
// rows [0, R) x columns [n0, n0 + cols) (y, qx and dx start at the tile's first row; qx / dx are
// x's rounded rows, blocks * 32 int16 and blocks scales each).

// AVX2: 3 rows x 16 columns, 12 accumulators + 2 weights + 1 x of the 16 ymm registers.
// vpmaddwd then vpaddd (AVX2 has no fused integer multiply-add).
struct Avx2Tiles {
  static constexpr int64_t kCols = 16;
  static constexpr int kRows = 3;
  template <int R>
  MAMBALM_AVX2 static void tile(const int32_t* pairs, const float* scales, int64_t blocks, const int16_t* qx,
                                const float* dx, const float* bias, float* y, int64_t N, int64_t n0, int64_t cols) {
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      // One block: 16 pairs of k, each multiplied into 8 + 8 columns of R rows. |sum| <= 32 *
      // 127 * 32767 < 2^31, exact in int32.
      __m256i s[R][2];
      for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
      const int32_t* pb = pairs + b * kPairs * kCols;
      for (int p = 0; p < kPairs; ++p) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + p * kCols));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + p * kCols + 8));
        for (int r = 0; r < R; ++r) {
          int32_t pair;  // x[2p] and x[2p + 1] of row r
          std::memcpy(&pair, qx + (r * blocks + b) * kQ8Block + 2 * p, 4);
          const __m256i xv = _mm256_set1_epi32(pair);
          add_in_place(s[r][0], _mm256_madd_epi16(w0, xv));
          add_in_place(s[r][1], _mm256_madd_epi16(w1, xv));
        }
      }
      // (dw dx) times the block's sum, added in fp32 block after block.
      const __m256 d0 = _mm256_loadu_ps(scales + b * kCols), d1 = _mm256_loadu_ps(scales + b * kCols + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 dxr = _mm256_set1_ps(dx[r * blocks + b]);
        acc[r][0] = _mm256_fmadd_ps(_mm256_mul_ps(d0, dxr), _mm256_cvtepi32_ps(s[r][0]), acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(_mm256_mul_ps(d1, dxr), _mm256_cvtepi32_ps(s[r][1]), acc[r][1]);
      }
    }
    alignas(32) float out[R][kCols];
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(out[r], acc[r][0]);
      _mm256_store_ps(out[r] + 8, acc[r][1]);
    }
    write_tile(out[0], R, kCols, bias, y, N, n0, cols);
  }
};

// acc += the pairwise products of w and x (vpdpwssd), in inline assembly: with the intrinsic,
// GCC 12 copied every accumulator to another register and back around each one (two moves a
// multiply-add), with the tied operand it keeps them in place.
MAMBALM_VNNI inline void dpwssd(__m512i& acc, __m512i w, __m512i x) {
  asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
}

// AVX512-VNNI: 6 rows x 32 columns, 24 accumulators + 2 weights + 1 x of the 32 zmm registers;
// vpdpwssd multiplies the pairs and adds them into the int32 sums in one instruction. Same
// integers, same fp32 steps as the AVX2 tiles.
struct Vnni512Tiles {
  static constexpr int64_t kCols = 32;
  static constexpr int kRows = 6;
  template <int R>
  MAMBALM_VNNI static void tile(const int32_t* pairs, const float* scales, int64_t blocks, const int16_t* qx,
                                const float* dx, const float* bias, float* y, int64_t N, int64_t n0, int64_t cols) {
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t b = 0; b < blocks; ++b) {
      __m512i s[R][2];
      for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm512_setzero_si512();
      const int32_t* pb = pairs + b * kPairs * kCols;
      for (int p = 0; p < kPairs; ++p) {
        const __m512i w0 = _mm512_loadu_si512(pb + p * kCols);
        const __m512i w1 = _mm512_loadu_si512(pb + p * kCols + 16);
        for (int r = 0; r < R; ++r) {
          int32_t pair;
          std::memcpy(&pair, qx + (r * blocks + b) * kQ8Block + 2 * p, 4);
          const __m512i xv = _mm512_set1_epi32(pair);
          dpwssd(s[r][0], w0, xv);
          dpwssd(s[r][1], w1, xv);
        }
      }
      const __m512 d0 = _mm512_loadu_ps(scales + b * kCols), d1 = _mm512_loadu_ps(scales + b * kCols + 16);
      for (int r = 0; r < R; ++r) {
        const __m512 dxr = _mm512_set1_ps(dx[r * blocks + b]);
        acc[r][0] = _mm512_fmadd_ps(_mm512_mul_ps(d0, dxr), _mm512_cvtepi32_ps(s[r][0]), acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(_mm512_mul_ps(d1, dxr), _mm512_cvtepi32_ps(s[r][1]), acc[r][1]);
      }
    }
    alignas(64) float out[R][kCols];
    for (int r = 0; r < R; ++r) {
      _mm512_store_ps(out[r], acc[r][0]);
      _mm512_store_ps(out[r] + 16, acc[r][1]);
    }
    write_tile(out[0], R, kCols, bias, y, N, n0, cols);
  }
};

// The last M % kRows rows: tile<R> for R = rest.
template <class Tiles, int R>
void tail_rows(int64_t rest, const int32_t* pairs, const float* scales, int64_t blocks, const int16_t* qx,
               const float* dx, const float* bias, float* y, int64_t N, int64_t n0, int64_t cols) {
  if constexpr (R > 0) {
    if (rest == R) return Tiles::template tile<R>(pairs, scales, blocks, qx, dx, bias, y, N, n0, cols);
    tail_rows<Tiles, R - 1>(rest, pairs, scales, blocks, qx, dx, bias, y, N, n0, cols);
  }
}

template <class Tiles>
void gemm_q8_panels(const float* x, int64_t M, const void* w, int64_t N, int64_t K, const float* bias, float* y) {
  constexpr int64_t C = Tiles::kCols;
  constexpr int R = Tiles::kRows;
  const int64_t blocks = q8_blocks(K);
  // x rounded once for every panel: dx [M, blocks], qx [M, blocks * 32] (zeros past K).
  float* dx = thread_buffer<float, XScalesTag>(M * blocks);
  int16_t* qx = thread_buffer<int16_t, XValuesTag>(M * blocks * kQ8Block);
#pragma omp parallel for schedule(static) if (M * K > kParallelMin)
  for (int64_t m = 0; m < M; ++m) round_x_row(x + m * K, K, dx + m * blocks, qx + m * blocks * kQ8Block);

  // Each panel is packed once (C rows of w) and meets every row of x: packing is 1/M of the
  // products. Panels are split over the threads; every y element is one thread's, in one order.
  const int64_t panels = (N + C - 1) / C;
#pragma omp parallel for schedule(static) if (panels > 1 && M * N * K > kParallelMin)
  for (int64_t pi = 0; pi < panels; ++pi) {
    int32_t* pairs = thread_buffer<int32_t, PanelPairsTag>(blocks * kPairs * C);
    float* scales = thread_buffer<float, PanelScalesTag>(blocks * C);
    const int64_t n0 = pi * C, cols = std::min(C, N - n0);
    pack_panel<C>(static_cast<const uint8_t*>(w), N, K, n0, pairs, scales);
    int64_t m = 0;
    for (; m + R <= M; m += R)
      Tiles::template tile<R>(pairs, scales, blocks, qx + m * blocks * kQ8Block, dx + m * blocks, bias, y + m * N, N,
                              n0, cols);
    tail_rows<Tiles, R - 1>(M - m, pairs, scales, blocks, qx + m * blocks * kQ8Block, dx + m * blocks, bias, y + m * N,
                            N, n0, cols);
  }
}

}  // namespace

GemmQ8Fn gemm_q8_kernel(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return gemm_q8_panels<Avx2Tiles>;
    // Without VNNI the AVX-512 variants run the AVX2 tiles (a 512-bit vpmaddwd + vpaddd kernel
    // was not written: no such CPU was at hand to measure it against sgemm's AVX-512 kernels).
    case Isa::Avx512:
    case Isa::Avx512Bf16: return cpu_has_avx512_vnni() ? gemm_q8_panels<Vnni512Tiles> : gemm_q8_panels<Avx2Tiles>;
    default: return nullptr;
  }
}

}  // namespace mambalm::ops::cpu

#pragma GCC diagnostic pop

#else

namespace mambalm::ops::cpu {
GemmQ8Fn gemm_q8_kernel(Isa) { return nullptr; }
}  // namespace mambalm::ops::cpu

#endif
