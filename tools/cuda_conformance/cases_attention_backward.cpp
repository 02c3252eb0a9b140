// Conformance cases for training attention on CUDA: attention_backward (dq, dk, dv) with F32
// K/V (the fp32 path) and BF16 K/V (the tensor-core path at head dims 64 / 128, the fp32 path
// at others), with and without documents, GQA 32/8, 4/1 and MHA, a KV prefix (S > T), T off
// the 64-row tiles, T = 1; the forward with documents (F32 and BF16); rope_backward; and the
// bit-identity of the tensor-core backward run to run (its dq is summed across key blocks in a
// fixed order, see backward.cu).
//
// BF16 K/V: the CPU reference gets K and V rounded to bf16 and back to F32, so both sides see
// the same values; the remaining difference is the GPU's own bf16 rounding of q, dout, P and
// dS for the tensor cores. The GPU's BF16 entry is called directly (ops::cuda::) so that the
// cases run whatever the dispatcher's dtype checks allow.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

// The fp32 backward (F32 K/V) against the CPU: fp32 scores, exp and sums in another order,
// and D = dO . O from the online softmax where the CPU sums P dP in double. Expected ~1e-13;
// kAttention (1e-10) is the fp32 attention limit of numerics.md.
constexpr double kBwdF32 = kAttention;
// The tensor-core backward (BF16 K/V): q, dout, P and dS are rounded to bf16 (2^-9 relative
// each) before the products, and the recomputed lse comes from bf16 q . k; every gradient is a
// sum of products carrying two or three such roundings. Expected a few 1e-6 of nmse, ~1e-5 at
// most (the brief's estimate); 1e-4 leaves room, while a wrong mask, a lost key block, a
// missing head of the group or a wrong scale gives >= 1e-3.
constexpr double kBwdBf16 = 1e-4;
// The BF16 forward's limit, as in cases_attention.cpp (q and P rounded to bf16).
constexpr double kFwdBf16 = 2e-5;

enum class Docs { none, random, many, reused };
const char* docs_label(Docs d) {
  switch (d) {
    case Docs::none: return "";
    case Docs::random: return " docs";
    case Docs::many: return " docs~40";
    case Docs::reused: return " ids-reused";
  }
  return "";
}

// Document ids [B, S]: random (1-5 documents per row, harness.h), many (documents of 1..80
// tokens: most 64-tiles are skipped or mixed), reused (short segments whose ids cycle through
// 0, 1, 2, so a query also sees earlier segments with its id: the CPU compares ids, not
// segments, and so must the GPU).
Tensor make_docs(Docs d, int64_t B, int64_t S) {
  if (d == Docs::random) return random_documents(B, S);
  Tensor seq = Tensor::empty({B, S}, DType::I32);
  std::uniform_int_distribution<int> len(1, 80);
  for (int64_t b = 0; b < B; ++b) {
    int32_t seg = 0;
    int64_t left = len(rng);
    for (int64_t t = 0; t < S; ++t) {
      if (left-- == 0) {
        ++seg;
        left = len(rng) - 1;
      }
      seq.data<int32_t>()[b * S + t] = d == Docs::reused ? seg % 3 : seg;
    }
  }
  return seq;
}

// K or V as the CPU sees it (bf16-rounded values in F32 when bf16) and as the GPU gets it.
struct KvPair {
  Tensor cpu, gpu;
};
KvPair kv_operand(const Tensor& x, bool bf16) {
  if (!bf16) return {x, up(x)};
  Tensor b = x.to(DType::BF16);
  return {b.to(DType::F32), up(b)};
}

std::string label(const Tensor& q, int64_t S, int64_t Hkv, bool bf16, Docs d) {
  return "q" + shape_str(q.shape()) + " S" + std::to_string(S) + " kv" + std::to_string(Hkv) +
         (bf16 ? " bf16" : "") + docs_label(d);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor x = down(a), y = down(b);
  return std::memcmp(x.f32(), y.f32(), size_t(x.numel()) * sizeof(float)) == 0;
}

