// CPU ops: causal grouped-query attention (vs float64, MHA and GQA, KV-prefix calls equal the
// last rows of a full call, large scores, long S), one-query decode over ragged caches (every
// kernel variant, several thread counts), a BF16 KV cache (append, decode and prefix reads
// against F32 on the same values) and rotary embedding (vs float64, partial rotary_dim,
// position offset), plus dispatch error paths.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cpu/attention_decode.h"
#include "ops/cpu/cpu_features.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"
#include "test_util.h"

using namespace mambalm;
using mambalm::testing::max_abs_diff;
using mambalm::testing::random_tensor;
using mambalm::testing::relative_l2;
using mambalm::testing::expect_close;
using mambalm::testing::time_slice;

namespace {

// Float64 causal attention straight from the definition in ops.h; lse2 (F64 [B, Hq, T], optional)
// receives log2 sum_j exp(scale q.k_j).
Tensor naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, Tensor* lse2 = nullptr) {
  const int64_t B = q.dim(0), T = q.dim(1), Hq = q.dim(2), Dh = q.dim(3);
  const int64_t S = k.dim(1), Hkv = k.dim(2);
  Tensor out = Tensor::zeros(q.shape(), DType::F64);
  std::vector<double> w(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = h / (Hq / Hkv);
      for (int64_t i = 0; i < T; ++i) {
        const int64_t pos = S - T + i;
        const float* qi = q.f32() + ((b * T + i) * Hq + h) * Dh;
        double mx = -INFINITY;
        for (int64_t j = 0; j <= pos; ++j) {
          const float* kj = k.f32() + ((b * S + j) * Hkv + kh) * Dh;
          double s = 0;
          for (int64_t d = 0; d < Dh; ++d) s += double(qi[d]) * kj[d];
          w[size_t(j)] = s * scale;
          mx = std::max(mx, w[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= pos; ++j) sum += (w[size_t(j)] = std::exp(w[size_t(j)] - mx));
        if (lse2) lse2->data<double>()[(b * Hq + h) * T + i] = (mx + std::log(sum)) / std::log(2.0);
        double* o = out.data<double>() + ((b * T + i) * Hq + h) * Dh;
        for (int64_t j = 0; j <= pos; ++j) {
          const float* vj = v.f32() + ((b * S + j) * Hkv + kh) * Dh;
          for (int64_t d = 0; d < Dh; ++d) o[d] += w[size_t(j)] / sum * vj[d];
        }
      }
    }
  return out;
}

void check_attention(int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t Dh,
                     float amp, const char* tag, double tol = 1e-6) {
  Tensor q = random_tensor({B, T, Hq, Dh}, -amp, amp);
  Tensor k = random_tensor({B, S, Hkv, Dh}, -amp, amp);
  Tensor v = random_tensor({B, S, Hkv, Dh});
  Tensor out = Tensor::empty(q.shape()), lse2 = Tensor::empty({B, Hq, T});
  const float scale = 1.0f / std::sqrt(float(Dh));
  ops::attention(q, k, v, nullptr, scale, out, &lse2);
  for (int64_t i = 0; i < out.numel(); ++i) ASSERT_TRUE(std::isfinite(out.f32()[i])) << tag << " " << i;
  char name[128];
  std::snprintf(name, sizeof name, "attention %s T=%lld S=%lld Hq=%lld Hkv=%lld", tag, (long long)T,
                (long long)S, (long long)Hq, (long long)Hkv);
  Tensor want_lse2 = Tensor::zeros({B, Hq, T}, DType::F64);
  expect_close(name, out, naive_attention(q, k, v, scale, &want_lse2), tol);
  expect_close((std::string(name) + " lse2").c_str(), lse2, want_lse2, tol);
}

}  // namespace

TEST(OpsAttention, MhaMatchesNaiveDouble) { check_attention(2, 19, 19, 4, 4, 16, 1.0f, "MHA"); }
TEST(OpsAttention, GqaMatchesNaiveDouble) { check_attention(2, 23, 23, 8, 2, 32, 1.0f, "GQA"); }
TEST(OpsAttention, MultiQueryMatchesNaiveDouble) { check_attention(1, 9, 9, 4, 1, 8, 1.0f, "MQA"); }
TEST(OpsAttention, LargeScoresNeedMaxSubtraction) {
  // scores up to ~ 16 * 36 / 4 = 144: exp would overflow fp32 without the max subtraction;
  // the softmax is then nearly one-hot, so a small score error moves the output more.
  check_attention(1, 12, 12, 2, 2, 16, 6.0f, "large scores", 1e-5);
}
TEST(OpsAttention, PrefixOnlyDecodeRowMatchesNaive) { check_attention(2, 1, 37, 4, 2, 16, 1.0f, "decode"); }
TEST(OpsAttention, LongKeysUseSeveralQueryBlocks) {
  // S = 20000 makes the query block shorter than 64, so T = 70 spans several blocks. The output
  // is an average of ~S random values, so it shrinks like 1/sqrt(S) while the rounding of the
  // S-term sums does not: the relative error grows with S (see docs/numerics.md).
  check_attention(1, 70, 20000, 2, 1, 8, 1.0f, "long S", 2e-5);
}

TEST(OpsAttention, PrefixCallEqualsLastRowsOfFullCall) {
  const int64_t B = 2, S = 29, T = 7, Hq = 6, Hkv = 3, Dh = 16;
  Tensor q_full = random_tensor({B, S, Hq, Dh});
  Tensor k = random_tensor({B, S, Hkv, Dh});
  Tensor v = random_tensor({B, S, Hkv, Dh});
  const float scale = 0.25f;
  Tensor out_full = Tensor::empty(q_full.shape());
  ops::attention(q_full, k, v, nullptr, scale, out_full);
  Tensor q = time_slice(q_full, S - T, S);
  Tensor out = Tensor::empty(q.shape());
  ops::attention(q, k, v, nullptr, scale, out);
  expect_close("attention prefix call vs last rows of full", out, time_slice(out_full, S - T, S), 1e-6);
}

// attention_decode: one query per sequence against its own cache prefix (ragged lengths, GQA, a
// capacity above every length), with every kernel variant this machine runs, at 1, 2 and 3
// OpenMP threads. Each equals the float64 definition over the same (for BF16, widened) cache
// within 3e-6 (docs/numerics.md: the portable loops of an unvectorised sanitizer build sum the
// up to 300 P V terms in one fp32 accumulator), and the threaded runs equal the one-thread run
// bit for bit (tasks fixed by the shape, a fixed summation order). Lengths reach 300: past ~100 tokens 2-thread decode used to
// collapse (issue 21: BLAS inside the OpenMP region), and the work is above the one-thread
// threshold.
namespace {
void check_decode(int64_t Hq, int64_t Hkv, int64_t Dh, const std::vector<int32_t>& lens, DType cache_dtype) {
  const int64_t B = static_cast<int64_t>(lens.size());
  const int64_t cap = *std::max_element(lens.begin(), lens.end()) + 11;
  const std::string shape = "Hq " + std::to_string(Hq) + " Hkv " + std::to_string(Hkv) + " Dh " + std::to_string(Dh) +
                            (cache_dtype == DType::BF16 ? " BF16" : " F32");
  Tensor q = random_tensor({B, Hq, Dh}, -2.0f, 2.0f);
  Tensor kc = random_tensor({B, cap, Hkv, Dh}, -2.0f, 2.0f).to(cache_dtype);  // [B, cap, Hkv, Dh]
  Tensor vc = random_tensor({B, cap, Hkv, Dh}).to(cache_dtype);
  const Tensor kc32 = kc.to(DType::F32), vc32 = vc.to(DType::F32);  // the same values, widened
  Tensor lengths = Tensor::empty({B}, DType::I32);
  std::memcpy(lengths.raw(), lens.data(), lens.size() * sizeof(int32_t));
  Tensor want = Tensor::zeros({B, Hq, Dh}, DType::F64);
  const float scale = 1.0f / std::sqrt(float(Dh));
  for (int64_t b = 0; b < B; ++b) {
    auto prefix = [&](const Tensor& c) {
      return c.slice0(b, b + 1).reshape({cap, Hkv, Dh}).slice0(0, lens[b]).reshape({1, lens[b], Hkv, Dh});
    };
    Tensor w = naive_attention(q.slice0(b, b + 1).reshape({1, 1, Hq, Dh}), prefix(kc32), prefix(vc32), scale);
    std::memcpy(want.data<double>() + b * Hq * Dh, w.raw(), w.nbytes());
  }
  const int saved_threads = omp_get_max_threads();
  for (ops::cpu::Isa isa : {ops::cpu::Isa::Scalar, ops::cpu::Isa::Avx2, ops::cpu::Isa::Avx512, ops::cpu::Isa::Neon}) {
    if (!ops::cpu::isa_supported(isa)) continue;
    Tensor one = Tensor::empty(q.shape());
    omp_set_num_threads(1);
    ops::cpu::attention_decode_isa(isa, q, kc, vc, lengths, scale, one);
    expect_close("attention_decode " + shape + " " + ops::cpu::isa_name(isa), one, want, 3e-6);
    for (int threads : {2, 3}) {
      omp_set_num_threads(threads);
      Tensor many = Tensor::empty(q.shape());
      many.fill(NAN);
      ops::cpu::attention_decode_isa(isa, q, kc, vc, lengths, scale, many);
      EXPECT_EQ(std::memcmp(one.raw(), many.raw(), one.nbytes()), 0)
          << shape << " " << ops::cpu::isa_name(isa) << " at " << threads << " threads differs from 1 thread";
    }
  }
  omp_set_num_threads(saved_threads);
  // The dispatched op (the active variant) gives the same rows.
  Tensor out = Tensor::empty(q.shape());
  ops::attention_decode(q, kc, vc, lengths, scale, out);
  expect_close("attention_decode " + shape + " (dispatched)", out, want, 3e-6);
}
}  // namespace

TEST(OpsAttention, DecodeMatchesNaiveAtAnyThreadCountAndIsa) {
  check_decode(8, 2, 64, {1, 157, 300}, DType::F32);
  check_decode(8, 2, 64, {1, 157, 300}, DType::BF16);
}

// The head shapes the x86 kernel (attention_decode_x86.cpp) takes apart: query heads not a
// multiple of its groups of eight (6, 12, 20) or exactly two of them (16), Dh of one to eight
// chunks of 16 (80 = a 64-dim pass and a 16-dim one), lengths that fill its 64-key chunks
// exactly (64, 128) or leave one key (65, 129); and Dh 24, which it does not take.
TEST(OpsAttention, DecodeMatchesNaiveAcrossHeadShapes) {
  check_decode(12, 12, 64, {128, 64, 65}, DType::BF16);  // llama-134m's heads
  check_decode(6, 3, 80, {200}, DType::F32);
  check_decode(6, 3, 80, {200}, DType::BF16);
  check_decode(16, 4, 128, {70, 3}, DType::BF16);
  check_decode(20, 5, 16, {129}, DType::F32);
  check_decode(4, 1, 24, {90, 7}, DType::BF16);
}

// ---- a BF16 KV cache on the CPU ---------------------------------------------------------------
// The reference for each BF16 read is the F32 op on the same values widened (widening is exact),
// so any difference is the kernels' own: see docs/numerics.md ("CPU KV cache in bf16").

// kv_append into a BF16 cache stores x rounded to nearest even (x.to(BF16), bit for bit) at each
// sequence's own position and leaves every other row as it was; infinities stay, NaN stays NaN
// (quiet), ties go to even, and the largest float rounds up to infinity, as x.to(BF16) has them.
TEST(OpsAttention, KvAppendIntoBf16CacheRoundsToNearestEven) {
  const int64_t B = 3, T = 4, cap = 11, Hkv = 2, Dh = 16, row = Hkv * Dh;
  const int32_t pos[B] = {0, 7, 3};
  Tensor x = random_tensor({B, T, Hkv, Dh}, -3.0f, 3.0f);
  // A signalling NaN; two ties (to even: down, then up); overflow; a denormal.
  const float specials[] = {INFINITY, -INFINITY, NAN, std::bit_cast<float>(0x7f800001u),
                            std::bit_cast<float>(0x3f808000u), std::bit_cast<float>(0x3f818000u),
                            std::numeric_limits<float>::max(), -0.0f, std::bit_cast<float>(0x00000001u)};
  std::copy(std::begin(specials), std::end(specials), x.f32() + 5);
  Tensor cache = random_tensor({B, cap, Hkv, Dh}).to(DType::BF16);  // [B, cap, Hkv, Dh]
  const Tensor before = cache.clone();
  Tensor positions = Tensor::empty({B}, DType::I32);
  std::memcpy(positions.raw(), pos, sizeof pos);
  ops::kv_append(x, positions, cache);
  const Tensor want = x.to(DType::BF16);
  const auto* got = cache.data<uint16_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < cap; ++p) {
      const bool written = p >= pos[b] && p < pos[b] + T;
      const uint16_t* expect = written ? want.data<uint16_t>() + (b * T + p - pos[b]) * row
                                       : before.data<uint16_t>() + (b * cap + p) * row;
      EXPECT_EQ(std::memcmp(got + (b * cap + p) * row, expect, size_t(row) * 2), 0) << "sequence " << b << " row " << p;
    }
}

