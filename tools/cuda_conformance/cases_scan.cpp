// Conformance cases for the Mamba-2 SSD (chunked prefill, decode step) and the Mamba-1
// selective scan at the 8B shapes plus odd sizes.
#include <cmath>
#include <string>

#include "harness.h"
#include "ops/layout.h"
#include "ops/ops.h"
#include "ops/cuda/cuda_ops.h"

namespace conformance {
namespace {

struct SsdInputs {
  Tensor x, dt, A, Bm, Cm, D, state;
};
SsdInputs ssd_inputs(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N) {
  SsdInputs s;
  s.x = rand_cpu({B, T, H, P}, -1, 1);
  s.dt = rand_cpu({B, T, H}, 0.001f, 0.1f);
  s.A = rand_cpu({H}, -16, -1);  // A = -exp(A_log) with A_log init log U[1, 16]
  s.Bm = rand_cpu({B, T, G, N}, -1, 1);
  s.Cm = rand_cpu({B, T, G, N}, -1, 1);
  s.D = rand_cpu({H}, 0.5f, 1.5f);
  s.state = rand_cpu({B, H, P, N}, -0.5f, 0.5f);
  return s;
}

void check_ssd(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk) {
  SsdInputs s = ssd_inputs(B, T, H, P, G, N);
  Tensor y = Tensor::empty({B, T, H, P}), st = s.state.clone();
  Tensor gx = up(s.x), gdt = up(s.dt), gA = up(s.A), gB = up(s.Bm), gC = up(s.Cm), gD = up(s.D);
  Tensor gst = up(s.state), gy = poisoned({B, T, H, P});
  auto t = run_pair([&] { ops::ssd_chunked(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, chunk, &st, y); },
                    [&] { ops::ssd_chunked(gx, gdt, gA, gB, gC, &gD, chunk, &gst, gy); }, false);
  const double err_y = nmse(gy, y);
  // timing on scratch state and output (each timed call advances its state)
  Tensor gst2 = up(s.state), gy2 = poisoned({B, T, H, P});
  const double g_ms = time_ms([&] { ops::ssd_chunked(gx, gdt, gA, gB, gC, &gD, chunk, &gst2, gy2); });
  const std::string sh = shape_str(s.x.shape()) + " G" + std::to_string(G) + " N" + std::to_string(N) +
                         " c" + std::to_string(chunk);
  record("ssd_chunked", sh, "y", err_y, kScan, g_ms, t.cpu_ms);
  record("ssd_chunked", sh, "state", nmse(gst, st), kScan, NAN, NAN);
  // the chunked shared-memory kernel (not yet the op's path, see cuda_ops.h) on the same prefill
  Tensor gst3 = up(s.state), gy3 = poisoned({B, T, H, P});
  if (ops::cuda::ssd_chunked_shared(gx, gdt, gA, gB, gC, &gD, chunk, &gst3, gy3)) {
    const double err_y3 = nmse(gy3, y), err_s3 = nmse(gst3, st);
    const double r_ms =
        time_ms([&] { ops::cuda::ssd_chunked_shared(gx, gdt, gA, gB, gC, &gD, chunk, &gst2, gy2); });
    record("ssd_chunked_shared", sh, "y", err_y3, kScan, r_ms, NAN);
    record("ssd_chunked_shared", sh, "state", err_s3, kScan, NAN, NAN);
  }
  // decode step (T = 1) continuing from the final state
  SsdInputs d = ssd_inputs(B, 1, H, P, G, N);
  Tensor y1 = Tensor::empty({B, 1, H, P});
  Tensor gy1 = poisoned({B, 1, H, P});
  Tensor gdx = up(d.x), gddt = up(d.dt), gdB = up(d.Bm), gdC = up(d.Cm);
  ops::ssd_sequential(d.x, d.dt, s.A, d.Bm, d.Cm, &s.D, &st, y1);
  ops::ssd_sequential(gdx, gddt, gA, gdB, gdC, &gD, &gst, gy1);
  record("ssd_sequential", "decode T=1 after prefill", "y", nmse(gy1, y1), kScan, NAN, NAN);
  record("ssd_sequential", "decode T=1 after prefill", "state", nmse(gst, st), kScan, NAN, NAN);
}

void check_scan(int64_t B, int64_t T, int64_t Di, int64_t N) {
  Tensor u = rand_cpu({B, T, Di}, -1, 1), delta = rand_cpu({B, T, Di}, 0.001f, 0.1f);
  Tensor A = Tensor::empty({Di, N});
  for (int64_t d = 0; d < Di; ++d)
    for (int64_t n = 0; n < N; ++n) A.f32()[d * N + n] = -float(n + 1);
  Tensor Bm = rand_cpu({B, T, N}, -1, 1), Cm = rand_cpu({B, T, N}, -1, 1), D = rand_cpu({Di}, 0.5f, 1.5f);
  Tensor z = rand_cpu({B, T, Di}, -2, 2), st0 = rand_cpu({B, Di, N}, -0.5f, 0.5f);
  Tensor y = Tensor::empty({B, T, Di}), st = st0.clone();
  Tensor gu = up(u), gdl = up(delta), gA = up(A), gB = up(Bm), gC = up(Cm), gD = up(D), gz = up(z);
  Tensor gst = up(st0), gy = poisoned({B, T, Di});
  auto t = run_pair([&] { ops::selective_scan(u, delta, A, Bm, Cm, &D, &z, &st, y); },
                    [&] { ops::selective_scan(gu, gdl, gA, gB, gC, &gD, &gz, &gst, gy); }, false);
  Tensor gst2 = up(st0);
  Tensor gy2 = poisoned({B, T, Di});
  const double g_ms = time_ms([&] { ops::selective_scan(gu, gdl, gA, gB, gC, &gD, &gz, &gst2, gy2); });
  const std::string sh = shape_str(u.shape()) + " N" + std::to_string(N);
  record("selective_scan", sh, "y", nmse(gy, y), kScan, g_ms, t.cpu_ms);
  record("selective_scan", sh, "state", nmse(gst, st), kScan, NAN, NAN);
}

void check_rope(int64_t B, int64_t T, int64_t H, int64_t Dh, int64_t rot, int64_t pos0) {
  Tensor x = rand_cpu({B, T, H, Dh}, -1, 1);
  Tensor gx = up(x);
  auto t0 = std::chrono::steady_clock::now();
  ops::rope(x, pos0, rot, 10000.0);
  const double c = ms_since(t0);
  ops::rope(gx, pos0, rot, 10000.0);
  cuda_synchronize();
  const double err = nmse(gx, x);
  Tensor scratch = up(x);
  const double g = time_ms([&] { ops::rope(scratch, pos0, rot, 10000.0); });
  record("rope", shape_str(x.shape()) + " r" + std::to_string(rot) + " pos0 " + std::to_string(pos0),
         "x", err, kElementwise, g, c);
}

void run_scan(bool quick) {
  const int64_t B = 2, T = quick ? 77 : 200;
  const int64_t di = 8192, H = 128, P = 64, G = 8, N = 128;
  check_ssd(B, T, H, P, G, N, 128);
  check_ssd(3, 37, 6, 24, 2, 40, 16);  // odd sizes: partial lanes and rows, 3 sequences
  if (!quick) check_ssd(1, 2000, H, P, G, N, 128);  // long prefill: 15 full chunks + 80
  check_scan(B, T, di, 16);
  check_scan(3, 29, 37, 70);  // odd sizes
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("scan", run_scan);

}  // namespace conformance
