// Conformance cases for attention through cuDNN's fused flash attention (ops/cuda/attention/
// cudnn_attention.cu), forced with AttentionBackend::Cudnn so that a call cuDNN cannot run is
// an error rather than a silent fall back to our kernels: the forward (out and lse2) and the
// backward (dq, dk, dv) with and without the forward's saved out and lse2, MHA and GQA, causal,
// head dims 64 and 128, against the CPU op on the same bf16-rounded K/V. One case runs in the
// default mode (Auto) to check that a training call takes cuDNN and agrees too.
//
// Numerics: as our tensor-core path (q, dout, P, dS rounded to bf16, fp32 accumulation), plus
// the rounding of O, dQ, dK and dV to bf16 by cuDNN (2^-9 relative per element: ~1e-6 of nmse),
// so the bf16 limits of docs/numerics.md apply unchanged (2e-5 forward, 1e-4 backward).
//
// Without cuDNN (libcudnn.so.9 not on the library path, or a build without its headers) the
// group prints why and records nothing, unless MAMBALM_ATTN=cudnn is set: then it fails.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "harness.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

using ops::cuda::AttentionBackend;

constexpr double kFwdBf16 = 2e-5;   // as cases_attention.cpp (kAttentionBf16)
constexpr double kBwdBf16 = 1e-4;   // as cases_attention_backward.cpp

struct KvPair {
  Tensor cpu, gpu;
};
KvPair bf16_operand(const Tensor& x) {
  Tensor b = x.to(DType::BF16);
  return {b.to(DType::F32), up(b)};
}

std::string label(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, const char* mode) {
  return "B" + std::to_string(B) + " T" + std::to_string(T) + " h" + std::to_string(Hq) + "/" + std::to_string(Hkv) +
         " d" + std::to_string(Dh) + " " + mode;
}

// Forward with lse2, then the backward given the saved out and lse2 and without them.
// backward = false for shapes the loaded cuDNN refuses in the backward (see cudnn_attention.cu).
void check_cudnn(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, bool backward,
                 AttentionBackend mode = AttentionBackend::Cudnn) {
  ops::cuda::set_attention_backend(mode);
  const std::string sh = label(B, T, Hq, Hkv, Dh, mode == AttentionBackend::Cudnn ? "cudnn" : "auto");
  Tensor q = rand_cpu({B, T, Hq, Dh}, -1, 1), dout = rand_cpu({B, T, Hq, Dh}, -1, 1);
  KvPair k = bf16_operand(rand_cpu({B, T, Hkv, Dh}, -1, 1));
  KvPair v = bf16_operand(rand_cpu({B, T, Hkv, Dh}, -1, 1));
  const float scale = 1.0f / std::sqrt(float(Dh));
  Tensor o = Tensor::empty({B, T, Hq, Dh}), lse2 = Tensor::empty({B, Hq, T});
  Tensor gq = up(q), gdo = up(dout), go = poisoned({B, T, Hq, Dh}), glse2 = poisoned({B, Hq, T});
  auto t = run_pair([&] { ops::attention(q, k.cpu, v.cpu, nullptr, scale, o, &lse2); },
                    [&] { ops::cuda::attention(gq, k.gpu, v.gpu, nullptr, scale, go, &glse2); });
  record("attention", sh, "out", nmse(go, o), kFwdBf16, t.gpu_ms, t.cpu_ms);
  record("attention", sh, "lse2", nmse(glse2, lse2), kFwdBf16, NAN, NAN);
  if (backward) {
    Tensor dq = Tensor::empty({B, T, Hq, Dh}), dk = Tensor::empty({B, T, Hkv, Dh}), dv = Tensor::empty({B, T, Hkv, Dh});
    Tensor gdq = poisoned({B, T, Hq, Dh}), gdk = poisoned({B, T, Hkv, Dh}), gdv = poisoned({B, T, Hkv, Dh});
    auto tb = run_pair([&] { ops::attention_backward(q, k.cpu, v.cpu, nullptr, scale, dout, dq, dk, dv); },
                       [&] {
                         ops::cuda::attention_backward(gq, k.gpu, v.gpu, nullptr, scale, gdo, gdq, gdk, gdv, &go,
                                                       &glse2);
                       });
    record("attention_backward", sh + " saved", "dq", nmse(gdq, dq), kBwdBf16, tb.gpu_ms, tb.cpu_ms);
    record("attention_backward", sh + " saved", "dk", nmse(gdk, dk), kBwdBf16, NAN, NAN);
    record("attention_backward", sh + " saved", "dv", nmse(gdv, dv), kBwdBf16, NAN, NAN);
    // No saved statistics: the path runs cuDNN's forward itself first.
    Tensor rq = poisoned({B, T, Hq, Dh}), rk = poisoned({B, T, Hkv, Dh}), rv = poisoned({B, T, Hkv, Dh});
    const double ms = time_ms([&] { ops::cuda::attention_backward(gq, k.gpu, v.gpu, nullptr, scale, gdo, rq, rk, rv); });
    record("attention_backward", sh, "dq", nmse(rq, dq), kBwdBf16, ms, NAN);
    record("attention_backward", sh, "dk", nmse(rk, dk), kBwdBf16, NAN, NAN);
    record("attention_backward", sh, "dv", nmse(rv, dv), kBwdBf16, NAN, NAN);
  }
}