// attention_decode over a BF16 cache against attention_decode over the F32 cache holding the same
// values: every kernel variant this machine runs, 4 query heads on each of 2 KV heads, a batch of
// 3 ragged lengths (one of them 1), 1 and 2 threads.
TEST(OpsAttention, DecodeOverBf16CacheEqualsF32CacheOfTheSameValues) {
  const int64_t B = 3, cap = 311, Hq = 8, Hkv = 2, Dh = 64;
  const int32_t lens[B] = {1, 157, 300};
  Tensor q = random_tensor({B, Hq, Dh}, -2.0f, 2.0f);
  const Tensor kc16 = random_tensor({B, cap, Hkv, Dh}, -2.0f, 2.0f).to(DType::BF16);  // [B, cap, Hkv, Dh]
  const Tensor vc16 = random_tensor({B, cap, Hkv, Dh}).to(DType::BF16);
  const Tensor kc = kc16.to(DType::F32), vc = vc16.to(DType::F32);  // the same values, widened
  Tensor lengths = Tensor::empty({B}, DType::I32);
  std::memcpy(lengths.raw(), lens, sizeof lens);
  const float scale = 1.0f / std::sqrt(float(Dh));
  const int saved_threads = omp_get_max_threads();
  for (ops::cpu::Isa isa : {ops::cpu::Isa::Scalar, ops::cpu::Isa::Avx2, ops::cpu::Isa::Avx512, ops::cpu::Isa::Neon}) {
    if (!ops::cpu::isa_supported(isa)) continue;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      Tensor want = Tensor::empty(q.shape()), got = Tensor::empty(q.shape());
      ops::cpu::attention_decode_isa(isa, q, kc, vc, lengths, scale, want);
      ops::cpu::attention_decode_isa(isa, q, kc16, vc16, lengths, scale, got);
      expect_close(std::string("attention_decode BF16 cache ") + ops::cpu::isa_name(isa) + " " + std::to_string(threads) +
                       " threads",
                   got, want, 1e-6);
    }
  }
  omp_set_num_threads(saved_threads);
  Tensor want = Tensor::empty(q.shape()), got = Tensor::empty(q.shape());
  ops::attention_decode(q, kc, vc, lengths, scale, want);
  ops::attention_decode(q, kc16, vc16, lengths, scale, got);
  expect_close("attention_decode BF16 cache (dispatched)", got, want, 1e-6);
}

