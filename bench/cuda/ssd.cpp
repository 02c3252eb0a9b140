// mambalm_bench_ssd: times ops::ssd_chunked's tensor-core path (src/ops/cuda/ssd.cu), at the chunk
// each row names rather than the one the op picks (ssd_bw::op_chunk), on
// the GPU at the shape (B 2, L 4096, H 128, P 64, G 8, N 128, chunk 256), at chunk 128 and
// at B 1, L 16384; its four kernels one by one; forward + backward (ssd_chunked then
// ssd_chunked_backward, src/ops/cuda/ssd_backward.cu, as training calls them: no states, dA and dD
// accumulated), the backward alone and its nine kernels, and both with document ids; the register
// recurrence at the same shape; and both forward paths at short T (where ssd_chunked switches to
// the recurrence). The peer, bench/cuda/ssd_peer.py, times mamba_ssm's Triton kernels
// (mamba_chunk_scan_combined, forward and forward + backward) at the same shapes.
// Timing: CUDA events around each call, 3 warm-up calls, median of 30, rotating 2 input sets
// (each ~0.6 GB, over 10x the 50 MB L2) so the cache does not hold the inputs.
// FLOPs (dense count, as the SSD paper's): per chunk of L tokens and sequence
//   2 L^2 N G (C B^T) + 2 L^2 P H (intra-chunk (L o CB) X) + 2 L P N H (chunk states)
//   + 2 L N P H (C S), ~73 GFLOP at the shape; the causal mask skips ~40% of the first two.
// Bytes: the fewest possible, x and y (4 B T H P each), B and C (4 B T G N each), dt (4 B T H).
// Backward: ~139 GFLOP and ~4.3 GB of DRAM traffic at the shape (the cost model in
// ssd_backward.cu's header); the fewest bytes are x, dy, dx (4 B T H P each), B, C, dB, dC.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "core/device.h"
#include "core/tensor.h"
#include "bench_data.h"
#include "event_timing.h"
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

using namespace mambalm;

namespace mambalm::ops::cuda {
// Defined in src/ops/cuda/ssd_backward.cu: the op with each of its nine kernels timed (stage_ms).
void ssd_chunked_backward_timed(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                                const Tensor& Cm, const Tensor* D, const Tensor* seq_idx, int64_t chunk_size,
                                const Tensor* initial_state, const Tensor* dfinal_state, const Tensor& dy,
                                Tensor& dx, Tensor& ddt, Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                                Tensor* dinitial_state, float* stage_ms, Fp32Products products);
}  // namespace mambalm::ops::cuda

namespace {

constexpr double kTf32TFlops = 495;  // dense TF32 tensor-core datasheet rate (H100/H200 SXM)

using bench_cuda::rand_gpu;

Tensor copy_of(const Tensor& t) { return to_device(t, Device::CUDA); }  // a device copy

struct Inputs {
  Tensor x, dt, A, Bm, Cm, D, state, y, dy, seq;
  Tensor y16;  // y in bf16, as mixed-precision training has the forward write it
  Tensor x16, Bm16, Cm16;  // x, Bm, Cm in bf16, as mixed-precision training's conv writes them
};
Tensor bf16_copy(const Tensor& g) { return to_device(to_device(g, Device::CPU).to(DType::BF16), Device::CUDA); }
Inputs make_inputs(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, uint64_t seed) {
  Inputs in;
  in.x = rand_gpu({B, T, H, P}, -1, 1, seed + 1);
  in.dt = rand_gpu({B, T, H}, 0.001f, 0.1f, seed + 2);
  in.A = rand_gpu({H}, -16, -1, seed + 3);
  in.Bm = rand_gpu({B, T, G, N}, -1, 1, seed + 4);
  in.Cm = rand_gpu({B, T, G, N}, -1, 1, seed + 5);
  in.D = rand_gpu({H}, 0.5f, 1.5f, seed + 6);
  in.state = rand_gpu({B, H, P, N}, -0.5f, 0.5f, seed + 7);
  in.y = empty_cuda({B, T, H, P});
  in.y16 = empty_cuda({B, T, H, P}, DType::BF16);
  in.dy = rand_gpu({B, T, H, P}, -1, 1, seed + 8);
  in.x16 = bf16_copy(in.x), in.Bm16 = bf16_copy(in.Bm), in.Cm16 = bf16_copy(in.Cm);
  // documents: each row cut into 4 at fixed, chunk-unaligned places
  Tensor seq = Tensor::empty({B, T}, DType::I32);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) seq.data<int32_t>()[b * T + t] = int32_t((t * 4 + 37 * b) / std::max<int64_t>(T, 1));
  in.seq = to_device(seq, Device::CUDA);
  return in;
}