void check_backward(int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t Dh, bool bf16,
                    Docs d, bool determinism = false) {
  Tensor q = rand_cpu({B, T, Hq, Dh}, -1, 1), dout = rand_cpu({B, T, Hq, Dh}, -1, 1);
  KvPair k = kv_operand(rand_cpu({B, S, Hkv, Dh}, -1, 1), bf16);
  KvPair v = kv_operand(rand_cpu({B, S, Hkv, Dh}, -1, 1), bf16);
  Tensor seq = d == Docs::none ? Tensor() : make_docs(d, B, S);
  Tensor gseq = d == Docs::none ? Tensor() : up(seq);
  const Tensor* cs = d == Docs::none ? nullptr : &seq;
  const Tensor* gs = d == Docs::none ? nullptr : &gseq;
  Tensor dq = Tensor::empty({B, T, Hq, Dh}), dk = Tensor::empty({B, S, Hkv, Dh}), dv = Tensor::empty({B, S, Hkv, Dh});
  Tensor gq = up(q), gdo = up(dout);
  Tensor gdq = poisoned({B, T, Hq, Dh}), gdk = poisoned({B, S, Hkv, Dh}), gdv = poisoned({B, S, Hkv, Dh});
  const float scale = 1.0f / std::sqrt(float(Dh));
  auto gpu = [&](Tensor& oq, Tensor& ok, Tensor& ov) {
    if (bf16) ops::cuda::attention_backward(gq, k.gpu, v.gpu, gs, scale, gdo, oq, ok, ov);
    else ops::attention_backward(gq, k.gpu, v.gpu, gs, scale, gdo, oq, ok, ov);
  };
  auto t = run_pair([&] { ops::attention_backward(q, k.cpu, v.cpu, cs, scale, dout, dq, dk, dv); },
                    [&] { gpu(gdq, gdk, gdv); });
  const std::string sh = label(q, S, Hkv, bf16, d);
  // BF16 at head dims 64 / 128 runs on the tensor cores; other head dims on the fp32 path.
  const double limit = bf16 && (Dh == 64 || Dh == 128) ? kBwdBf16 : kBwdF32;
  record("attention_backward", sh, "dq", nmse(gdq, dq), limit, t.gpu_ms, t.cpu_ms);
  record("attention_backward", sh, "dk", nmse(gdk, dk), limit, NAN, NAN);
  record("attention_backward", sh, "dv", nmse(gdv, dv), limit, NAN, NAN);
  // With the forward's out and lse2 (as training passes them; the tensor-core path then skips
  // its statistics pass): lse2 against the CPU forward's, and the gradients against the CPU's.
  {
    Tensor o = Tensor::empty({B, T, Hq, Dh}), lse2 = Tensor::empty({B, Hq, T});
    Tensor go = poisoned({B, T, Hq, Dh}), glse2 = poisoned({B, Hq, T});
    ops::attention(q, k.cpu, v.cpu, cs, scale, o, &lse2);
    if (bf16) ops::cuda::attention(gq, k.gpu, v.gpu, gs, scale, go, &glse2);
    else ops::attention(gq, k.gpu, v.gpu, gs, scale, go, &glse2);
    const double fwd_limit = bf16 && (Dh == 64 || Dh == 128) ? kFwdBf16 : kAttention;
    record("attention", sh, "lse2", nmse(glse2, lse2), fwd_limit, NAN, NAN);
    Tensor sq = poisoned({B, T, Hq, Dh}), sk = poisoned({B, S, Hkv, Dh}), sv = poisoned({B, S, Hkv, Dh});
    const double ms = time_ms([&] {
      if (bf16) ops::cuda::attention_backward(gq, k.gpu, v.gpu, gs, scale, gdo, sq, sk, sv, &go, &glse2);
      else ops::attention_backward(gq, k.gpu, v.gpu, gs, scale, gdo, sq, sk, sv, &go, &glse2);
    });
    record("attention_backward", sh + " saved", "dq", nmse(sq, dq), limit, ms, NAN);
    record("attention_backward", sh + " saved", "dk", nmse(sk, dk), limit, NAN, NAN);
    record("attention_backward", sh + " saved", "dv", nmse(sv, dv), limit, NAN, NAN);
  }
  if (determinism) {
    Tensor rq = poisoned({B, T, Hq, Dh}), rk = poisoned({B, S, Hkv, Dh}), rv = poisoned({B, S, Hkv, Dh});
    gpu(rq, rk, rv);
    const bool same = same_bits(rq, gdq) && same_bits(rk, gdk) && same_bits(rv, gdv);
    record("attention_backward", sh, "rerun", same ? 0.0 : INFINITY, kExact, NAN, NAN);
  }
}

void check_forward_docs(int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t Dh, bool bf16,
                        Docs d) {
  Tensor q = rand_cpu({B, T, Hq, Dh}, -1, 1), o = Tensor::empty({B, T, Hq, Dh});
  KvPair k = kv_operand(rand_cpu({B, S, Hkv, Dh}, -1, 1), bf16);
  KvPair v = kv_operand(rand_cpu({B, S, Hkv, Dh}, -1, 1), bf16);
  Tensor seq = make_docs(d, B, S), gseq = up(seq);
  Tensor gq = up(q), go = poisoned({B, T, Hq, Dh});
  const float scale = 1.0f / std::sqrt(float(Dh));
  auto t = run_pair([&] { ops::attention(q, k.cpu, v.cpu, &seq, scale, o); },
                    [&] { ops::attention(gq, k.gpu, v.gpu, &gseq, scale, go); });
  const double limit = bf16 && (Dh == 64 || Dh == 128) ? kFwdBf16 : kAttention;
  record("attention", label(q, S, Hkv, bf16, d), "out", nmse(go, o), limit, t.gpu_ms, t.cpu_ms);
}