// ops::attention over BF16 keys and values (T new queries after a cached prefix, as a chunked
// prefill reads the cache) against the F32 call on the same values: the few-rows loops (T = 5)
// and the sgemm path (T = 20) over S = 1100 keys, three panels of widened keys; GQA, batch 2;
// out and lse2. Each output averages ~1100 random values, so it is ~1/sqrt(S) of them while the
// sums' rounding is not: the relative limit is 2e-6 here (as for long S above).
TEST(OpsAttention, PrefixOverBf16KeysEqualsF32OfTheSameValues) {
  const int64_t B = 2, S = 1100, Hq = 4, Hkv = 2, Dh = 32;
  const Tensor k16 = random_tensor({B, S, Hkv, Dh}, -2.0f, 2.0f).to(DType::BF16);  // [B, S, Hkv, Dh]
  const Tensor v16 = random_tensor({B, S, Hkv, Dh}).to(DType::BF16);
  const Tensor k = k16.to(DType::F32), v = v16.to(DType::F32);
  for (int64_t T : {int64_t(5), int64_t(20)}) {
    Tensor q = random_tensor({B, T, Hq, Dh}, -2.0f, 2.0f);
    Tensor want = Tensor::empty(q.shape()), got = Tensor::empty(q.shape());
    Tensor want_lse2 = Tensor::empty({B, Hq, T}), got_lse2 = Tensor::empty({B, Hq, T});
    ops::attention(q, k, v, nullptr, 0.2f, want, &want_lse2);
    ops::attention(q, k16, v16, nullptr, 0.2f, got, &got_lse2);
    expect_close("attention BF16 keys, T = " + std::to_string(T), got, want, 2e-6);
    expect_close("attention BF16 keys lse2, T = " + std::to_string(T), got_lse2, want_lse2, 2e-7);
  }
}

