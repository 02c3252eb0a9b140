// mambalm_bench_norms: times the norms' backward as mixed-precision training calls it
// (src/ops/cuda/norms_backward.cu) at the training presets' shape (micro-batch 4 x 4096 tokens):
//   block RMSNorm, d_model 2048: fp32 x and dy in, the residual's dx += dnorm, dw accumulated;
//   Mamba-2's gated RMSNorm, d_inner 4096 in groups of 512: fp32 x and dy, bf16 z in, fp32 dx and
//   bf16 dz out, dw accumulated;
// and LayerNorm1p at the block shape (the study's 8B Transformer's norm). --rows R and --dim D,Di
// change the shape.
// Timing: CUDA events around each call, 3 warm-up calls, median of 30, rotating 2 input sets (each
// over 0.2 GB, over 4x the 50 MB L2).
// Bytes, the fewest possible: RMSNorm / LayerNorm with dx += 16 bytes per element (x, dy, dx read,
// dx written); gated 16 (x 4, z 2, dy 4 in; dx 4, dz 2 out). Also prints an FNV-1a hash of every
// output's bits after one fresh call, so two builds can be shown to compute the same bits.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>

#include "bench_data.h"
#include "core/device.h"
#include "core/tensor.h"
#include "event_timing.h"
#include "ops/ops_backward.h"

using namespace mambalm;

namespace {

constexpr int64_t kGroup = 512;  // the gated norm's group (d_inner / 8 norm groups)

using bench_cuda::fnv;
using bench_cuda::kCopyTBs;
using bench_cuda::median_ms;
using bench_cuda::rand_gpu;

struct Set {
  Tensor x, dy, dx, w, dw;           // block norm: [rows, D]
  Tensor gx, gz, gdy, gdx, gdz, gw, gdw;  // gated norm: [rows, Di], z and dz bf16
};

void report(const char* what, long long rows, long long d, double ms1, double ms2, double bytes) {
  const double ms = std::min(ms1, ms2);
  std::printf("%-22s rows %lld D %lld: %.4f ms (again %.4f)  %.0f MB -> %.2f TB/s (%.0f%% of %.1f)\n", what, rows, d,
              ms1, ms2, bytes / 1e6, bytes / ms / 1e9, 100 * bytes / ms / 1e9 / kCopyTBs, kCopyTBs);
  std::printf("RESULT %s %.4f ms\n", what, ms);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 4 * 4096, D = 2048, Di = 4096;
  for (int i = 1; i < argc; ++i) {
    long long a = 0, b = 0;
    if (std::strcmp(argv[i], "--rows") == 0 && i + 1 < argc && std::sscanf(argv[++i], "%lld", &a) == 1 && a > 0) {
      rows = a;
    } else if (std::strcmp(argv[i], "--dim") == 0 && i + 1 < argc &&
               std::sscanf(argv[++i], "%lld,%lld", &a, &b) == 2 && a > 0 && b > 0 && b % kGroup == 0) {
      D = a, Di = b;
    } else {
      std::fprintf(stderr, "usage: mambalm_bench_norms [--rows R] [--dim D,Di] (Di a multiple of %lld)\n",
                   (long long)kGroup);
      return 2;
    }
  }
  std::vector<Set> sets(2);
  for (int k = 0; k < 2; ++k) {
    Set& s = sets[size_t(k)];
    const uint64_t seed = 100 * uint64_t(k + 1);
    s.x = rand_gpu({rows, D}, -2, 2, seed + 1);
    s.dy = rand_gpu({rows, D}, -1, 1, seed + 2);
    s.dx = rand_gpu({rows, D}, -1, 1, seed + 3);
    s.w = rand_gpu({D}, 0.5f, 1.5f, seed + 4);
    s.dw = zeros_on(Device::CUDA, {D});
    s.gx = rand_gpu({rows, Di}, -2, 2, seed + 5);
    s.gz = rand_gpu({rows, Di}, -3, 3, seed + 6, DType::BF16);
    s.gdy = rand_gpu({rows, Di}, -1, 1, seed + 7);
    s.gdx = empty_cuda({rows, Di});
    s.gdz = empty_cuda({rows, Di}, DType::BF16);
    s.gw = rand_gpu({Di}, 0.5f, 1.5f, seed + 8);
    s.gdw = zeros_on(Device::CUDA, {Di});
  }
  const float eps = 1e-5f;
  auto rms = [&](int i) {
    Set& s = sets[size_t(i) % sets.size()];
    ops::rms_norm_backward(s.x, s.w, eps, s.dy, s.dx, &s.dw, /*accumulate_dx=*/true);
  };
  auto ln = [&](int i) {
    Set& s = sets[size_t(i) % sets.size()];
    ops::layer_norm_backward(s.x, s.w, eps, /*zero_centered=*/true, s.dy, s.dx, &s.dw, nullptr, true);
  };
  auto gated = [&](int i) {
    Set& s = sets[size_t(i) % sets.size()];
    ops::gated_rms_norm_backward(s.gx, s.gz, s.gw, kGroup, eps, s.gdy, s.gdx, s.gdz, &s.gdw);
  };
  const double block_bytes = 16.0 * double(rows) * D, gated_bytes = 16.0 * double(rows) * Di;
  const double r1 = median_ms(rms), r2 = median_ms(rms);
  report("rms_norm_backward", rows, D, r1, r2, block_bytes);
  const double l1 = median_ms(ln), l2 = median_ms(ln);
  report("layer_norm1p_backward", rows, D, l1, l2, block_bytes);
  const double g1 = median_ms(gated), g2 = median_ms(gated);
  report("gated_norm_backward", rows, Di, g1, g2, gated_bytes);

  // the bits of one fresh call of each on set 0 (dx restored first: the block norms add into it)
  Set& s = sets[0];
  s.dx = rand_gpu({rows, D}, -1, 1, 103);
  s.dw = zeros_on(Device::CUDA, {D});
  rms(0);
  cuda_synchronize();
  const uint64_t rdx = fnv(s.dx), rdw = fnv(s.dw);
  s.dx = rand_gpu({rows, D}, -1, 1, 103);
  s.dw = zeros_on(Device::CUDA, {D});
  ln(0);
  s.gdw = zeros_on(Device::CUDA, {Di});
  gated(0);
  cuda_synchronize();
  std::printf("bits rms dx %016llx dw %016llx  ln dx %016llx dw %016llx  gated dx %016llx dz %016llx dw %016llx\n",
              (unsigned long long)rdx, (unsigned long long)rdw, (unsigned long long)fnv(s.dx),
              (unsigned long long)fnv(s.dw), (unsigned long long)fnv(s.gdx), (unsigned long long)fnv(s.gdz),
              (unsigned long long)fnv(s.gdw));
  return 0;
}
