// Benchmark of ops::linear on CUDA with bf16 weights at the 8B shapes:
//  - decode (GEMV, M = 1..8): GB/s of weight bytes read, against the measured copy bandwidth;
//  - prefill (cuBLASLt, M = 4096..16384 rows): TFLOP/s counting 2 M N K.
// Weights rotate among enough copies to exceed the 60 MB L2 (decode) so every call streams
// from HBM. Median of 30 cudaEvent-timed calls after warm-up. bench/cuda/linear_peer.py times
// torch.matmul on the same shapes in the same run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "event_timing.h"
#include "core/device.h"
#include "core/tensor.h"
#include "ops/ops.h"

using namespace mambalm;

using bench_cuda::median_ms;

int main() {
  std::printf("device: %s\n", cuda_device_summary().c_str());
  Tensor ca = empty_cuda({int64_t(1) << 30}), cb = empty_cuda({int64_t(1) << 30});
  fill_uniform_cuda(ca, 1, -1, 1);
  const double copy_ms = median_ms([&](int) { copy_async(ca, cb); }, 10);
  const double bw = 2.0 * double(ca.nbytes()) / (copy_ms * 1e-3);
  ca = Tensor();
  cb = Tensor();
  std::printf("copy bandwidth (read + write): %.0f GB/s\n\n", bw / 1e9);

  struct Shape2 { int64_t N, K; const char* what; };
  const Shape2 shapes[] = {{18560, 4096, "mamba2 in_proj"}, {4096, 8192, "mamba2 out_proj"}, {16384, 4096, "mlp up"},
                           {4096, 16384, "mlp down"}, {256000, 4096, "lm head"}};
  std::printf("| shape | M | ms | GB/s weights | fraction of copy bw |\n|---|---|---|---|---|\n");
  for (const Shape2& s : shapes) {
    const int copies = int(std::max<int64_t>(2, (int64_t(512) << 20) / (s.N * s.K * 2) + 1));
    std::vector<Tensor> ws;
    for (int c = 0; c < copies; ++c) {
      ws.push_back(empty_cuda({s.N, s.K}, DType::BF16));
      fill_uniform_cuda(ws.back(), 10 + uint64_t(c), -0.03f, 0.03f);
    }
    for (int64_t M : {1, 2, 4, 8}) {
      Tensor x = empty_cuda({M, s.K}), y = empty_cuda({M, s.N});
      fill_uniform_cuda(x, 3, -1, 1);
      const double ms = median_ms([&](int i) { ops::linear(x, ws[size_t(i) % ws.size()], nullptr, y); });
      const double gbs = double(s.N * s.K * 2) / (ms * 1e-3);
      std::printf("| %s [%lld x %lld] | %lld | %.4f | %.0f | %.0f%% |\n", s.what, (long long)s.N, (long long)s.K,
                  (long long)M, ms, gbs / 1e9, 100.0 * gbs / bw);
    }
  }
  std::printf("\n| shape | M | ms | TFLOP/s |\n|---|---|---|---|\n");
  for (const Shape2& s : shapes) {
    if (s.N > 100000) continue;
    Tensor w = empty_cuda({s.N, s.K}, DType::BF16);
    fill_uniform_cuda(w, 5, -0.03f, 0.03f);
    for (int64_t M : {64, 256, 4096, 8192, 16384}) {
      Tensor x = empty_cuda({M, s.K}), y = empty_cuda({M, s.N});
      fill_uniform_cuda(x, 3, -1, 1);
      const double ms = median_ms([&](int) { ops::linear(x, w, nullptr, y); });
      std::printf("| %s [%lld x %lld] | %lld | %.4f | %.1f |\n", s.what, (long long)s.N, (long long)s.K, (long long)M, ms,
                  2.0 * double(M * s.N * s.K) / (ms * 1e-3) / 1e12);
    }
  }
  return 0;
}