// BF16 keys on the CPU are a KV cache only: not with document ids, not in the backward, and no
// other dtype.
TEST(OpsAttention, Bf16KeysOutsideTheCacheThrow) {
  const int64_t B = 1, T = 12, Hq = 2, Hkv = 1, Dh = 8;
  Tensor q = random_tensor({B, T, Hq, Dh});
  const Tensor k16 = random_tensor({B, T, Hkv, Dh}).to(DType::BF16), v16 = random_tensor({B, T, Hkv, Dh}).to(DType::BF16);
  Tensor out = Tensor::empty(q.shape());
  Tensor seq = Tensor::zeros({B, T}, DType::I32);
  mambalm::testing::expect_error([&] { ops::attention(q, k16, v16, &seq, 1.0f, out); }, {"attention", "BF16", "document"});
  Tensor dq = Tensor::empty(q.shape()), dk = Tensor::empty({B, T, Hkv, Dh}), dv = Tensor::empty({B, T, Hkv, Dh});
  mambalm::testing::expect_error([&] { ops::attention_backward(q, k16, v16, nullptr, 1.0f, out, dq, dk, dv, nullptr, nullptr); },
                                 {"attention_backward", "BF16"});
  Tensor x = random_tensor({B, 1, Hkv, Dh}), positions = Tensor::zeros({B}, DType::I32);
  Tensor cache16 = Tensor::zeros({B, 4, Hkv, Dh}, DType::F16);
  mambalm::testing::expect_error([&] { ops::kv_append(x, positions, cache16); }, {"kv_append", "F16"});
}

