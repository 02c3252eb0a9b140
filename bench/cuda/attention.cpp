// Benchmark of the CUDA attention kernels (bf16 K/V):
//  - prefill: B=2, L=4096, 32 heads (Hq = Hkv), Dh 128, causal; TFLOP/s counting
//    4 * B * H * L * L * Dh / 2 (the causal half of QK^T and PV);
//  - training: forward and backward at B=2, L=4096, 32 query heads of 128 on 32 (MHA) and 8
//    (GQA) KV heads, causal, without and with documents (8 documents of 512 tokens per row);
//    the backward counted as 2.5x the forward's FLOPs (5 GEMMs of the causal half against 2),
//    whatever it recomputes. Expected (measured on the H200, 2026-11-30; PyTorch 2.11 SDPA in
//    the same run, bench/cuda/attention_peer.py):
//      forward (flash_wgmma_kernel)               0.80 ms   345 TFLOP/s  (torch flash 1.03 ms,
//                                                                         cuDNN 0.51-0.58 ms)
//      backward, MHA and GQA 32/8                 4.6 ms    150 TFLOP/s  (torch flash 2.72-2.81,
//                                                                         cuDNN 1.47-1.50 ms)
//        = statistics pass (a forward in stats mode)  1.06 ms
//        + key-block pass (5 GEMMs on mma.sync)       ~2.5 ms
//        + its ordered dQ hand-off                    ~1.0 ms
//      backward with 8 documents of 512           2.0 ms (the skipped tiles cost their turns)
//      fp32 backward (F32 K/V), B 1, L 1024       5.4 ms (4 TFLOP/s: reference grade)
//    GQA costs the same FLOPs as MHA (K/V read once per group in the key-block pass).
//  - the same training shapes (bf16, no documents) through cuDNN's fused attention
//    (cudnn_attention.cu, MAMBALM_ATTN=cudnn semantics; tag suffix _cudnn), next to ours, with
//    fp32 q / out / gradients (converted around cuDNN) and with bf16 ones (_bf16act: training's call)
//    (forced with AttentionBackend::Own, whatever MAMBALM_ATTN says). Expected from PyTorch's
//    cuDNN SDPA: forward ~0.5 ms plus ~0.1 ms of bf16/fp32 conversions, backward ~1.5 ms plus
//    ~0.25 ms of conversions. Skipped with one line when cuDNN cannot run.
// Each timing is the median of >= 20 cudaEvent-timed calls after warm-up. Caches smaller than
// 256 MB are replicated and rotated so that repeated calls do not run out of the 60 MB L2.
// Lines starting with RESULT are read by bench/cuda/run_attention.sh.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "event_timing.h"
#include "core/device.h"
#include "core/tensor.h"
#include "core/error.h"
#include "ops/cuda/cuda_ops.h"

using namespace mambalm;
using ops::cuda::AttentionBackend;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench attention: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Fills a device tensor with uniform [-1, 1) values: a random 16M-element block made on the
// host, uploaded once and tiled over the tensor by device copies.
void fill_random(Tensor& t, uint64_t seed) {
  const size_t elem = t.dtype() == DType::BF16 ? 2 : 4;
  const size_t n = size_t(t.numel());
  const size_t block = std::min<size_t>(n, size_t(1) << 24);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Tensor host = Tensor::empty({int64_t(block)});
  for (size_t i = 0; i < block; ++i) host.f32()[i] = u(rng);
  Tensor h2 = t.dtype() == DType::BF16 ? host.to(DType::BF16) : host;
  char* dst = static_cast<char*>(t.data<void>());
  check(cudaMemcpy(dst, h2.data<void>(), block * elem, cudaMemcpyHostToDevice), "upload");
  for (size_t off = block; off < n; off += block) {
    const size_t m = std::min(block, n - off);
    check(cudaMemcpy(dst + off * elem, dst, m * elem, cudaMemcpyDeviceToDevice), "tile");
  }
}

using bench_cuda::median_ms;

void bench_prefill() {
  const int64_t B = 2, L = 4096, H = 32, D = 128;
  Tensor q = empty_cuda({B, L, H, D}), out = empty_cuda({B, L, H, D});
  Tensor k = empty_cuda({B, L, H, D}, DType::BF16), v = empty_cuda({B, L, H, D}, DType::BF16);
  fill_random(q, 1);
  fill_random(k, 2);
  fill_random(v, 3);
  const float scale = 1.0f / std::sqrt(float(D));
  const double ms = median_ms([&](int) { ops::cuda::attention(q, k, v, nullptr, scale, out); });
  const double flops = 4.0 * B * H * double(L) * L * D / 2;
  std::printf("prefill B=%ld L=%ld H=%ld D=%ld causal bf16-kv: %.3f ms  %.1f TFLOP/s\n", long(B),
              long(L), long(H), long(D), ms, flops / ms / 1e9);
  std::printf("RESULT prefill B2_L4096_H32_D128 %.4f ms %.1f TFLOPs\n", ms, flops / ms / 1e9);
}

