// mambalm_bench_conv: times Mamba-2's causal depthwise conv as mixed-precision training calls it
// (src/ops/cuda/conv.cu): the forward ops::causal_conv1d_parts (bf16 x | B | C in, SiLU, fp32
// x, B and C out as three column blocks) and the backward ops::causal_conv1d_backward_parts (fp32
// dy blocks in, bf16 dx out, dw and dbias accumulated), at the training presets' shape (B 4,
// T 4096, d_inner 4096, G 1, N 128 ... as mamba2-48l: C = 4096 + 2 x 1024 = 6144, K 4) unless
// --shape B,T,Cx,Cbc is given.
// Timing: CUDA events around each call, 3 warm-up calls, median of 30, rotating 2 input sets (each
// over 0.6 GB, over 10x the 50 MB L2).
// Bytes, the fewest possible: forward 2 (x) + 4 (y) bytes per element; backward 2 (x) + 4 (dy) +
// 2 (dx) bytes per element. Also prints an FNV-1a hash of every output's bits, so two builds or
// two kernel variants can be shown to compute the same bits.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/device.h"
#include "core/tensor.h"
#include "bench_data.h"
#include "event_timing.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

using namespace mambalm;

namespace {


using bench_cuda::fnv;
using bench_cuda::kCopyTBs;
using bench_cuda::median_ms;
using bench_cuda::rand_gpu;

struct Set {
  Tensor x, w, b, y[3], dy[3], dx, dw, db;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t B = 4, T = 4096, Cx = 4096, Cbc = 1024, K = 4;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
      long long b, t, cx, cbc;
      if (std::sscanf(argv[++i], "%lld,%lld,%lld,%lld", &b, &t, &cx, &cbc) != 4) {
        std::fprintf(stderr, "mambalm_bench_conv: --shape B,T,Cx,Cbc\n");
        return 2;
      }
      B = b, T = t, Cx = cx, Cbc = cbc;
    } else {
      std::fprintf(stderr, "usage: mambalm_bench_conv [--shape B,T,Cx,Cbc]\n");
      return 2;
    }
  }
  const int64_t C = Cx + 2 * Cbc;
  std::vector<Set> sets(2);
  for (int k = 0; k < 2; ++k) {
    Set& s = sets[size_t(k)];
    const uint64_t seed = 100 * uint64_t(k + 1);
    s.x = rand_gpu({B, T, C}, -2, 2, seed + 1, DType::BF16);
    s.w = rand_gpu({C, K}, -0.5f, 0.5f, seed + 2);
    s.b = rand_gpu({C}, -0.5f, 0.5f, seed + 3);
    const int64_t widths[3] = {Cx, Cbc, Cbc};
    for (int j = 0; j < 3; ++j) {
      s.y[j] = empty_cuda({B, T, widths[j]});
      s.dy[j] = rand_gpu({B, T, widths[j]}, -1, 1, seed + 4 + uint64_t(j));
    }
    s.dx = empty_cuda({B, T, C}, DType::BF16);
    s.dw = zeros_on(Device::CUDA, {C, K});
    s.db = zeros_on(Device::CUDA, {C});
  }
  auto fwd = [&](int i) {
    Set& s = sets[size_t(i) % sets.size()];
    ops::causal_conv1d_parts(s.x, s.w, &s.b, nullptr, nullptr, true, {&s.y[0], &s.y[1], &s.y[2]});
  };
  auto bwd = [&](int i) {
    Set& s = sets[size_t(i) % sets.size()];
    ops::causal_conv1d_backward_parts(s.x, s.w, &s.b, nullptr, true, {&s.dy[0], &s.dy[1], &s.dy[2]}, s.dx, &s.dw,
                                      &s.db);
  };
  const double elems = double(B) * T * C;
  const double f1 = median_ms(fwd), f2 = median_ms(fwd);
  const double b1 = median_ms(bwd), b2 = median_ms(bwd);
  const double fwd_bytes = 6 * elems, bwd_bytes = 8 * elems;
  std::printf("conv forward  B %lld T %lld C %lld K %lld: %.4f ms (again %.4f)  %.0f MB -> %.2f TB/s (%.0f%% of %.1f)\n",
              (long long)B, (long long)T, (long long)C, (long long)K, f1, f2, fwd_bytes / 1e6,
              fwd_bytes / std::min(f1, f2) / 1e9, 100 * fwd_bytes / std::min(f1, f2) / 1e9 / kCopyTBs, kCopyTBs);
  std::printf("conv backward B %lld T %lld C %lld K %lld: %.4f ms (again %.4f)  %.0f MB -> %.2f TB/s (%.0f%% of %.1f)\n",
              (long long)B, (long long)T, (long long)C, (long long)K, b1, b2, bwd_bytes / 1e6,
              bwd_bytes / std::min(b1, b2) / 1e9, 100 * bwd_bytes / std::min(b1, b2) / 1e9 / kCopyTBs, kCopyTBs);
  std::printf("RESULT conv_forward %.4f ms\nRESULT conv_backward %.4f ms\n", std::min(f1, f2), std::min(b1, b2));
  // the bits of one fresh forward and one fresh backward of set 0
  Set& s = sets[0];
  s.dw = zeros_on(Device::CUDA, {C, K});
  s.db = zeros_on(Device::CUDA, {C});
  fwd(0);
  bwd(0);
  cuda_synchronize();
  std::printf("bits y %016llx %016llx %016llx dx %016llx dw %016llx db %016llx\n", (unsigned long long)fnv(s.y[0]),
              (unsigned long long)fnv(s.y[1]), (unsigned long long)fnv(s.y[2]), (unsigned long long)fnv(s.dx),
              (unsigned long long)fnv(s.dw), (unsigned long long)fnv(s.db));
  return 0;
}
