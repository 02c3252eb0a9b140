// The integer Q8 prefill GEMM (ops/cpu/gemm_q8.h) against the scalar Q8 GEMV reference
// (gemv.cpp rows_q8_scalar: the same exact block sums, the same block order), on fresh random
// data, at shapes that leave partial tiles, partial panels and partial blocks; with any thread
// count; and with non-finite activations.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/gemm_q8.h"
#include "ops/cpu/gemv.h"
#include "ops/cpu/q8_format.h"
#include "test_util.h"

using namespace mambalm;
using namespace mambalm::ops::cpu;
using namespace mambalm::testing;

namespace {

struct Problem {
  int64_t M, N, K;
  std::vector<float> x, bias;
  std::vector<uint8_t> w;  // Q8 [N, K]
};

Problem random_problem(Rng& rng, int64_t M, int64_t N, int64_t K) {
  Problem p{M, N, K, std::vector<float>(static_cast<size_t>(M * K)), std::vector<float>(static_cast<size_t>(N)),
            std::vector<uint8_t>(static_cast<size_t>(N * q8_row_bytes(K)))};
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    for (auto& v : row) v = static_cast<float>(rng.uniform(-0.05, 0.05));
    quantize_row_q8(row.data(), K, p.w.data() + n * q8_row_bytes(K));
  }
  for (auto& v : p.x) v = static_cast<float>(rng.uniform(-3.0, 3.0));
  for (auto& v : p.bias) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  return p;
}

std::vector<float> gemm(GemmQ8Fn fn, const Problem& p, const float* bias) {
  std::vector<float> y(static_cast<size_t>(p.M * p.N), -7.0f);
  fn(p.x.data(), p.M, p.w.data(), p.N, p.K, bias, y.data());
  return y;
}

std::vector<float> reference(const Problem& p, const float* bias) {
  std::vector<float> y(static_cast<size_t>(p.M * p.N), -7.0f);
  gemv_rows_kernel(WeightFormat::Q8, Isa::Scalar)(p.w.data(), p.N, p.K, p.x.data(), p.M, bias, y.data(), 0, p.N);
  return y;
}

// Every kernel this machine can run (null where an ISA has none).
std::vector<GemmQ8Fn> kernels_here() {
  std::vector<GemmQ8Fn> out;
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Neon})
    if (isa_supported(isa))
      if (GemmQ8Fn fn = gemm_q8_kernel(isa)) out.push_back(fn);
  return out;
}

}  // namespace

TEST(CpuGemmQ8, NoKernelWithoutIntegerSimd) {
  EXPECT_EQ(gemm_q8_kernel(Isa::Scalar), nullptr);
#if defined(__x86_64__)
  EXPECT_NE(gemm_q8_kernel(Isa::Avx2), nullptr);
#endif
}

// Both sum the same exact int32 block sums block after block in fp32; they may differ by the
// rounding of (dw dx) s and its addition (fused or not): 2 ulp of sum |w x| per block is loose.
TEST(CpuGemmQ8, MatchesScalarReferenceAtPartialTilesPanelsAndBlocks) {
  const auto fns = kernels_here();
  if (fns.empty()) GTEST_SKIP() << "no integer Q8 GEMM on this CPU";
  Rng rng(test_seed());
  for (GemmQ8Fn fn : fns) {
    for (int64_t M : {1, 2, 3, 9, 10, 11, 40}) {
      for (int64_t N : {1, 15, 16, 17, 50}) {
        for (int64_t K : {1, 31, 32, 33, 200, 768}) {
          const Problem p = random_problem(rng, M, N, K);
          for (const float* bias : {static_cast<const float*>(nullptr), p.bias.data()}) {
            const auto got = gemm(fn, p, bias), want = reference(p, bias);
            std::vector<float> wd(static_cast<size_t>(K));
            for (int64_t n = 0; n < N; ++n) {
              dequantize_row_q8(p.w.data() + n * q8_row_bytes(K), K, wd.data());
              for (int64_t m = 0; m < M; ++m) {
                double mag = bias ? std::fabs(bias[n]) : 0.0;
                for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(wd[k]) * p.x[m * K + k]);
                const double bound = 2.0 * double(q8_blocks(K) + 1) * 0x1p-24 * mag;
                ASSERT_LE(std::fabs(double(got[m * N + n]) - want[m * N + n]), bound)
                    << "M=" << M << " N=" << N << " K=" << K << " at (" << m << ", " << n << ") bias "
                    << (bias != nullptr) << " seed " << test_seed();
              }
            }
          }
        }
      }
    }
  }
}