void check_rope_backward(int64_t B, int64_t T, int64_t H, int64_t Dh, int64_t rotary, int64_t pos0) {
  Tensor x = rand_cpu({B, T, H, Dh}, -1, 1);
  Tensor c = x.clone(), g = up(x);
  auto t = run_pair([&] { ops::rope_backward(c, pos0, rotary, 10000.0); },
                    [&] { ops::rope_backward(g, pos0, rotary, 10000.0); }, false);
  record("rope_backward",
         shape_str(x.shape()) + " r" + std::to_string(rotary) + " pos0 " + std::to_string(pos0), "dx",
         nmse(g, c), kElementwise, t.gpu_ms, t.cpu_ms);
}

void run_attention_backward(bool quick) {
  // These cases check our own kernels; the attention_cudnn group checks cuDNN's path.
  const ops::cuda::AttentionBackend before = ops::cuda::attention_backend();
  ops::cuda::set_attention_backend(ops::cuda::AttentionBackend::Own);
  const int64_t B = 2, T = quick ? 77 : 200;
  for (bool bf16 : {false, true}) {
    for (Docs d : {Docs::none, Docs::random}) {
      check_backward(B, T, T, 32, 8, 128, bf16, d);               // GQA 32/8 at the study's heads
      check_backward(B, T / 2, T + 100, 32, 8, 128, bf16, d);     // KV prefix, S > T
      check_backward(3, 77, 127, 4, 4, 64, bf16, d);              // MHA, head dim 64, T off the tiles
      check_backward(3, 65, 65, 4, 1, 128, bf16, d);              // GQA 4/1, one row past a tile
      check_backward(3, 21, 40, 6, 2, 80, bf16, d);               // odd head dim: the fp32 path
    }
    check_backward(2, 1, 300, 8, 2, 128, bf16, Docs::none);       // one query after a long prefix
    check_backward(1, 64, 64, 4, 1, 64, bf16, Docs::none);        // exactly one tile
    check_backward(1, quick ? 300 : 1000, quick ? 300 : 1000, 8, 2, 128, bf16, Docs::many);
    check_backward(2, quick ? 250 : 700, quick ? 300 : 800, 4, 1, 64, bf16, Docs::reused);
  }
  // Bit-identical reruns of the tensor-core backward (dq summed across key blocks in order).
  check_backward(2, quick ? 500 : 1500, quick ? 500 : 1500, 32, 8, 128, true, Docs::none, true);
  check_backward(2, quick ? 500 : 1500, quick ? 520 : 1500, 8, 8, 64, true, Docs::random, true);
  if (!quick) {
    // The study's scale: B 2, L 4096, 32 query heads on 8 KV heads of 128.
    check_backward(2, 4096, 4096, 32, 8, 128, true, Docs::none, true);
    check_backward(2, 4096, 4096, 32, 8, 128, true, Docs::random);
    check_backward(1, 2048, 2048, 32, 8, 128, false, Docs::random);
  }

  // Forward with documents: fp32 rows path (F32), flash kernels (BF16, head dim 64 / 128).
  for (bool bf16 : {false, true}) {
    check_forward_docs(B, T, T, 32, 8, 128, bf16, Docs::random);
    check_forward_docs(B, T / 2, T + 100, 32, 8, 128, bf16, Docs::random);
    check_forward_docs(3, 77, 127, 4, 4, 64, bf16, Docs::random);
    check_forward_docs(3, 21, 40, 6, 2, 80, bf16, Docs::random);
    check_forward_docs(1, quick ? 300 : 1000, quick ? 300 : 1000, 8, 2, 128, bf16, Docs::many);
    check_forward_docs(2, quick ? 250 : 700, quick ? 300 : 800, 4, 1, 64, bf16, Docs::reused);
  }
  if (!quick) check_forward_docs(2, 4096, 4096, 32, 8, 128, true, Docs::random);

  // rope_backward: full and partial rotary dims, a large position offset.
  check_rope_backward(B, T, 32, 128, 128, 0);
  check_rope_backward(3, 77, 6, 80, 40, 123456);
  check_rope_backward(1, 5, 3, 64, 0, 7);  // rotary_dim 0: a no-op on both sides
  ops::cuda::set_attention_backend(before);
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("attention_backward", run_attention_backward);

}  // namespace conformance