void bench_decode(int64_t B, int64_t ctx) {
  const int64_t Hq = 32, Hkv = 8, D = 128;
  const double kv_bytes = 2.0 * B * ctx * Hkv * D * 2;  // K and V, bf16
  const int copies = int(std::max(1.0, std::ceil(256e6 / kv_bytes)));
  std::vector<Tensor> ks, vs;
  for (int c = 0; c < copies; ++c) {
    ks.push_back(empty_cuda({B, ctx, Hkv, D}, DType::BF16));
    vs.push_back(empty_cuda({B, ctx, Hkv, D}, DType::BF16));
    fill_random(ks.back(), 10 + c);
    fill_random(vs.back(), 100 + c);
  }
  Tensor q = empty_cuda({B, Hq, D}), out = empty_cuda({B, Hq, D});
  fill_random(q, 4);
  Tensor lens = Tensor::empty({B}, DType::I32);
  for (int64_t b = 0; b < B; ++b) lens.data<int32_t>()[b] = int32_t(ctx);
  Tensor glens = to_device(lens, Device::CUDA);
  const float scale = 1.0f / std::sqrt(float(D));
  const double ms = median_ms([&](int i) {
    ops::cuda::attention_decode(q, ks[i % copies], vs[i % copies], glens, scale, out);
  }, 30, 5);
  const double gbs = kv_bytes / ms / 1e6;
  const char* kernel = std::getenv("MAMBALM_ATTN_DECODE");
  std::printf("decode B=%ld ctx=%ld Hq=32 Hkv=8 D=128 bf16 [%s]: %.1f us  %.0f GB/s\n", long(B),
              long(ctx), kernel ? kernel : "default", ms * 1e3, gbs);
  std::printf("RESULT decode B%ld_ctx%ld %.4f ms %.0f GBs\n", long(B), long(ctx), ms, gbs);
}

// Forward and backward for training. q, dout F32; k, v BF16 (the tensor-core paths) or F32
// (the fp32 paths). docs: 8 equal documents per row (seq_idx), else none. bf16_act: q, out, dout
// and the gradients BF16 too, as mixed-precision training now calls it (no conversions around
// cuDNN; tag suffix _bf16act).
void bench_training(int64_t B, int64_t L, int64_t Hkv, bool bf16, bool docs, int reps_override = 0,
                    AttentionBackend backend = AttentionBackend::Own, bool bf16_act = false) {
  ops::cuda::set_attention_backend(backend);
  const bool cudnn = backend == AttentionBackend::Cudnn;
  const int64_t Hq = 32, D = 128;
  const DType kv = bf16 ? DType::BF16 : DType::F32, act = bf16_act ? DType::BF16 : DType::F32;
  Tensor q = empty_cuda({B, L, Hq, D}, act), out = empty_cuda({B, L, Hq, D}, act), dout = empty_cuda({B, L, Hq, D}, act);
  Tensor k = empty_cuda({B, L, Hkv, D}, kv), v = empty_cuda({B, L, Hkv, D}, kv);
  Tensor dq = empty_cuda({B, L, Hq, D}, act), dk = empty_cuda({B, L, Hkv, D}, act), dv = empty_cuda({B, L, Hkv, D}, act);
  fill_random(q, 21);
  fill_random(k, 22);
  fill_random(v, 23);
  fill_random(dout, 24);
  Tensor seq_h = Tensor::empty({B, L}, DType::I32);
  for (int64_t i = 0; i < B * L; ++i) seq_h.data<int32_t>()[i] = int32_t((i % L) / (L / 8));
  Tensor seq = to_device(seq_h, Device::CUDA);
  const Tensor* sp = docs ? &seq : nullptr;
  const float scale = 1.0f / std::sqrt(float(D));
  const int reps = reps_override ? reps_override : bf16 ? 20 : 3;
  const int warm = reps_override ? 0 : bf16 ? 3 : 1;
  Tensor lse2 = empty_cuda({B, Hq, L});
  if (cudnn) {
    // One call of each first: builds the plans (not timed), or says why cuDNN cannot run.
    try {
      ops::cuda::attention(q, k, v, sp, scale, out, &lse2);
      ops::cuda::attention_backward(q, k, v, sp, scale, dout, dq, dk, dv, &out, &lse2);
      ops::cuda::attention_backward(q, k, v, sp, scale, dout, dq, dk, dv);
      check(cudaDeviceSynchronize(), "cudnn warm-up");
    } catch (const Error& e) {
      std::printf("training B%ld_L%ld_H%ld_KV%ld_D%ld_cudnn: skipped: %s\n", long(B), long(L), long(Hq), long(Hkv),
                  long(D), e.what());
      ops::cuda::set_attention_backend(AttentionBackend::Own);
      return;
    }
  }
  const double f_ms = median_ms([&](int) { ops::cuda::attention(q, k, v, sp, scale, out, &lse2); }, reps, warm);
  // As training runs it: with the forward's out and lse2 (no statistics pass); and without them.
  const double b_ms = median_ms(
      [&](int) { ops::cuda::attention_backward(q, k, v, sp, scale, dout, dq, dk, dv, &out, &lse2); }, reps, warm);
  const double b_recompute_ms = median_ms(
      [&](int) { ops::cuda::attention_backward(q, k, v, sp, scale, dout, dq, dk, dv); }, reps, warm);
  const double f_flops = 4.0 * B * Hq * double(L) * L * D / 2, b_flops = 2.5 * f_flops;
  char tag[112];
  std::snprintf(tag, sizeof tag, "B%ld_L%ld_H%ld_KV%ld_D%ld%s%s%s%s", long(B), long(L), long(Hq), long(Hkv), long(D),
                bf16 ? "" : "_f32", docs ? "_docs8" : "", cudnn ? "_cudnn" : "", bf16_act ? "_bf16act" : "");
  std::printf("training %s: forward %.3f ms (%.1f TFLOP/s), backward %.3f ms (%.1f TFLOP/s "
              "counted), forward+backward %.3f ms (%.1f TFLOP/s)\n",
              tag, f_ms, f_flops / f_ms / 1e9, b_ms, b_flops / b_ms / 1e9, f_ms + b_ms,
              (f_flops + b_flops) / (f_ms + b_ms) / 1e9);
  std::printf("  backward recomputing the softmax statistics (no saved lse2): %.3f ms\n", b_recompute_ms);
  std::printf("RESULT train_bwd_recompute_stats %s %.4f ms\n", tag, b_recompute_ms);
  std::printf("RESULT train_fwd %s %.4f ms %.1f TFLOPs\n", tag, f_ms, f_flops / f_ms / 1e9);
  std::printf("RESULT train_bwd %s %.4f ms %.1f TFLOPs\n", tag, b_ms, b_flops / b_ms / 1e9);
  std::printf("RESULT train_fwdbwd %s %.4f ms %.1f TFLOPs\n", tag, f_ms + b_ms,
              (f_flops + b_flops) / (f_ms + b_ms) / 1e9);
  ops::cuda::set_attention_backend(AttentionBackend::Own);
}

}  // namespace