// Gradients of one call (assigned ones, and the accumulated dA, dD).
struct Grads {
  Tensor dx, ddt, dB, dC, dA, dD;
};
Grads make_grads(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N) {
  return {empty_cuda({B, T, H, P}), empty_cuda({B, T, H}), empty_cuda({B, T, G, N}), empty_cuda({B, T, G, N}),
          zeros_on(Device::CUDA, {H}), zeros_on(Device::CUDA, {H})};
}

using bench_cuda::kCopyTBs;
using bench_cuda::median_ms;

double flops(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, int64_t Q) {
  double f = 0;
  for (int64_t c0 = 0; c0 < T; c0 += Q) {
    const double L = double(std::min(Q, T - c0));
    f += 2 * L * L * N * G + 2 * L * L * P * H + 4 * L * P * N * H;
  }
  return f * double(B);
}
double min_bytes(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N) {
  return 4.0 * B * T * (2.0 * H * P + 2.0 * G * N + H);
}

void bench_backward(std::vector<Inputs>& sets, int64_t B, int64_t T, int64_t Q, int64_t H, int64_t P, int64_t G,
                    int64_t N);

// The 8B model's heads (H 128, P 64, G 8, N 128) unless the study's small shape is asked for.
struct Heads {
  int64_t H = 128, P = 64, G = 8, N = 128;
};

void bench_shape(int64_t B, int64_t T, int64_t Q, bool with_recurrence, Heads hd = {}) {
  const int64_t H = hd.H, P = hd.P, G = hd.G, N = hd.N;
  std::vector<Inputs> sets;
  for (int k = 0; k < 2; ++k) sets.push_back(make_inputs(B, T, H, P, G, N, 1000 * (k + 1)));
  auto run = [&](int i) {
    Inputs& s = sets[size_t(i) % sets.size()];
    ops::cuda::ssd_chunked_tensor_cores(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, nullptr, Q, &s.state, s.y);
  };
  const double ms = median_ms(run);
  const double ms_again = median_ms(run);
  const double fl = flops(B, T, H, P, G, N, Q), by = min_bytes(B, T, H, P, G, N);
  std::printf("ssd_chunked B %lld L %lld H %lld P %lld G %lld N %lld chunk %lld: %.3f ms (again %.3f)  "
              "%.1f GFLOP -> %.1f TFLOP/s (%.0f%% of %.0f TF32)  %.0f MB -> %.2f TB/s (%.0f%% of %.1f)\n",
              (long long)B, (long long)T, (long long)H, (long long)P, (long long)G, (long long)N,
              (long long)Q, ms, ms_again, fl / 1e9, fl / ms / 1e9, 100 * fl / ms / 1e9 / kTf32TFlops,
              kTf32TFlops, by / 1e6, by / ms / 1e9, 100 * by / ms / 1e9 / kCopyTBs, kCopyTBs);
  std::printf("RESULT ssd_chunked%s B%lld_L%lld %.4f ms\n", Q == 256 ? "" : ("_c" + std::to_string(Q)).c_str(),
              (long long)B, (long long)T, ms);
  // the four kernels, median of 20 each
  std::vector<float> st[4];
  for (int i = 0; i < 23; ++i) {
    Inputs& s = sets[size_t(i) % sets.size()];
    float t4[4];
    ops::cuda::ssd_chunked_tensor_cores(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, nullptr, Q, &s.state, s.y, t4);
    if (i >= 3)
      for (int k = 0; k < 4; ++k) st[k].push_back(t4[k]);
  }
  const char* names[4] = {"chunk states (B^T X)", "C B^T", "state passing", "chunk scan (y)"};
  for (int k = 0; k < 4; ++k) {
    std::sort(st[k].begin(), st[k].end());
    std::printf("  stage %-22s %.4f ms\n", names[k], st[k][st[k].size() / 2]);
  }
  // the fast products (bf16 / TF32 operands) against the split, fp32-accurate ones: time, and the
  // normalised squared error of y from the same initial state
  {
    const double v = median_ms([&](int i) {
      Inputs& si = sets[size_t(i) % sets.size()];
      ops::cuda::ssd_chunked_tensor_cores(si.x, si.dt, si.A, si.Bm, si.Cm, &si.D, nullptr, Q, &si.state, si.y, nullptr,
                                          ops::Fp32Products::Exact);
    });
    Inputs& s = sets[0];
    Tensor st1 = copy_of(s.state), st2 = copy_of(s.state);
    Tensor yf = empty_cuda(s.y.shape()), ye = empty_cuda(s.y.shape());
    ops::cuda::ssd_chunked_tensor_cores(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, nullptr, Q, &st1, yf);
    ops::cuda::ssd_chunked_tensor_cores(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, nullptr, Q, &st2, ye, nullptr,
                                        ops::Fp32Products::Exact);
    Tensor a = to_device(yf, Device::CPU), e = to_device(ye, Device::CPU);
    double err = 0, ref = 0;
    for (int64_t k = 0, n = a.numel(); k < n; ++k) {
      const double dv = double(a.f32()[k]) - e.f32()[k];
      err += dv * dv;
      ref += double(e.f32()[k]) * e.f32()[k];
    }
    std::printf("  exact (split) products: %.3f ms; fast products' y nmse against them: %.2e\n", v, err / ref);
  }
  bench_backward(sets, B, T, Q, H, P, G, N);
  if (with_recurrence) {
    auto rec = [&](int i) {
      Inputs& s = sets[size_t(i) % sets.size()];
      ops::ssd_sequential(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, &s.state, s.y);
    };
    std::printf("  register recurrence (ssd_sequential) same shape: %.3f ms\n", median_ms(rec, 5, 1));
  }
}

