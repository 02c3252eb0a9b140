// The AVX-512 block of the Mamba-1 inference scan (selective_scan_block.h).
//
// The portable loop vectorises over the state index n, which at Mamba-1's N = 16 leaves, per
// channel and step, one horizontal sum of the products h C and a scalar SiLU with its own exp:
// about as many instructions as the 16 exps themselves. Here each channel's 16 products stay a
// vector, and after the block's 16 channels one transposing tree (4 levels of shuffles and adds)
// turns the 16 vectors into one vector of the 16 channels' sums; D u and the SiLU gate are then
// done 16 channels at a time. The exp is exp_fast's (cpu_ops.h) in 16 lanes, with the same
// clamp, zero below -87 and NaN passed through. The sums run in a different order from the
// portable loop's (docs/numerics.md, the selective_scan row).
#include "ops/cpu/selective_scan_block.h"

#include "ops/cpu/cpu_ops.h"

#if defined(__x86_64__)
// GCC 12 reports the _mm512_undefined_*() placeholders inside its own AVX-512 intrinsics as
// uninitialised when they are inlined into a function whose target is wider than -march (GCC bug
// 105593, fixed in GCC 13), as in gemv_x86.cpp: silenced for this file only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define MAMBALM_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

namespace mambalm::ops::cpu {
namespace {

// exp_fast (cpu_ops.h) in 16 lanes: 2^n p(r) with x = n ln2 + r, |r| <= ln2 / 2.
MAMBALM_AVX512 inline __m512 exp16(__m512 x) {
  using E = ExpFastConst;
  const __m512 hi = _mm512_set1_ps(E::kHi), lo = _mm512_set1_ps(E::kLo);
  const __m512 shifter = _mm512_set1_ps(E::kShifter);  // rounds to an integer
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(E::kLog2e), shifter);
  const __m512 n = _mm512_sub_ps(t, shifter);
  const __m512i ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(shifter));
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(E::kLn2Hi), xc);  // Cody-Waite, two steps
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(E::kLn2Lo), r);
  __m512 p = _mm512_set1_ps(E::kPoly[0]);
  for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(E::kPoly[i]));
  const __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23));
  __m512 result = _mm512_mul_ps(p, scale);
  result = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), result);  // 0 below -87 (NaN kept)
  return _mm512_mask_mov_ps(result, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN in, NaN out
}

// Lane i of the result = the sum of v[i]'s 16 lanes.
MAMBALM_AVX512 inline __m512 sum_each16(const __m512 (&v)[16]) {
  // pairs: per 128-bit quarter, [a0+a2, b0+b2, a1+a3, b1+b3]
  __m512 s2[8];
  for (int i = 0; i < 8; ++i)
    s2[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  // fours: per quarter, each of 4 vectors' sum over that quarter
  __m512 s4[4];
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(s2[2 * i]), b = _mm512_castps_pd(s2[2 * i + 1]);
    s4[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // eights: quarters 0+1 and 2+3 of 8 vectors
  __m512 s8[2];
  for (int i = 0; i < 2; ++i)
    s8[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s4[2 * i], s4[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_f32x4(s4[2 * i], s4[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  // all quarters: vectors 0-3, 4-7, 8-11, 12-15 in quarters 0..3
  return _mm512_add_ps(_mm512_shuffle_f32x4(s8[0], s8[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(s8[0], s8[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

}  // namespace

MAMBALM_AVX512 void selective_scan_block_avx512(const ScanBlock& s) {
  const int64_t N = s.N, nv = N / 16;
  for (int64_t t = 0; t < s.T; ++t) {
    const float* Bt = s.Bm + t * N;  // [N]
    const float* Ct = s.Cm + t * N;  // [N]
    const __m512 dl16 = _mm512_loadu_ps(s.delta + t * s.Di);  // [16] the block's delta_t
    const __m512 u16 = _mm512_loadu_ps(s.u + t * s.Di);       // [16]
    alignas(64) float dl[16], du[16];
    _mm512_store_ps(dl, dl16);
    _mm512_store_ps(du, _mm512_mul_ps(dl16, u16));
    __m512 prod[16];  // channel d's products h C, summed over the state rows
#pragma GCC unroll 16
    for (int d = 0; d < 16; ++d) {
      const __m512 dld = _mm512_set1_ps(dl[d]), dud = _mm512_set1_ps(du[d]);
      float* hd = s.h + d * N;
      const float* Ad = s.A + d * N;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t j = 0; j < nv; ++j) {
        const __m512 decay = exp16(_mm512_mul_ps(dld, _mm512_loadu_ps(Ad + 16 * j)));
        const __m512 hn = _mm512_fmadd_ps(decay, _mm512_loadu_ps(hd + 16 * j), _mm512_mul_ps(dud, _mm512_loadu_ps(Bt + 16 * j)));
        _mm512_storeu_ps(hd + 16 * j, hn);
        acc = _mm512_fmadd_ps(hn, _mm512_loadu_ps(Ct + 16 * j), acc);
      }
      prod[d] = acc;
    }
    __m512 out = sum_each16(prod);  // [16] sum_n h C per channel
    if (s.D) out = _mm512_fmadd_ps(_mm512_loadu_ps(s.D), u16, out);
    if (s.z) {  // * silu(z) = z / (1 + e^-z)
      const __m512 z16 = _mm512_loadu_ps(s.z + t * s.Di);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), z16));
      out = _mm512_mul_ps(out, _mm512_div_ps(z16, _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
    _mm512_storeu_ps(s.y + t * s.Di, out);
  }
}

}  // namespace mambalm::ops::cpu

#pragma GCC diagnostic pop
#endif
