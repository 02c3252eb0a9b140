// Conformance cases for the Mamba-2 SSD (chunked prefill, decode step) and the Mamba-1
// selective scan at the 8B shapes plus odd sizes.
#include <algorithm>
#include <cmath>
#include <string>

#include "harness.h"
#include "ops/ops.h"

namespace conformance {
namespace {

struct SsdInputs {
  Tensor x, dt, A, Bm, Cm, D, state;
};
// dt_hi: the largest dt (at 0.1, the init range, the per-head decay over a 64-row tile spans ~0.2
// .. ~100, so the chunk scan both factors its decays and falls back to an exp per element).
SsdInputs ssd_inputs(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, float dt_hi = 0.1f) {
  SsdInputs s;
  s.x = rand_cpu({B, T, H, P}, -1, 1);
  s.dt = rand_cpu({B, T, H}, 0.001f, dt_hi);
  s.A = rand_cpu({H}, -16, -1);  // A = -exp(A_log) with A_log init log U[1, 16]
  s.Bm = rand_cpu({B, T, G, N}, -1, 1);
  s.Cm = rand_cpu({B, T, G, N}, -1, 1);
  s.D = rand_cpu({H}, 0.5f, 1.5f);
  s.state = rand_cpu({B, H, P, N}, -0.5f, 0.5f);
  return s;
}

// ssd_chunked on the tensor cores (shapes with P and N multiples of 64 and T >= 16) with the fast
// products rounds its operands to bf16 (8-bit significand, a relative rounding error of
// ~1.6e-3 rms, ~2.5e-6 in nmse per rounded operand): y and the final state chain two to four such
// roundings (C and B, then C B^T into the decayed matrix, x; the chunk states' TF32 -> bf16 the
// same way). Measured nmse 3.9e-7 .. 9.3e-6 (the largest without D x, whose exact fp32 term
// dilutes the error otherwise; T 17 .. 4096, chunks 64 .. 256; H200, 2026-12-03). 1e-4 leaves 10x,
// while a dropped term (D x, the state contribution, one chunk's intra-chunk part) or a wrong
// decay moves whole rows of y by O(1). At N 64 the CUDA op runs chunk 128 whatever chunk a row names
// (ssd_bw::op_chunk), the CPU op the one named; the chunk changes only rounding.
constexpr double kSsdFast = 1e-4;
// A bf16 y from the recurrence (fp32 sums a few ulp from the CPU's, rounded once): one bf16 ulp
// where the two fp32 values straddle a rounding boundary, nmse ~1e-9; truncating instead of
// rounding would give ~1e-5 (a third of an ulp squared, everywhere).
constexpr double kSsdBf16Y = 1e-6;

// One prefill through ssd_chunked against the CPU op: y, and the final state when `with_state`
// (a random initial state goes in; without it the op starts from zeros and returns no state).
// Then one decode step (ssd_sequential, T = 1) from the CPU's final state on both sides. y16: the
// GPU writes y in bf16 (mixed-precision training), scored against the CPU's y rounded. in16: the
// GPU reads x, Bm, Cm in bf16 (as mixed-precision training's conv writes them), the CPU the same
// values in fp32.
void check_ssd(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk,
               bool with_state = true, bool with_D = true, ops::Fp32Products products = ops::Fp32Products::Tf32,
               bool y16 = false, float dt_hi = 0.1f, bool in16 = false) {
  SsdInputs s = ssd_inputs(B, T, H, P, G, N, dt_hi);
  auto input = [&](Tensor& t) {  // the CPU's copy rounded; the GPU's
    if (!in16) return up(t);
    t = t.to(DType::BF16);
    Tensor g = up(t);
    t = t.to(DType::F32);
    return g;
  };
  Tensor y = Tensor::empty({B, T, H, P}), st = s.state.clone();
  Tensor gx = input(s.x), gdt = up(s.dt), gA = up(s.A), gB = input(s.Bm), gC = input(s.Cm), gD = up(s.D);
  const DType yt = y16 ? DType::BF16 : DType::F32;
  Tensor gst = up(s.state), gy = poisoned({B, T, H, P}, yt);
  const Tensor* Dc = with_D ? &s.D : nullptr;
  const Tensor* Dg = with_D ? &gD : nullptr;
  auto t = run_pair([&] { ops::ssd_chunked(s.x, s.dt, s.A, s.Bm, s.Cm, Dc, nullptr, chunk, with_state ? &st : nullptr, y); },
                    [&] { ops::ssd_chunked(gx, gdt, gA, gB, gC, Dg, nullptr, chunk, with_state ? &gst : nullptr, gy, products); },
                    false);
  const double err_y = y16 ? nmse(up(down(gy).to(DType::F32)), y.to(DType::BF16).to(DType::F32)) : nmse(gy, y);
  // timing on scratch state and output (each timed call advances its state)
  Tensor gst2 = up(s.state), gy2 = poisoned({B, T, H, P}, yt);
  const double g_ms =
      time_ms([&] { ops::ssd_chunked(gx, gdt, gA, gB, gC, Dg, nullptr, chunk, with_state ? &gst2 : nullptr, gy2, products); });
  const std::string sh = shape_str(s.x.shape()) + " G" + std::to_string(G) + " N" + std::to_string(N) +
                         " c" + std::to_string(chunk) + (with_state ? "" : " s0") + (with_D ? "" : " noD") +
                         (products == ops::Fp32Products::Exact ? " exact" : "") + (y16 ? " y bf16" : "") +
                         (dt_hi != 0.1f ? " dt<=" + std::to_string(dt_hi).substr(0, 5) : "") + (in16 ? " in bf16" : "");
  // the tensor-core path's rounding, or the recurrence's fp32 (see ssd.cu for which runs)
  const bool tiled = T >= 16 && P % 64 == 0 && N % 64 == 0;
  // (the exact products: fp32 summation order only, kScan)
  const double limit = tiled && products == ops::Fp32Products::Tf32 ? kSsdFast : kScan;
  record("ssd_chunked", sh, "y", err_y, y16 ? std::max(limit, kSsdBf16Y) : limit, g_ms, t.cpu_ms);
  if (with_state) record("ssd_chunked", sh, "state", nmse(gst, st), limit, NAN, NAN);
  if (!with_state) return;
  // decode step (T = 1) continuing from the CPU's final state on both sides: checks the
  // recurrence alone (the GPU prefill's rounding is scored above)
  SsdInputs d = ssd_inputs(B, 1, H, P, G, N);
  Tensor y1 = Tensor::empty({B, 1, H, P});
  Tensor gy1 = poisoned({B, 1, H, P});
  Tensor gdx = up(d.x), gddt = up(d.dt), gdB = up(d.Bm), gdC = up(d.Cm), gst1 = up(st);
  ops::ssd_sequential(d.x, d.dt, s.A, d.Bm, d.Cm, &s.D, &st, y1);
  ops::ssd_sequential(gdx, gddt, gA, gdB, gdC, &gD, &gst1, gy1);
  record("ssd_sequential", "decode T=1 after prefill", "y", nmse(gy1, y1), kScan, NAN, NAN);
  record("ssd_sequential", "decode T=1 after prefill", "state", nmse(gst1, st), kScan, NAN, NAN);
}

void check_scan(int64_t B, int64_t T, int64_t Di, int64_t N, bool docs = false) {
  Tensor u = rand_cpu({B, T, Di}, -1, 1), delta = rand_cpu({B, T, Di}, 0.001f, 0.1f);
  Tensor A = Tensor::empty({Di, N});
  for (int64_t d = 0; d < Di; ++d)
    for (int64_t n = 0; n < N; ++n) A.f32()[d * N + n] = -float(n + 1);
  Tensor Bm = rand_cpu({B, T, N}, -1, 1), Cm = rand_cpu({B, T, N}, -1, 1), D = rand_cpu({Di}, 0.5f, 1.5f);
  Tensor z = rand_cpu({B, T, Di}, -2, 2), st0 = rand_cpu({B, Di, N}, -0.5f, 0.5f);
  Tensor y = Tensor::empty({B, T, Di}), st = st0.clone();
  Tensor gu = up(u), gdl = up(delta), gA = up(A), gB = up(Bm), gC = up(Cm), gD = up(D), gz = up(z);
  Tensor gst = up(st0), gy = poisoned({B, T, Di});
  const Tensor seq = docs ? random_documents(B, T) : Tensor::empty({B, T}, DType::I32), gseq = up(seq);
  const Tensor* sq = docs ? &seq : nullptr;
  const Tensor* gsq = docs ? &gseq : nullptr;
  const Shape cs_shape{B, (T + ops::kScanStateChunk - 1) / ops::kScanStateChunk, Di, N};
  Tensor cs = Tensor::empty(cs_shape), gcs = poisoned(cs_shape);  // the states every 8 steps (training)
  auto t = run_pair([&] { ops::selective_scan(u, delta, A, Bm, Cm, &D, &z, sq, &st, y, &cs); },
                    [&] { ops::selective_scan(gu, gdl, gA, gB, gC, &gD, &gz, gsq, &gst, gy, &gcs); }, false);
  Tensor gst2 = up(st0);
  Tensor gy2 = poisoned({B, T, Di});
  const double g_ms = time_ms([&] { ops::selective_scan(gu, gdl, gA, gB, gC, &gD, &gz, gsq, &gst2, gy2); });
  std::string sh = shape_str(u.shape()) + " N" + std::to_string(N);
  if (docs) sh += " docs";
  record("selective_scan", sh, "y", nmse(gy, y), kScan, g_ms, t.cpu_ms);
  record("selective_scan", sh, "state", nmse(gst, st), kScan, NAN, NAN);
  record("selective_scan", sh, "chunk_states", nmse(gcs, cs), kScan, NAN, NAN);
}

void run_scan(bool quick) {
  const int64_t B = 2, T = quick ? 77 : 200;
  const int64_t di = 8192, H = 128, P = 64, G = 8, N = 128;
  check_ssd(B, T, H, P, G, N, 128);
  check_ssd(3, 37, 6, 24, 2, 40, 16);  // odd sizes: partial lanes and rows, 3 sequences (recurrence)
  // tensor-core path, odd shapes: T < chunk with 3 sequences and G = 1; T not a multiple of the
  // chunk with zero initial state and no D; a chunk size the tiles round (100 -> 128); T = 17
  check_ssd(3, 100, 16, 64, 1, 64, 256);
  check_ssd(3, 333, 8, 128, 2, 128, 64, false, false);
  check_ssd(2, 300, 4, 64, 4, 64, 100);
  check_ssd(1, 17, 8, 64, 2, 128, 64);
  check_ssd(2, 300, 8, 64, 2, 128, 128, true, true, ops::Fp32Products::Exact);
  // y in bf16 (mixed-precision training): the chunk scan's epilogue, and the recurrence (T < 16)
  check_ssd(2, 300, 8, 64, 2, 128, 128, false, true, ops::Fp32Products::Tf32, true);
  check_ssd(2, 300, 8, 64, 2, 128, 64, true, true, ops::Fp32Products::Tf32, true);
  check_ssd(2, 12, 8, 64, 2, 128, 64, true, true, ops::Fp32Products::Tf32, true);
  // x, Bm, Cm in bf16 as well (the training call's inputs): tensor cores at chunks 128 and 256, the
  // recurrence (T < 16), and the exact products on them
  const auto tf32 = ops::Fp32Products::Tf32;
  check_ssd(2, 300, 8, 64, 2, 128, 128, false, true, tf32, true, 0.1f, true);
  check_ssd(2, 300, 8, 64, 2, 128, 256, true, true, tf32, true, 0.1f, true);
  check_ssd(2, 12, 8, 64, 2, 128, 64, true, true, tf32, true, 0.1f, true);
  check_ssd(2, 300, 8, 64, 2, 128, 128, true, true, ops::Fp32Products::Exact, false, 0.1f, true);
  // the chunk scan's decay factored in every tile (gentle decay: a 64-row tile spans <= 10.3), and
  // in none (steep: dt up to 3, every tile spans ~96 |A| >= ~70, each element takes its own exp)
  check_ssd(2, 300, 8, 64, 2, 128, 128, true, true, ops::Fp32Products::Tf32, false, 0.01f);
  check_ssd(2, 300, 8, 64, 2, 128, 256, true, true, ops::Fp32Products::Tf32, false, 3.0f);
  if (!quick) {
    check_ssd(2, 4096, H, P, G, N, 256, false, true, ops::Fp32Products::Tf32, true, 0.1f, true);  // the training call
    check_ssd(1, 2000, H, P, G, N, 128);  // long prefill: 15 full chunks + 80
    check_ssd(2, 4096, H, P, G, N, 256);  // issue bar: B 2, L 4096, chunk 256
    check_ssd(2, 4096, H, P, G, N, 256, false);
    check_ssd(2, 4096, H, P, G, N, 256, true, true, ops::Fp32Products::Exact);
  }
  check_scan(B, T, di, 16);
  check_scan(3, 29, 37, 70);  // odd sizes (warp layout)
  // the channel layout (N <= 32): 1, 2 and 4 lanes per channel, padded states, partial blocks
  // and chunks, documents; then the study's mamba-small training shape (Di 1024, T 1024)
  check_scan(3, 77, 100, 5, true);
  check_scan(2, 50, 130, 12, true);
  check_scan(2, 45, 70, 32);
  check_scan(2, 1, 64, 16);
  check_scan(4, 1024, 1024, 16, true);
  if (!quick) check_scan(8, 2048, 1536, 16, true);  // the backward's timing shape (B T = 16384)
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("scan", run_scan);

}  // namespace conformance