// A case that throws (cuDNN required but refused, a plan or an execution failure) is one
// failed row with the message, not the end of the whole run.
void check_or_record(int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t Dh, bool backward,
                     AttentionBackend mode = AttentionBackend::Cudnn) {
  try {
    check_cudnn(B, T, Hq, Hkv, Dh, backward, mode);
  } catch (const Error& e) {
    std::printf("  %s\n", e.what());
    record("attention_cudnn", label(B, T, Hq, Hkv, Dh, "cudnn"), "error", INFINITY, kExact, NAN, NAN);
  }
}

void run_attention_cudnn(bool quick) {
  const size_t version = ops::cuda::cudnn_version();
  const char* env = std::getenv("MAMBALM_ATTN");
  const bool required = env && std::string(env) == "cudnn";
  if (version == 0) {
    std::printf("  cuDNN not available (libcudnn.so.9 not loaded or built without its headers): group skipped\n");
    if (required) record("attention", "cuDNN required (MAMBALM_ATTN=cudnn)", "load", INFINITY, kExact, NAN, NAN);
    return;
  }
  std::printf("  libcudnn.so.9 version %zu\n", version);
  const AttentionBackend before = ops::cuda::attention_backend();  // restored at the end
  // cuDNN before 9.16 refuses our backward graph for T % 128 != 0; 9.10.0 / 9.10.1 any backward.
  const bool bwd_ok = version != 91000 && version != 91001;
  auto bwd = [&](int64_t T) { return bwd_ok && (version >= 91600 || T % 128 == 0); };
  const int64_t T = quick ? 256 : 512;
  check_or_record(2, T, 32, 8, 128, bwd(T));    // GQA 32/8 at the study's head dim
  check_or_record(2, T, 8, 8, 64, bwd(T));      // MHA, head dim 64
  check_or_record(3, 128, 4, 1, 128, bwd(128)); // GQA 4/1, one 128-tile
  check_or_record(1, 384, 6, 2, 64, bwd(384));  // GQA 3 per KV head, head dim 64
  check_or_record(2, 200, 8, 2, 128, bwd(200)); // T off the tiles (backward only where supported)
  check_or_record(2, 77, 4, 4, 64, bwd(77));
  // Auto mode: a training call (forward with lse2, backward) takes cuDNN by default.
  check_or_record(2, 256, 8, 2, 128, bwd(256), AttentionBackend::Auto);
  if (!quick) {
    check_or_record(2, 2048, 32, 8, 128, bwd(2048));
    check_or_record(1, 4096, 32, 32, 128, bwd(4096));
  }
  ops::cuda::set_attention_backend(before);
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("attention_cudnn", run_attention_cudnn);

}  // namespace conformance
