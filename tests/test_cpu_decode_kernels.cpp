// The CPU decode kernels (ops/cpu/gemv.h): every SIMD variant this machine supports, selected
// explicitly, against the scalar reference; the Q8 block format (ops/cpu/q8_format.h); and
// linear / embedding / convert with BF16 and Q8 weights against the same products on the
// weights widened to F32.
#include <gtest/gtest.h>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/gemv.h"
#include "ops/cpu/q8_format.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::ops::cpu;
using namespace mambalm::testing;

namespace {

const Isa kSimd[] = {Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Neon};
const WeightFormat kFormats[] = {WeightFormat::F32, WeightFormat::BF16, WeightFormat::Q8};

const char* format_name(WeightFormat f) { return f == WeightFormat::F32 ? "f32" : f == WeightFormat::BF16 ? "bf16" : "q8"; }

// Weights [N, K] in `f` from fp32 values (which the caller chooses representable when it wants
// exact arithmetic).
std::vector<uint8_t> pack(WeightFormat f, const std::vector<float>& w, int64_t N, int64_t K) {
  std::vector<uint8_t> out(static_cast<size_t>(N * weight_row_bytes(f, K)));
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* row = out.data() + n * weight_row_bytes(f, K);
    const float* src = w.data() + n * K;
    if (f == WeightFormat::F32) std::memcpy(row, src, static_cast<size_t>(K) * 4);
    if (f == WeightFormat::BF16)
      for (int64_t k = 0; k < K; ++k) reinterpret_cast<uint16_t*>(row)[k] = f32_to_bf16(src[k]);
    if (f == WeightFormat::Q8) quantize_row_q8(src, K, row);
  }
  return out;
}

std::vector<float> run(WeightFormat f, Isa isa, const std::vector<uint8_t>& w, int64_t N, int64_t K,
                       const std::vector<float>& x, int64_t M, const float* bias) {
  std::vector<float> y(static_cast<size_t>(M * N), -7.0f);
  GemvRowsFn fn = gemv_rows_kernel(f, isa);
  EXPECT_NE(fn, nullptr);
  if (fn) fn(w.data(), N, K, x.data(), M, bias, y.data(), 0, N);
  return y;
}

std::vector<float> rounded_to_bf16(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(x[i]));
  return r;
}

const std::vector<int64_t> kKs = {1, 7, 16, 31, 32, 33, 48, 63, 64, 65, 100, 130, 768};

// Small integers in every format and every product: all arithmetic is exact, so every variant
// must give the scalar reference's numbers bit for bit, whatever its summation order. Any
// indexing slip (a wrong element, a missed tail, a read past K) changes an integer.
TEST(CpuGemv, EverySimdVariantEqualsScalarOnExactData) {
  Rng rng(test_seed());
  int tested = 0;
  for (Isa isa : kSimd) {
    if (!isa_supported(isa)) continue;
    for (WeightFormat f : kFormats) {
      for (int64_t K : kKs) {
        for (int64_t M : {1, 3, 8}) {
          const int64_t N = 13;
          std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(M * K)), bias(static_cast<size_t>(N));
          // Position of k in its 32-block and that block's last position.
          auto pos = [](int64_t k) { return k % kQ8Block; };
          auto last = [K](int64_t k) { return std::min(kQ8Block, K - (k - k % kQ8Block)) - 1; };
          for (int64_t i = 0; i < N * K; ++i) {
            // Q8 stores integers exactly when each block's largest |w| is 127 (scale 1). The
            // block's last weight is 0 (unless it is also its first), for x's sake below.
            const int64_t k = i % K;
            w[i] = pos(k) == 0 ? 127.0f
                   : pos(k) == last(k) ? 0.0f
                                       : static_cast<float>(static_cast<int>(rng.next_u64() % 255) - 127);
          }
          for (int64_t i = 0; i < M * K; ++i) {
            // Against Q8 weights x is rounded to int16 per block (quantize_x_for_q8), exactly when
            // the block's largest |x| is 32767 (scale 1): at its last position, where w is 0, so
            // that every sum stays below 2^24 and exact in fp32 (a block of one element has
            // 127 * 32767, once a row). The other formats keep x in [-3, 3].
            const int64_t k = i % K;
            x[i] = f == WeightFormat::Q8 && pos(k) == last(k) ? 32767.0f
                   : f == WeightFormat::Q8 ? static_cast<float>(static_cast<int>(rng.next_u64() % 255) - 127)
                                           : static_cast<float>(static_cast<int>(rng.next_u64() % 7) - 3);
          }
          for (auto& v : bias) v = static_cast<float>(static_cast<int>(rng.next_u64() % 9) - 4);
          const auto packed = pack(f, w, N, K);
          for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
            const auto want = run(f, Isa::Scalar, packed, N, K, x, M, b);
            const auto got = run(f, isa, packed, N, K, x, M, b);
            for (size_t i = 0; i < want.size(); ++i)
              ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " " << format_name(f) << " K=" << K << " M=" << M << " at " << i
                                         << " seed " << test_seed();
          }
          ++tested;
        }
      }
    }
  }
  std::printf("[info] %d (isa, format, K, M) cases on this CPU; active isa %s\n", tested, isa_name(active_isa()));
  if (tested == 0) GTEST_SKIP() << "no SIMD variant supported here";
}