// --prefill-only skips the decode and training shapes, --decode-only the prefill and training,
// --training-only runs the training shapes alone, --cudnn-only the cuDNN training shapes alone,
// --profile one forward and one backward (GQA) with no warm-up, for a profiler (--profile-cudnn:
// the same through cuDNN). Our kernels are timed with cuDNN off (AttentionBackend::Own).
int main(int argc, char** argv) {
  const char* only = argc > 1 ? argv[1] : "";
  std::printf("%s\n", cuda_device_summary().c_str());
  ops::cuda::set_attention_backend(AttentionBackend::Own);
  if (!std::strcmp(only, "--profile")) {  // one forward and one backward, for ncu
    bench_training(2, 4096, 8, true, false, 1);
    return 0;
  }
  if (!std::strcmp(only, "--profile-cudnn")) {
    bench_training(2, 4096, 8, true, false, 1, AttentionBackend::Cudnn);
    return 0;
  }
  const bool cudnn_only = !std::strcmp(only, "--cudnn-only");
  if (!std::strcmp(only, "--training-only") || !std::strcmp(only, "") || cudnn_only) {
    std::printf("cuDNN: %s\n", ops::cuda::cudnn_version()
                                    ? ("libcudnn.so.9 version " + std::to_string(ops::cuda::cudnn_version())).c_str()
                                    : "not loaded");
    if (!cudnn_only) {
      bench_training(2, 4096, 32, true, false);
      bench_training(2, 4096, 8, true, false);
      bench_training(2, 4096, 8, true, true);
      bench_training(1, 1024, 8, false, false);  // the fp32 paths, at a size they finish quickly
    }
    bench_training(2, 4096, 32, true, false, 0, AttentionBackend::Cudnn);
    bench_training(2, 4096, 8, true, false, 0, AttentionBackend::Cudnn);
    bench_training(2, 4096, 32, true, false, 0, AttentionBackend::Cudnn, true);  // training's call
    bench_training(2, 4096, 8, true, false, 0, AttentionBackend::Cudnn, true);
    if (std::strcmp(only, "")) return 0;
  }
  if (std::strcmp(only, "--decode-only")) bench_prefill();
  if (!std::strcmp(only, "--prefill-only")) return 0;
  for (int64_t ctx : {4096, 32768, 131072})
    for (int64_t B : {1, 8, 32}) bench_decode(B, ctx);
  return 0;
}
