// Benchmark of the CUDA attention kernels (bf16 K/V):
//  - prefill: B=2, L=4096, 32 heads (Hq = Hkv), Dh 128, causal; TFLOP/s counting
//    4 * B * H * L * L * Dh / 2 (the causal half of QK^T and PV);
//  - decode: one query per sequence, 32 query heads / 8 KV heads / Dh 128, batch 1/8/32 at
//    contexts 4K/32K/128K (every sequence at full length); GB/s counting the K and V bytes read.
//    MAMBALM_ATTN_DECODE=split times the older split + combine kernels (see attention.cu).
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
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "ops/cuda/cuda_ops.h"

using namespace mambalm;

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

template <class F>
double median_ms(F&& f, int reps = 25, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) f(i);
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a), "record");
    f(warmup + i);
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    float t = 0;
    check(cudaEventElapsedTime(&t, a, b), "elapsed");
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

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

}  // namespace

// --prefill-only skips the decode shapes, --decode-only the prefill.
int main(int argc, char** argv) {
  const char* only = argc > 1 ? argv[1] : "";
  std::printf("%s\n", cuda_device_summary().c_str());
  if (std::strcmp(only, "--decode-only")) bench_prefill();
  if (!std::strcmp(only, "--prefill-only")) return 0;
  for (int64_t ctx : {4096, 32768, 131072})
    for (int64_t B : {1, 8, 32}) bench_decode(B, ctx);
  return 0;
}