// Random data: each variant within the rounding bound of a reordered fp32 sum of the scalar
// reference, |got - want| <= 2 K eps sum_k |w_k x_k| (two orders, each within K eps of exact).
// The vdpbf16ps variant rounds x to bf16 first: its reference is the scalar kernel on that x.
TEST(CpuGemv, EverySimdVariantWithinRoundingOfScalarOnRandomData) {
  Rng rng(test_seed() + 1);
  for (Isa isa : kSimd) {
    if (!isa_supported(isa)) continue;
    for (WeightFormat f : kFormats) {
      for (int64_t K : {33, 100, 768, 2048}) {
        const int64_t N = 21, M = 2;
        std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(M * K)), bias(static_cast<size_t>(N));
        for (auto& v : w) v = static_cast<float>(rng.uniform() * 2.0 - 1.0) * 0.05f;
        for (auto& v : x) v = static_cast<float>(rng.uniform() * 2.0 - 1.0) * 3.0f;
        for (auto& v : bias) v = static_cast<float>(rng.uniform());
        const auto packed = pack(f, w, N, K);
        const bool rounds_x = isa == Isa::Avx512Bf16 && f == WeightFormat::BF16;
        const auto x_ref = rounds_x ? rounded_to_bf16(x) : x;
        const auto want = run(f, Isa::Scalar, packed, N, K, x_ref, M, bias.data());
        const auto got = run(f, isa, packed, N, K, x, M, bias.data());
        // sum |w x| with the weights as stored (dequantised), plus the bias.
        std::vector<float> wd(static_cast<size_t>(K));
        for (int64_t n = 0; n < N; ++n) {
          const uint8_t* row = packed.data() + n * weight_row_bytes(f, K);
          if (f == WeightFormat::F32) std::memcpy(wd.data(), row, static_cast<size_t>(K) * 4);
          if (f == WeightFormat::BF16)
            for (int64_t k = 0; k < K; ++k) wd[k] = bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
          if (f == WeightFormat::Q8) dequantize_row_q8(row, K, wd.data());
          for (int64_t m = 0; m < M; ++m) {
            double mag = std::fabs(bias[n]);
            for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(wd[k]) * x_ref[m * K + k]);
            const double bound = 2.0 * double(K + 1) * 0x1p-24 * mag;
            EXPECT_LE(std::fabs(double(got[m * N + n]) - want[m * N + n]), bound)
                << isa_name(isa) << " " << format_name(f) << " K=" << K << " row " << n << " seed " << test_seed();
          }
        }
      }
    }
  }
}