// Training: forward + backward as the model calls them (no states; dA, dD accumulate; the fast
// products write a bf16 y, the exact ones an fp32 y), the
// backward alone with its nine kernels, and both with document ids.
void bench_backward(std::vector<Inputs>& sets, int64_t B, int64_t T, int64_t Q, int64_t H, int64_t P, int64_t G,
                    int64_t N) {
  Grads gr = make_grads(B, T, H, P, G, N);
  ops::Fp32Products products = ops::Fp32Products::Tf32;
  // at chunk Q (the ops pick their own chunk, ssd_bw::op_chunk). Mixed precision (the fast
  // products) reads x, Bm, Cm in bf16 and writes y in bf16 (the gated norm reads it); --dtype f32
  // training (the exact products) reads and writes fp32.
  auto bwd = [&](Inputs& s, bool docs) {
    const bool mixed = products == ops::Fp32Products::Tf32;
    ops::cuda::ssd_chunked_backward_timed(mixed ? s.x16 : s.x, s.dt, s.A, mixed ? s.Bm16 : s.Bm, mixed ? s.Cm16 : s.Cm,
                                          &s.D, docs ? &s.seq : nullptr, Q, nullptr, nullptr, s.dy, gr.dx, gr.ddt,
                                          &gr.dA, gr.dB, gr.dC, &gr.dD, nullptr, nullptr, products);
  };
  auto fwd = [&](Inputs& s, bool docs) {
    const bool mixed = products == ops::Fp32Products::Tf32;
    ops::cuda::ssd_chunked_tensor_cores(mixed ? s.x16 : s.x, s.dt, s.A, mixed ? s.Bm16 : s.Bm, mixed ? s.Cm16 : s.Cm,
                                        &s.D, docs ? &s.seq : nullptr, Q, nullptr, mixed ? s.y16 : s.y, nullptr,
                                        products);
  };
  const std::string key = std::string(Q == 256 ? "" : "_c" + std::to_string(Q)) + " B" + std::to_string(B) + "_L" +
                          std::to_string(T) + (H == 128 ? "" : "_H" + std::to_string(H) + "_N" + std::to_string(N));
  for (bool docs : {false, true}) {
    const double fb = median_ms([&](int i) {
      Inputs& s = sets[size_t(i) % sets.size()];
      fwd(s, docs);
      bwd(s, docs);
    });
    const double b = median_ms([&](int i) { bwd(sets[size_t(i) % sets.size()], docs); });
    const double f = median_ms([&](int i) { fwd(sets[size_t(i) % sets.size()], docs); });
    std::printf("  %s: forward %.3f ms, backward %.3f ms, forward + backward %.3f ms\n",
                docs ? "with documents (4 per row)" : "training (no states)", f, b, fb);
    std::printf("RESULT ssd_fwd%s%s %.4f ms\n", docs ? "_docs" : "", key.c_str(), f);
    std::printf("RESULT ssd_bwd%s%s %.4f ms\n", docs ? "_docs" : "", key.c_str(), b);
    std::printf("RESULT ssd_fwd_bwd%s%s %.4f ms\n", docs ? "_docs" : "", key.c_str(), fb);
  }
  {  // the exact (split-product) path that --dtype f32 training takes
    products = ops::Fp32Products::Exact;
    const double f = median_ms([&](int i) { fwd(sets[size_t(i) % sets.size()], false); });
    const double b = median_ms([&](int i) { bwd(sets[size_t(i) % sets.size()], false); });
    products = ops::Fp32Products::Tf32;
    std::printf("  exact fp32 products (3xTF32): forward %.3f ms, backward %.3f ms\n", f, b);
    std::printf("RESULT ssd_fwd_exact%s %.4f ms\nRESULT ssd_bwd_exact%s %.4f ms\n", key.c_str(), f, key.c_str(), b);
  }
  // the backward's kernels, median of 20 each
  const char* names[9] = {"prep", "gram (CB, dY X^T)", "states (Z, dZ)", "pass", "dx", "dB", "dC", "fin", "reduce"};
  std::vector<float> st[9];
  for (int i = 0; i < 23; ++i) {
    Inputs& s = sets[size_t(i) % sets.size()];
    float t9[9];
    ops::cuda::ssd_chunked_backward_timed(s.x16, s.dt, s.A, s.Bm16, s.Cm16, &s.D, nullptr, Q, nullptr, nullptr, s.dy,
                                          gr.dx, gr.ddt, &gr.dA, gr.dB, gr.dC, &gr.dD, nullptr, t9,
                                          ops::Fp32Products::Tf32);
    if (i >= 3)
      for (int k = 0; k < 9; ++k) st[k].push_back(t9[k]);
  }
  for (int k = 0; k < 9; ++k) {
    std::sort(st[k].begin(), st[k].end());
    std::printf("  backward stage %-18s %.4f ms\n", names[k], st[k][st[k].size() / 2]);
  }
  // determinism: two backward calls from zeroed accumulators give the same bits
  Grads g1 = make_grads(B, T, H, P, G, N), g2 = make_grads(B, T, H, P, G, N);
  for (Grads* g : {&g1, &g2})
    ops::cuda::ssd_chunked_backward_timed(sets[0].x16, sets[0].dt, sets[0].A, sets[0].Bm16, sets[0].Cm16, &sets[0].D,
                                          &sets[0].seq, Q, nullptr, nullptr, sets[0].dy, g->dx, g->ddt, &g->dA, g->dB,
                                          g->dC, &g->dD, nullptr, nullptr, ops::Fp32Products::Tf32);
  int64_t diff = 0;
  auto cmp = [&](const Tensor& a, const Tensor& b) {
    Tensor ha = to_device(a, Device::CPU), hb = to_device(b, Device::CPU);
    for (int64_t k = 0, n = ha.numel(); k < n; ++k) diff += ha.f32()[k] != hb.f32()[k];
  };
  cmp(g1.dx, g2.dx), cmp(g1.ddt, g2.ddt), cmp(g1.dB, g2.dB), cmp(g1.dC, g2.dC), cmp(g1.dA, g2.dA), cmp(g1.dD, g2.dD);
  std::printf("  backward run twice (documents): %lld elements differ\n", (long long)diff);
}