// The packed-documents path computes the same lse2 as the plain one when the row is one document.
TEST(OpsAttention, Lse2WithOneDocumentEqualsPlain) {
  const int64_t B = 2, T = 70, Hq = 4, Hkv = 2, Dh = 16;
  Tensor q = random_tensor({B, T, Hq, Dh}), k = random_tensor({B, T, Hkv, Dh}), v = random_tensor({B, T, Hkv, Dh});
  Tensor seq = Tensor::zeros({B, T}, DType::I32);
  for (int64_t i = 0; i < B * T; ++i) seq.data<int32_t>()[i] = 7;
  Tensor o1 = Tensor::empty(q.shape()), o2 = Tensor::empty(q.shape());
  Tensor l1 = Tensor::empty({B, Hq, T}), l2 = Tensor::empty({B, Hq, T});
  ops::attention(q, k, v, nullptr, 0.25f, o1, &l1);
  ops::attention(q, k, v, &seq, 0.25f, o2, &l2);
  expect_close("lse2 with one document", l2, l1, 1e-6);
}

TEST(OpsAttention, ErrorsThrow) {
  Tensor q = random_tensor({1, 4, 6, 8});
  Tensor k = random_tensor({1, 5, 4, 8});  // 6 heads not a multiple of 4
  Tensor v = random_tensor({1, 5, 4, 8});
  Tensor out = Tensor::empty({1, 4, 6, 8});
  EXPECT_THROW(ops::attention(q, k, v, nullptr, 1.0f, out), Error);
  Tensor k2 = random_tensor({1, 3, 3, 8});  // S = 3 < T = 4
  Tensor v2 = random_tensor({1, 3, 3, 8});
  EXPECT_THROW(ops::attention(q, k2, v2, nullptr, 1.0f, out), Error);
  Tensor k3 = random_tensor({1, 5, 3, 8});
  Tensor v3 = random_tensor({1, 5, 3, 4});  // v head dim differs
  EXPECT_THROW(ops::attention(q, k3, v3, nullptr, 1.0f, out), Error);
  Tensor v4 = random_tensor({1, 5, 3, 8});
  Tensor out_bad = Tensor::empty({1, 4, 6, 4});
  EXPECT_THROW(ops::attention(q, k3, v4, nullptr, 1.0f, out_bad), Error);
  EXPECT_THROW(ops::attention(q, k3, v4, nullptr, 1.0f, q), Error);  // out aliases q
  try {
    ops::attention(q, k2, v2, nullptr, 1.0f, out);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention"), std::string::npos) << e.what();
  }
}