// The threaded driver splits rows into ranges: the result equals one call over all rows.
TEST(CpuGemv, ThreadedDriverEqualsOneRangeCall) {
  const int64_t N = 3001, K = 96, M = 2;
  Tensor wt = random_tensor({N, K}), xt = random_tensor({M, K});
  std::vector<float> w(wt.f32(), wt.f32() + N * K), x(xt.f32(), xt.f32() + M * K);
  for (WeightFormat f : kFormats) {
    const auto packed = pack(f, w, N, K);
    const auto want = run(f, active_isa(), packed, N, K, x, M, nullptr);
    std::vector<float> got(static_cast<size_t>(M * N));
    gemv(f, active_isa(), packed.data(), N, K, x.data(), M, nullptr, got.data());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << format_name(f) << " at " << i;
  }
}

// The rate of each kernel on one thread, in weight bytes per CPU-second of this thread (CPU time
// rather than wall time: the development machine is shared, bench/NOTES.md "CPU decode
// kernels"). A 64 MiB f32 matrix (8192 x 2048), past the caches. Printed, not asserted; the
// outputs are compared with the scalar kernel's so that the test can still fail.
TEST(CpuGemv, SpeedPerIsaAndFormatOneThread) {
  const int64_t N = 8192, K = 2048;
  Tensor wt = random_tensor({N, K}, -0.05f, 0.05f), xt = random_tensor({1, K});
  std::vector<float> w(wt.f32(), wt.f32() + N * K), x(xt.f32(), xt.f32() + K);
  auto cpu_now = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  };
  for (WeightFormat f : kFormats) {
    const auto packed = pack(f, w, N, K);
    const auto want = run(f, Isa::Scalar, packed, N, K, x, 1, nullptr);
    for (Isa isa : kSimd) {
      if (!isa_supported(isa)) continue;
      std::vector<float> y(static_cast<size_t>(N));
      double best = 1e30;
      for (int rep = 0; rep < 5; ++rep) {
        const double t0 = cpu_now();
        gemv_rows_kernel(f, isa)(packed.data(), N, K, x.data(), 1, nullptr, y.data(), 0, N);
        best = std::min(best, cpu_now() - t0);
      }
      std::printf("[time] gemv %s %-10s %8.2f ms  %6.2f GB/s per CPU-second\n", format_name(f), isa_name(isa), 1e3 * best,
                  static_cast<double>(packed.size()) / best / 1e9);
      const bool rounds_x = isa == Isa::Avx512Bf16 && f == WeightFormat::BF16;
      double err = 0, mag = 0;
      for (int64_t n = 0; n < N; ++n) {
        err = std::max(err, std::fabs(double(y[n]) - want[n]));
        mag = std::max(mag, std::fabs(double(want[n])));
      }
      EXPECT_LE(err, (rounds_x ? 1e-2 : 1e-5) * mag) << format_name(f) << " " << isa_name(isa);
    }
  }
}

// The documented layout (docs/file-formats.md): per block an fp16 scale >= max|w| / 127, then 32
// int8 values round(w / d); a partial last block padded with zeros; |w - d q| <= d / 2.
TEST(Q8Format, LayoutAndRoundTripBound) {
  const int64_t K = 70;  // two full blocks and one of 6
  Tensor wt = random_tensor({K}, -0.3f, 0.3f);
  const float* w = wt.f32();
  std::vector<uint8_t> row(static_cast<size_t>(q8_row_bytes(K)));
  EXPECT_EQ(q8_row_bytes(K), 3 * 34);
  quantize_row_q8(w, K, row.data());
  std::vector<float> back(static_cast<size_t>(K));
  dequantize_row_q8(row.data(), K, back.data());
  for (int64_t b = 0; b < 3; ++b) {
    float amax = 0;
    for (int64_t k = b * 32; k < std::min<int64_t>(K, b * 32 + 32); ++k) amax = std::max(amax, std::fabs(w[k]));
    uint16_t d16;
    std::memcpy(&d16, row.data() + b * 34, 2);
    const float d = f16_to_f32(d16);
    EXPECT_GE(d, amax / 127.0f) << "block " << b;  // the smallest fp16 at or above amax / 127
    EXPECT_LT(f16_to_f32(static_cast<uint16_t>(d16 - 1)), amax / 127.0f) << "block " << b;
    const auto* q = reinterpret_cast<const int8_t*>(row.data() + b * 34 + 2);
    for (int64_t i = 0; i < 32; ++i) {
      const int64_t k = b * 32 + i;
      if (k >= K) {
        EXPECT_EQ(q[i], 0) << "padding at " << k;
        continue;
      }
      EXPECT_EQ(q[i], static_cast<int8_t>(std::nearbyint(w[k] / d))) << k;
      EXPECT_LE(std::fabs(back[k] - w[k]), 0.5f * d * (1 + 1e-6f)) << k;
    }
  }
  const float zeros[5] = {};
  std::vector<uint8_t> zrow(static_cast<size_t>(q8_row_bytes(5)), 0xff);
  quantize_row_q8(zeros, 5, zrow.data());
  for (uint8_t byte : zrow) EXPECT_EQ(byte, 0);  // an all-zero block: scale 0, values 0
}

