// Conformance cases for causal GQA attention: prefill (F32 and BF16 K/V), prefill after a
// KV-cache prefix, and the split-KV decode kernel over caches of per-sequence lengths.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"

namespace conformance {
namespace {

// BF16 K/V prefill (flash kernel for Dh 64/128): q and the softmax weights are rounded to bf16
// for the tensor cores (relative error ~2^-9 each), which measures ~1e-6..1e-5 of nmse against
// the fp32 CPU on the bf16-rounded K/V; a wrong mask, head mapping or tile gives >= 1e-4.
constexpr double kAttentionBf16 = 2e-5;
// Decode never rounds q or the weights: with the same bf16-rounded K/V on both sides it is fp32
// against fp32 (only the summation order and exp2 differ), so the fp32 limit applies.
constexpr double kAttentionDecode = kAttention;

// K/V as the CPU sees them (bf16-rounded values in F32) and as the GPU gets them (BF16).
struct KvPair {
  Tensor cpu, gpu;
};
KvPair kv_operand(const Tensor& x, bool bf16) {
  if (!bf16) return {x, up(x)};
  Tensor b = x.to(DType::BF16);
  return {b.to(DType::F32), up(b)};
}

std::string kv_label(int64_t S, int64_t Hkv, bool bf16) {
  return " S" + std::to_string(S) + " kv" + std::to_string(Hkv) + (bf16 ? " bf16" : "");
}

void check_attention(int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t Dh,
                     bool bf16 = false) {
  Tensor q = rand_cpu({B, T, Hq, Dh}, -1, 1), o = Tensor::empty({B, T, Hq, Dh});
  KvPair k = kv_operand(rand_cpu({B, S, Hkv, Dh}, -1, 1), bf16);
  KvPair v = kv_operand(rand_cpu({B, S, Hkv, Dh}, -1, 1), bf16);
  Tensor gq = up(q), go = poisoned({B, T, Hq, Dh});
  const float scale = 1.0f / std::sqrt(float(Dh));
  // The CUDA entry point is called directly so that BF16 K/V reach the kernel whatever the
  // dispatcher's dtype checks allow.
  auto t = run_pair([&] { ops::attention(q, k.cpu, v.cpu, nullptr, scale, o); },
                    [&] { ops::cuda::attention(gq, k.gpu, v.gpu, nullptr, scale, go); });
  record("attention", "q" + shape_str(q.shape()) + kv_label(S, Hkv, bf16), "out", nmse(go, o),
         bf16 ? kAttentionBf16 : kAttention, t.gpu_ms, t.cpu_ms);
}

// Rows [0, n) of sequence b of a [B, capacity, H, Dh] tensor, as [1, n, H, Dh].
Tensor rows_of(const Tensor& cache, int64_t b, int64_t n) {
  const int64_t cap = cache.dim(1), H = cache.dim(2), Dh = cache.dim(3);
  Tensor r = Tensor::empty({1, n, H, Dh});
  std::memcpy(r.f32(), cache.f32() + b * cap * H * Dh, size_t(n * H * Dh) * sizeof(float));
  return r;
}

// One query per sequence against rows 0..lengths[b]-1. The reference is the CPU prefill on each
// sequence's visible rows (q as [1, 1, Hq, Dh]). Rows past each length hold NaN, so a kernel that
// reads one fails.
void check_decode(const std::vector<int32_t>& lens, int64_t capacity, int64_t Hq, int64_t Hkv,
                  int64_t Dh, bool bf16) {
  const int64_t B = int64_t(lens.size());
  Tensor q = rand_cpu({B, Hq, Dh}, -1, 1), o = Tensor::empty({B, Hq, Dh});
  Tensor kc = rand_cpu({B, capacity, Hkv, Dh}, -1, 1), vc = rand_cpu({B, capacity, Hkv, Dh}, -1, 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = lens[b] * Hkv * Dh; i < capacity * Hkv * Dh; ++i) {
      kc.f32()[b * capacity * Hkv * Dh + i] = NAN;
      vc.f32()[b * capacity * Hkv * Dh + i] = NAN;
    }
  KvPair k = kv_operand(kc, bf16), v = kv_operand(vc, bf16);
  Tensor lengths = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b) lengths.data<int32_t>()[b] = lens[b];
  Tensor gq = up(q), gl = up(lengths), go = poisoned({B, Hq, Dh});
  const float scale = 1.0f / std::sqrt(float(Dh));
  auto cpu = [&] {
    for (int64_t b = 0; b < B; ++b) {
      Tensor qb = Tensor::empty({1, 1, Hq, Dh}), ob = Tensor::empty({1, 1, Hq, Dh});
      std::memcpy(qb.f32(), q.f32() + b * Hq * Dh, size_t(Hq * Dh) * sizeof(float));
      ops::attention(qb, rows_of(k.cpu, b, lens[b]), rows_of(v.cpu, b, lens[b]), nullptr, scale, ob);
      std::memcpy(o.f32() + b * Hq * Dh, ob.f32(), size_t(Hq * Dh) * sizeof(float));
    }
  };
  auto t = run_pair(cpu, [&] { ops::cuda::attention_decode(gq, k.gpu, v.gpu, gl, scale, go); });
  std::string ls;
  for (int32_t l : lens) ls += (ls.empty() ? "" : ",") + std::to_string(l);
  record("attention_decode",
         "q" + shape_str(q.shape()) + " cap" + std::to_string(capacity) + " kv" +
             std::to_string(Hkv) + (bf16 ? " bf16" : "") + " len " + ls,
         "out", nmse(go, o), kAttentionDecode, t.gpu_ms, t.cpu_ms);
}

void run_attention(bool quick) {
  // These cases check our own kernels; the attention_cudnn group checks cuDNN's path.
  const ops::cuda::AttentionBackend before = ops::cuda::attention_backend();
  ops::cuda::set_attention_backend(ops::cuda::AttentionBackend::Own);
  const int64_t B = 2, T = quick ? 77 : 200;
  for (bool bf16 : {false, true}) {
    check_attention(B, T, T, 32, 8, 128, bf16);
    check_attention(B, T / 2, T + 100, 32, 8, 128, bf16);  // KV cache prefix
    check_attention(B, 1, 1000, 32, 8, 128, bf16);         // one query after a long prefix
    check_attention(3, 21, 40, 6, 2, 80, bf16);            // odd head dim, 3 sequences
  }
  // Flash-kernel edge shapes: head dim 64, T and S off the 64-row tiles, MHA, several tiles.
  check_attention(3, 77, 127, 4, 4, 64, true);
  check_attention(1, quick ? 300 : 1000, quick ? 300 : 1000, 8, 2, 128, true);
  check_attention(3, 65, 65, 12, 3, 128, true);
  // Decode: lengths differ per sequence; rows past each length are NaN.
  for (bool bf16 : {false, true}) {
    check_decode({1, 37, 1000, 4096}, 4096, 32, 8, 128, bf16);
    check_decode({1, 37, 1000}, 20000, 32, 8, 128, bf16);  // most splits past the lengths
    check_decode({5, 129, 700}, 800, 24, 2, 64, bf16);     // 12 heads per KV head: 2 blocks
    check_decode({1, 37, 300}, 300, 6, 2, 80, bf16);       // odd head dim: fallback kernel
    // Warp decode (MAMBALM_ATTN_DECODE=split runs the same cases on the split kernel): lengths
    // on and next to the planned split boundaries (4096 / 64 splits), ~80 splits merged by the
    // last block with one sequence in a single split, groups of 1 (padded to 2), 2, 3 (padded
    // to 4) and 16 (two chunks of 8).
    check_decode({64, 65, 4095, 128}, 4096, 32, 8, 128, bf16);
    check_decode({20000, 1, 7777}, 20000, 8, 2, 128, bf16);
    check_decode({3, 64, 65, 200}, 256, 4, 4, 64, bf16);
    check_decode({33, 1000, 2}, 1024, 16, 8, 128, bf16);
    check_decode({7, 300, 129}, 300, 6, 2, 128, bf16);
    check_decode({1, 100, 515}, 600, 16, 1, 128, bf16);
  }
  ops::cuda::set_attention_backend(before);
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("attention", run_attention);

}  // namespace conformance