// Short T: the recurrence against the tensor-core path, to place kChunkedMinT.
void bench_short() {
  const int64_t B = 2, H = 128, P = 64, G = 8, N = 128;
  std::printf("short T (B 2, 8B heads, chunk 256): T, recurrence ms, tensor-core chunked ms\n");
  for (int64_t T : {1, 2, 4, 8, 16, 32, 64, 128, 256}) {
    Inputs s = make_inputs(B, T, H, P, G, N, 77 + T);
    const double r = median_ms([&](int) { ops::ssd_sequential(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, &s.state, s.y); }, 20);
    const double c = median_ms([&](int) {
      ops::cuda::ssd_chunked_tensor_cores(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, nullptr, 256, &s.state, s.y);
    }, 20);
    std::printf("  T %4lld  %.4f  %.4f\n", (long long)T, r, c);
  }
}

}  // namespace

// `mambalm_bench_ssd` runs the 8B-head shapes; `mambalm_bench_ssd small` the study's small Mamba-2
// layer instead (mamba2-26m: B 64 x L 1024 per micro-batch, H 16, P 64, G 8, N 64) at kernel chunks
// 64 (its config's), 128 and 256: the chunking changes rounding only, so the kernels may pick it;
// `mambalm_bench_ssd train` the training benchmark's layer (mamba2-48l, hybrid-48l: B 4 x L 4096,
// H 64, P 64, G 8, N 128) at chunks 128 (its config's) and 256.
int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "mambalm_bench_ssd: no CUDA device\n");
    return 2;
  }
  try {
    std::printf("device: %s\n", cuda_device_summary().c_str());
    if (mode == "small") {
      for (int64_t q : {64, 128, 256}) bench_shape(64, 1024, q, false, Heads{16, 64, 8, 64});
      return 0;
    }
    if (mode == "train") {
      for (int64_t q : {128, 256}) bench_shape(4, 4096, q, false, Heads{64, 64, 8, 128});
      return 0;
    }
    bench_shape(2, 4096, 256, true);
    bench_shape(2, 4096, 128, false);
    bench_shape(1, 16384, 256, false);
    bench_short();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mambalm_bench_ssd: %s\n", e.what());
    return 1;
  }
  return 0;
}