// The activations' rounding for Q8 weights: per 32-block scale max|x| / 32767 in fp32, values
// nearbyint(x / d) in [-32767, 32767], |x - d q| <= d / 2, zeros past K; a block with inf or NaN
// gives scale NaN (so that its products are NaN, as in fp32), an all-zero block scale 0.
TEST(Q8Format, ActivationRoundingBoundsAndNonFinite) {
  const int64_t K = 70;
  Tensor xt = random_tensor({K}, -4.0f, 4.0f);
  const float* x = xt.f32();
  std::vector<float> d(3);
  std::vector<int16_t> q(96, 99);
  quantize_x_for_q8(x, K, d.data(), q.data());
  std::vector<float> back(static_cast<size_t>(K));
  round_x_for_q8(x, K, back.data());
  for (int64_t b = 0; b < 3; ++b) {
    float amax = 0;
    for (int64_t k = b * 32; k < std::min<int64_t>(K, b * 32 + 32); ++k) amax = std::max(amax, std::fabs(x[k]));
    EXPECT_EQ(d[b], amax / 32767.0f) << "block " << b;
    int extreme = 0;
    for (int64_t i = 0; i < 32; ++i) {
      const int64_t k = b * 32 + i;
      if (k >= K) {
        EXPECT_EQ(q[k], 0) << "padding at " << k;
        continue;
      }
      EXPECT_GE(q[k], -32767);
      // d / 2, plus the fp32 roundings of x / d and of d q: a few ulps of x
      EXPECT_LE(std::fabs(back[k] - x[k]), 0.5f * d[b] + 1e-6f * std::fabs(x[k])) << k;
      EXPECT_EQ(back[k], d[b] * static_cast<float>(q[k])) << k;
      extreme += std::abs(q[k]) == 32767;
    }
    EXPECT_GE(extreme, 1) << "the block's largest |x| maps to 32767, block " << b;
  }
  float bad[40];
  for (int i = 0; i < 40; ++i) bad[i] = 0.5f;
  bad[3] = std::numeric_limits<float>::infinity();
  bad[35] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> db(2);
  std::vector<int16_t> qb(64, 99);
  quantize_x_for_q8(bad, 40, db.data(), qb.data());
  EXPECT_TRUE(std::isnan(db[0]) && std::isnan(db[1]));
  for (int16_t v : qb) EXPECT_EQ(v, 0);
  const float zeros[5] = {};
  quantize_x_for_q8(zeros, 5, db.data(), qb.data());
  EXPECT_EQ(db[0], 0.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(qb[i], 0);
  // through linear: a NaN in x gives NaN outputs on the decode and the prefill path alike
  const int64_t N = 6;
  Tensor w32 = random_tensor({N, 40}, -0.1f, 0.1f), w = Tensor::empty({N, 40}, DType::Q8);
  ops::convert(w32, w);
  for (int64_t M : {1, 12}) {
    Tensor xs = random_tensor({M, 40}), y = Tensor::empty({M, N});
    xs.f32()[(M - 1) * 40 + 7] = std::numeric_limits<float>::quiet_NaN();
    ops::linear(xs, w, nullptr, y);
    for (int64_t n = 0; n < N; ++n) EXPECT_TRUE(std::isnan(y.f32()[(M - 1) * N + n])) << "M=" << M << " n=" << n;
    if (M > 1) {
      EXPECT_FALSE(std::isnan(y.f32()[0])) << "other rows stay finite";
    }
  }
}

Tensor widened(const Tensor& w) {
  Tensor out = Tensor::empty(w.shape());
  ops::convert(w, out);
  return out;
}

// ops::linear with BF16 / Q8 weights, decode rows (GEMV) and prefill rows (widened blocks +
// sgemm, or oneDNN's bf16 GEMM), against ops::linear with those weights widened to F32 (the
// sgemm path at M > 8).
TEST(CpuLowPrecisionOps, LinearMatchesWidenedWeights) {
  for (DType dt : {DType::BF16, DType::Q8}) {
    for (int64_t M : {1, 5, 8, 9, 40}) {
      const int64_t N = 300, K = 200;
      Tensor w32 = random_tensor({N, K}, -0.1f, 0.1f), x = random_tensor({M, K}), bias = random_tensor({N});
      Tensor w = Tensor::empty({N, K}, dt);
      ops::convert(w32, w);
      Tensor wide = widened(w);
      Tensor got = Tensor::empty({M, N}), want = Tensor::empty({M, N});
      ops::linear(x, w, &bias, got);
      Tensor xr = Tensor::zeros({std::max<int64_t>(M, 9), K});  // the F32 reference on the sgemm path (M > 8)
      std::memcpy(xr.raw(), x.raw(), x.nbytes());
      // where the prefill runs oneDNN's bf16 GEMM, it and the decode rows' vdpbf16ps GEMV round x
      // to bf16: the reference gets the same x (its products are then the same exact bf16 x bf16
      // products, summed in another order)
      if (ops::cpu::prefill_rounds_x_to_bf16(w)) xr = xr.to(DType::BF16).to(DType::F32);
      // against Q8 weights x is rounded to int16 per block on both paths (quantize_x_for_q8)
      if (dt == DType::Q8)
        for (int64_t m = 0; m < M; ++m) round_x_for_q8(xr.f32() + m * K, K, xr.f32() + m * K);
      Tensor yr = Tensor::empty({xr.dim(0), N});
      ops::linear(xr, wide, &bias, yr);
      std::memcpy(want.raw(), yr.raw(), want.nbytes());
      expect_close(std::string(dtype_name(dt)) + " M=" + std::to_string(M), got, want, 1e-6);
    }
  }
}

TEST(CpuLowPrecisionOps, EmbeddingReadsWidenedRows) {
  for (DType dt : {DType::BF16, DType::Q8}) {
    const int64_t V = 50, D = 72;
    Tensor t32 = random_tensor({V, D});
    Tensor table = Tensor::empty({V, D}, dt);
    ops::convert(t32, table);
    Tensor wide = widened(table);
    Tensor ids = Tensor::empty({2, 3}, DType::I32);
    for (int i = 0; i < 6; ++i) ids.data<int32_t>()[i] = (i * 17 + 3) % V;
    Tensor got = Tensor::empty({2, 3, D}), want = Tensor::empty({2, 3, D});
    ops::embedding(ids, table, got);
    ops::embedding(ids, wide, want);
    EXPECT_EQ(max_abs_diff(got, want), 0.0) << dtype_name(dt);
  }
}

TEST(CpuLowPrecisionOps, Q8TensorStorageAndErrors) {
  Tensor q = Tensor::empty({3, 40}, DType::Q8);
  EXPECT_EQ(q.nbytes(), size_t{3 * 2 * 34});
  Tensor row = q.slice0(1, 2);
  EXPECT_EQ(static_cast<uint8_t*>(row.raw()) - static_cast<uint8_t*>(q.raw()), 68);
  EXPECT_THROW(q.to(DType::F32), Error);
  EXPECT_THROW(q.fill(0.0f), Error);
  EXPECT_THROW(q.reshape({40, 3}), Error);
}

}  // namespace