// ---- rope ----------------------------------------------------------------------------------

void check_rope(int64_t Dh, int64_t rotary_dim, int64_t pos0, double theta) {
  const int64_t B = 2, T = 11, H = 3;
  Tensor x = random_tensor({B, T, H, Dh});
  Tensor orig = x.clone();
  ops::rope(x, pos0, rotary_dim, theta);
  Tensor want = Tensor::zeros(x.shape(), DType::F64);
  const int64_t half = rotary_dim / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float* o = orig.f32() + ((b * T + t) * H + h) * Dh;
        double* w = want.data<double>() + ((b * T + t) * H + h) * Dh;
        for (int64_t d = 0; d < Dh; ++d) w[d] = o[d];
        for (int64_t i = 0; i < half; ++i) {
          const double ang = double(pos0 + t) * std::pow(theta, -2.0 * double(i) / double(rotary_dim));
          w[i] = o[i] * std::cos(ang) - o[i + half] * std::sin(ang);
          w[i + half] = o[i + half] * std::cos(ang) + o[i] * std::sin(ang);
        }
      }
  char name[96];
  std::snprintf(name, sizeof name, "rope Dh=%lld r=%lld pos0=%lld", (long long)Dh, (long long)rotary_dim,
                (long long)pos0);
  expect_close(name, x, want, 1e-6);
  // channels past rotary_dim are untouched, bit for bit
  for (int64_t r = 0; r < B * T * H; ++r)
    for (int64_t d = rotary_dim; d < Dh; ++d) ASSERT_EQ(x.f32()[r * Dh + d], orig.f32()[r * Dh + d]);
}

TEST(OpsRope, FullRotaryMatchesNaive) { check_rope(16, 16, 0, 10000.0); }
TEST(OpsRope, PartialRotaryMatchesNaive) { check_rope(32, 16, 0, 10000.0); }  // Nemotron: half
TEST(OpsRope, PositionOffsetMatchesNaive) {
  check_rope(32, 16, 1000, 10000.0);
  check_rope(64, 64, 123456, 500000.0);  // long context: the angle must be computed in double
}

TEST(OpsRope, OffsetCallEqualsRowsOfFullCall) {
  // rope on rows [5, 11) with pos0 = 5 equals those rows of one call from position 0
  Tensor full = random_tensor({1, 11, 2, 8});
  Tensor tail = time_slice(full, 5, 11);
  ops::rope(full, 0, 8, 10000.0);
  ops::rope(tail, 5, 8, 10000.0);
  EXPECT_EQ(max_abs_diff(tail, time_slice(full, 5, 11)), 0.0);
}

TEST(OpsRope, ErrorsThrow) {
  Tensor x = random_tensor({1, 3, 2, 8});
  EXPECT_THROW(ops::rope(x, 0, 7, 10000.0), Error);   // odd
  EXPECT_THROW(ops::rope(x, 0, 10, 10000.0), Error);  // > head dim
  EXPECT_THROW(ops::rope(x, -1, 8, 10000.0), Error);
  EXPECT_THROW(ops::rope(x, 0, 8, 0.0), Error);
  Tensor x3 = random_tensor({3, 2, 8});
  EXPECT_THROW(ops::rope(x3, 0, 8, 10000.0), Error);
}