// With one-hot weight rows (w = 0.5 I) every y element is one product of one exact block sum,
// so the kernel must give the scalar reference's bits: this pins x's rounding (the kernel rounds
// x with its own SIMD loop) down to the last bit, including blocks of zeros, of values too small
// for a normal scale, of ties, of huge values, and the NaN that a block with inf or NaN spreads
// over its row.
TEST(CpuGemmQ8, OneHotWeightsGiveTheReferenceBits) {
  const auto fns = kernels_here();
  if (fns.empty()) GTEST_SKIP() << "no integer Q8 GEMM on this CPU";
  Rng rng(test_seed() + 3);
  for (int64_t K : {32, 100, 257}) {
    Problem p = random_problem(rng, 12, K, K);
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = 0; n < K; ++n) {
      std::fill(row.begin(), row.end(), 0.0f);
      row[n] = 0.5f;
      quantize_row_q8(row.data(), K, p.w.data() + n * q8_row_bytes(K));
    }
    auto block = [&](int64_t m, int64_t b) { return p.x.begin() + m * K + b * 32; };
    std::fill(block(1, 0), block(1, 1), 0.0f);                                    // zeros
    for (auto it = block(2, 0); it != block(2, 1); ++it) *it = static_cast<float>(rng.uniform(-1e-38, 1e-38));
    for (int i = 0; i < 32; ++i) block(3, 0)[i] = (i - 16) * 0.5f + (i == 0 ? 32767.0f * 0.5f : 0.0f);  // ties
    for (auto it = block(4, 0); it != block(4, 1); ++it) *it = static_cast<float>(rng.uniform(-3e38, 3e38));
    block(5, 0)[7] = std::numeric_limits<float>::infinity();
    block(6, 0)[31] = std::numeric_limits<float>::quiet_NaN();
    for (GemmQ8Fn fn : fns) {
      const auto got = gemm(fn, p, nullptr), want = reference(p, nullptr);
      for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(want[i])) {
          ASSERT_TRUE(std::isnan(got[i])) << "K=" << K << " element " << i;
        } else {
          ASSERT_EQ(got[i], want[i]) << "K=" << K << " element " << i << " seed " << test_seed();
        }
      }
    }
  }
}

// Panels are split over the threads and each y element is one thread's: any count, same bits.
TEST(CpuGemmQ8, SameBitsAtAnyThreadCount) {
  const auto fns = kernels_here();
  if (fns.empty()) GTEST_SKIP() << "no integer Q8 GEMM on this CPU";
  Rng rng(test_seed() + 1);
  const Problem p = random_problem(rng, 70, 300, 640);
  const int before = omp_get_max_threads();
  for (GemmQ8Fn fn : fns) {
    omp_set_num_threads(1);
    const auto one = gemm(fn, p, p.bias.data());
    for (int t : {2, 3, 5}) {
      omp_set_num_threads(t);
      const auto many = gemm(fn, p, p.bias.data());
      for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(many[i], one[i]) << t << " threads, element " << i;
    }
  }
  omp_set_num_threads(before);
}

// A block of x holding inf or NaN makes its row's outputs NaN (quantize_x_for_q8 gives it a NaN
// scale), as fp32 products would be, and leaves the other rows finite.
TEST(CpuGemmQ8, NonFiniteActivationsPoisonOnlyTheirRow) {
  const auto fns = kernels_here();
  if (fns.empty()) GTEST_SKIP() << "no integer Q8 GEMM on this CPU";
  Rng rng(test_seed() + 2);
  for (GemmQ8Fn fn : fns) {
    for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      Problem p = random_problem(rng, 12, 20, 100);
      p.x[4 * 100 + 70] = bad;  // row 4, block 2
      const auto y = gemm(fn, p, p.bias.data());
      for (int64_t m = 0; m < p.M; ++m)
        for (int64_t n = 0; n < p.N; ++n)
          EXPECT_EQ(std::isnan(y[m * p.N + n]), m == 4) << "bad " << bad << " at (" << m << ", " << n << ")";
    }
  }
}
