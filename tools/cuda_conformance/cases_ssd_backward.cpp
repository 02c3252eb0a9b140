// Conformance cases for the Mamba-2 SSD in training: ssd_chunked_backward (src/ops/cuda/
// ssd_backward.cu) and the forward with document resets (ssd_chunked with seq_idx), CUDA against
// the CPU op for every output: dx, ddt, dBm, dCm (assigned; the GPU's poisoned with NaN first), dA
// and dD (accumulated: both sides start from the same random values and the increments are
// compared), dinitial_state; with and without documents, initial state and dfinal_state; at the
// 8B layer shape with T not a multiple of the chunk and B = 2, and at small odd shapes (partial
// tiles; P or N not a multiple of 4, which takes the zero-padded copy path). Each backward is also
// run twice on the GPU and the two results compared bit for bit (the op is deterministic). Rows
// marked "in bf16" give the GPU x, Bm and Cm in bf16 (mixed-precision training's conv writes them
// so) and the CPU the same values in fp32: the same limits hold, since the fast products round
// those operands to bf16 anyway, and the fp32 terms that read them (D x, x . dY) now see the same
// values on both sides.
#include <cmath>
#include <string>
#include <vector>

#include "harness.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace conformance {
namespace {

// With the fast products the gram, dx and dB / dC kernels round every matrix operand to bf16
// (the chunk-state gradient kernel to TF32) and sum in fp32: ~2.5e-6 in nmse per rounded operand
// (cases_scan.cpp), and each gradient chains two to four of them. dx, dBm, dCm, dD and
// dinitial_state are sums of O(chunk + heads * P) products of O(1) terms with random signs:
// measured on the H200 (2026-12-03, seed 31315973174) dx 1.3e-7 .. 9.7e-6, dBm and dCm up to
// 9.3e-6, dinitial_state ~8e-8 (TF32 only), dD ~1e-14 (x . dY in fp32, no rounded product).
// 1e-4 leaves 10x, while a dropped term (the D dY part of dx, one head's state part of dC, one
// chunk's state gradient) moves whole rows by O(1).
constexpr double kSsdFast = 1e-4;
// ddt and dA: ddt_t = x_t . (dLoss/d(dt_t x_t)) + A sum_{k >= t} dcum_k, where dcum collects the
// derivative of every decay factor exp(cum) touching position k: sums of O(chunk^2) products
// whose positive and negative parts cancel. The CUDA op takes the row and column sums of each
// product from the same rounded value, so the suffix sums telescope to sums over rectangles of
// products (no cancellation left beyond that of the exact sums): measured ddt up to 9.3e-6, as
// close as dx. dA is one number per head, a sum over every token of such terms: 1.6e-7 .. 4.4e-5,
// the largest on the padded path's 6 heads (T 150, chunk 8), where a few values decide the nmse.
// 1e-3 for both (over 20x); a sign error or a dropped dcum term (the state's e_last <dS, S> part,
// one tile's row sums) gives O(1e-2 .. 1).
constexpr double kSsdFastDt = 1e-3;
// Fp32Products::Exact (--dtype f32 training): every product from the operands' two TF32 halves
// (~2^-22 relative error per product, the size of fp32's own rounding), so the CUDA op differs
// from the CPU's only in fp32 summation order. Measured on the H200 (2026-11-30): 0 .. 2.4e-11,
// the largest dCm with documents and a final-state gradient (sums over heads x P and the chunk
// with cancelling terms), ddt and dA 2e-12 .. 5e-12. 1e-9 leaves 40x while still failing the
// bf16 / TF32 paths (1e-7 .. 1e-5) and anything coarser.
constexpr double kSsdExact = 1e-9;

struct Inputs {
  Tensor x, dt, A, Bm, Cm, D, init, dfin, dy, seq;
};

// Document ids: random_documents' 1-5 documents per row, and in row 0 extra starts placed on the
// kernels' chunk and tile boundaries (64, 128, 256) and just after one (129, 257) when T allows, so
// that chunks starting a document and chunks holding one are both covered.
Tensor documents(int64_t B, int64_t T) {
  Tensor seq = random_documents(B, T);
  int32_t* s = seq.data<int32_t>();
  int32_t bump = 0;
  for (int64_t t = 1; t < T; ++t) {
    if (t == 64 || t == 128 || t == 129 || t == 256 || t == 257) bump += 10;
    s[t] += bump;
  }
  return seq;
}

Inputs make_inputs(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, bool docs, float dt_hi = 0.1f) {
  Inputs s;
  s.x = rand_cpu({B, T, H, P}, -1, 1);
  s.dt = rand_cpu({B, T, H}, 0.001f, dt_hi);
  s.A = rand_cpu({H}, -16, -1);  // A = -exp(A_log), A_log init log U[1, 16]
  s.Bm = rand_cpu({B, T, G, N}, -1, 1);
  s.Cm = rand_cpu({B, T, G, N}, -1, 1);
  s.D = rand_cpu({H}, 0.5f, 1.5f);
  s.init = rand_cpu({B, H, P, N}, -0.5f, 0.5f);
  s.dfin = rand_cpu({B, H, P, N}, -0.5f, 0.5f);
  s.dy = rand_cpu({B, T, H, P}, -1, 1);
  if (docs) s.seq = documents(B, T);
  return s;
}

// a - b, CPU F32 (the increment of an accumulated gradient)
Tensor minus(const Tensor& a, const Tensor& b) {
  Tensor h = down(a), r = Tensor::empty(b.shape());
  for (int64_t i = 0; i < b.numel(); ++i) r.f32()[i] = h.f32()[i] - b.f32()[i];
  return r;
}

struct Case {
  int64_t B, T, H, P, G, N, chunk;
  bool docs, init, dfin, dinit;  // documents, initial_state, dfinal_state, dinitial_state wanted
  bool with_D = true, with_dA = true;
  ops::Fp32Products products = ops::Fp32Products::Tf32;
  // the largest dt: at 0.1 (the init range) some 64-row tiles factor their decay (gram, dx and the
  // forward's chunk scan) and some take an exp per element; 0.01 factors every tile, 3 none
  float dt_hi = 0.1f;
  bool in16 = false;  // x, Bm, Cm in bf16 on the GPU
};

// t's values rounded to bf16, in fp32 (what the CPU op sees of a bf16 input)
Tensor bf16_values(const Tensor& t) { return t.to(DType::BF16).to(DType::F32); }
// The GPU copy of an SSD input: bf16 when in16 (t's values must be bf16-exact then)
Tensor up_input(const Tensor& t, bool in16) { return up(in16 ? t.to(DType::BF16) : t); }
void round_inputs(Inputs& s) {
  s.x = bf16_values(s.x);
  s.Bm = bf16_values(s.Bm);
  s.Cm = bf16_values(s.Cm);
}

struct Grads {
  Tensor dx, ddt, dB, dC, dA, dD, dinit;
};

void check_backward(const Case& k) {
  const int64_t B = k.B, T = k.T, H = k.H, P = k.P, G = k.G, N = k.N;
  Inputs s = make_inputs(B, T, H, P, G, N, k.docs, k.dt_hi);
  if (k.in16) round_inputs(s);
  const Tensor dA0 = rand_cpu({H}, -1, 1), dD0 = rand_cpu({H}, -1, 1);
  const Tensor gx = up_input(s.x, k.in16), gdt = up(s.dt), gA = up(s.A), gB = up_input(s.Bm, k.in16),
               gC = up_input(s.Cm, k.in16), gD = up(s.D);
  const Tensor ginit = up(s.init), gdfin = up(s.dfin), gdy = up(s.dy);
  const Tensor gseq = k.docs ? up(s.seq) : Tensor();

  auto cpu_call = [&](Grads& o) {
    ops::ssd_chunked_backward(s.x, s.dt, s.A, s.Bm, s.Cm, k.with_D ? &s.D : nullptr, k.docs ? &s.seq : nullptr, k.chunk,
                              k.init ? &s.init : nullptr, k.dfin ? &s.dfin : nullptr, s.dy, o.dx, o.ddt,
                              k.with_dA ? &o.dA : nullptr, o.dB, o.dC, k.with_D ? &o.dD : nullptr,
                              k.dinit ? &o.dinit : nullptr);
  };
  auto gpu_call = [&](Grads& o) {
    ops::ssd_chunked_backward(gx, gdt, gA, gB, gC, k.with_D ? &gD : nullptr, k.docs ? &gseq : nullptr, k.chunk,
                              k.init ? &ginit : nullptr, k.dfin ? &gdfin : nullptr, gdy, o.dx, o.ddt,
                              k.with_dA ? &o.dA : nullptr, o.dB, o.dC, k.with_D ? &o.dD : nullptr,
                              k.dinit ? &o.dinit : nullptr, k.products);
  };
  auto gpu_grads = [&] {
    return Grads{poisoned({B, T, H, P}), poisoned({B, T, H}), poisoned({B, T, G, N}), poisoned({B, T, G, N}),
                 up(dA0), up(dD0), poisoned({B, H, P, N})};
  };
  Grads c{Tensor::empty({B, T, H, P}), Tensor::empty({B, T, H}), Tensor::empty({B, T, G, N}),
          Tensor::empty({B, T, G, N}), dA0.clone(), dD0.clone(), Tensor::empty({B, H, P, N})};
  Grads g = gpu_grads();
  const Timed t = run_pair([&] { cpu_call(c); }, [&] { gpu_call(g); }, false);
  Grads g2 = gpu_grads();  // timing (accumulators advance: scratch), then one more run for the bits
  const double g_ms = time_ms([&] { gpu_call(g2); });
  Grads g3 = gpu_grads();
  gpu_call(g3);
  cuda_synchronize();

  std::string sh = shape_str(s.x.shape()) + " G" + std::to_string(G) + " N" + std::to_string(N) + " c" +
                   std::to_string(k.chunk);
  if (k.docs) sh += " docs";
  const bool exact = k.products == ops::Fp32Products::Exact;
  if (exact) sh += " exact";
  const double lim = exact ? kSsdExact : kSsdFast, lim_dt = exact ? kSsdExact : kSsdFastDt;
  if (k.init) sh += " s0";
  if (k.dfin) sh += " dsT";
  if (!k.with_D) sh += " noD";
  if (k.dt_hi != 0.1f) sh += " dt<=" + std::to_string(k.dt_hi).substr(0, 5);
  if (k.in16) sh += " in bf16";
  const char* op = "ssd_chunked_backward";
  record(op, sh, "dx", nmse(g.dx, c.dx), lim, g_ms, t.cpu_ms);
  record(op, sh, "ddt", nmse(g.ddt, c.ddt), lim_dt, NAN, NAN);
  record(op, sh, "dBm", nmse(g.dB, c.dB), lim, NAN, NAN);
  record(op, sh, "dCm", nmse(g.dC, c.dC), lim, NAN, NAN);
  if (k.with_dA) record(op, sh, "dA +=", nmse(minus(g.dA, dA0), minus(c.dA, dA0)), lim_dt, NAN, NAN);
  if (k.with_D) record(op, sh, "dD +=", nmse(minus(g.dD, dD0), minus(c.dD, dD0)), lim, NAN, NAN);
  if (k.dinit) record(op, sh, "dstate0", nmse(g.dinit, c.dinit), lim, NAN, NAN);
  // determinism: a second run from the same accumulator values gives the same bits
  double same = nmse(g3.dx, down(g.dx)) + nmse(g3.ddt, down(g.ddt)) + nmse(g3.dB, down(g.dB)) +
                nmse(g3.dC, down(g.dC)) + nmse(g3.dA, down(g.dA)) + nmse(g3.dD, down(g.dD));
  if (k.dinit) same += nmse(g3.dinit, down(g.dinit));
  record(op, sh, "rerun", same, kExact, NAN, NAN);
}

// The forward with documents: y and the final state (from a random initial state) against the
// CPU op. T >= 16 with P and N multiples of 64 takes the tensor cores, other shapes the register
// recurrence (fp32, kScan).
void check_forward_docs(int64_t B, int64_t T, int64_t H, int64_t P, int64_t G, int64_t N, int64_t chunk,
                        bool with_state, ops::Fp32Products products = ops::Fp32Products::Tf32, bool in16 = false) {
  Inputs s = make_inputs(B, T, H, P, G, N, true);
  if (in16) round_inputs(s);
  Tensor y = Tensor::empty({B, T, H, P}), st = s.init.clone();
  const Tensor gx = up_input(s.x, in16), gdt = up(s.dt), gA = up(s.A), gB = up_input(s.Bm, in16),
               gC = up_input(s.Cm, in16), gD = up(s.D);
  const Tensor gseq = up(s.seq);
  Tensor gst = up(s.init), gy = poisoned({B, T, H, P});
  const Timed t =
      run_pair([&] { ops::ssd_chunked(s.x, s.dt, s.A, s.Bm, s.Cm, &s.D, &s.seq, chunk, with_state ? &st : nullptr, y); },
               [&] { ops::ssd_chunked(gx, gdt, gA, gB, gC, &gD, &gseq, chunk, with_state ? &gst : nullptr, gy, products); },
               false);
  Tensor gst2 = up(s.init), gy2 = poisoned({B, T, H, P});
  const double g_ms =
      time_ms([&] { ops::ssd_chunked(gx, gdt, gA, gB, gC, &gD, &gseq, chunk, with_state ? &gst2 : nullptr, gy2, products); });
  const bool tiled = T >= 16 && P % 64 == 0 && N % 64 == 0;
  const bool exact = products == ops::Fp32Products::Exact;
  const double limit = tiled && !exact ? kSsdFast : kScan;
  const std::string sh = shape_str(s.x.shape()) + " G" + std::to_string(G) + " N" + std::to_string(N) + " c" +
                         std::to_string(chunk) + " docs" + (with_state ? "" : " s0") + (exact ? " exact" : "") +
                         (in16 ? " in bf16" : "");
  record("ssd_chunked", sh, "y", nmse(gy, y), limit, g_ms, t.cpu_ms);
  if (with_state) record("ssd_chunked", sh, "state", nmse(gst, st), limit, NAN, NAN);
}

void run_ssd_backward(bool quick) {
  const int64_t H = 128, P = 64, G = 8, N = 128;  // the 8B layer
  const int64_t T = quick ? 300 : 600;  // not a multiple of the chunk, past one chunk of 256
  // the training call (no documents, no states), then every optional input, chunk 128 and 256
  check_backward({2, T, H, P, G, N, 128, false, false, false, false});
  check_backward({2, T, H, P, G, N, 128, true, true, true, true});
  check_backward({2, T, H, P, G, N, 256, true, false, true, true});
  if (!quick) check_backward({1, 1000, H, P, G, N, 128, true, true, true, true});  // 8 chunks of state passing
  // every tile's decay factored (gentle), none (steep), with documents and every input
  const auto fast = ops::Fp32Products::Tf32;
  check_backward({2, T, H, P, G, N, 128, true, true, true, true, true, true, fast, 0.01f});
  check_backward({2, T, H, P, G, N, 256, false, true, true, true, true, true, fast, 0.01f});
  check_backward({2, T, H, P, G, N, 256, true, true, true, true, true, true, fast, 3.0f});
  // small shapes: partial tiles with one chunk (T 37 < 64), P and N not multiples of 4 (the padded
  // path) over three chunks, and null D / dA with one group
  check_backward({2, 37, 6, 16, 2, 16, 8, true, true, true, true});
  check_backward({3, 150, 6, 18, 3, 13, 8, true, true, true, true});
  check_backward({1, 130, 4, 24, 1, 40, 64, false, true, false, true, false, false});
  // N <= 64 takes 64-column tiles in the states, dB and dC kernels: the study's small layer (H 16,
  // P 64, G 8, N 64, chunk 64) as training calls it and with every input, and two tiles of P
  check_backward({2, 300, 16, 64, 8, 64, 64, false, false, false, false});
  check_backward({2, 300, 16, 64, 8, 64, 64, true, true, true, true});
  check_backward({1, 200, 4, 128, 2, 64, 128, true, true, true, true});
  // the exact products (--dtype f32): the training call, every optional input, the padded path
  const auto exact = ops::Fp32Products::Exact;
  check_backward({2, T, H, P, G, N, 128, false, false, false, false, true, true, exact});
  check_backward({2, T, H, P, G, N, 256, true, true, true, true, true, true, exact});
  check_backward({3, 150, 6, 18, 3, 13, 8, true, true, true, true, true, true, exact});
  check_backward({2, 300, 16, 64, 8, 64, 64, true, true, true, true, true, true, exact});
  // x, Bm, Cm in bf16 (mixed-precision training): the training call at chunks 128 and 256, every
  // optional input with documents, the steep decays, the study's small layer (64-column tiles),
  // the padded path (bf16 widened into the fp32 copies), and the exact products (which take the
  // padded fp32 copies too)
  auto in16 = [](Case k) {
    k.in16 = true;
    return k;
  };
  check_backward(in16({2, T, H, P, G, N, 128, false, false, false, false}));
  check_backward(in16({2, T, H, P, G, N, 256, false, false, false, false}));
  check_backward(in16({2, T, H, P, G, N, 128, true, true, true, true}));
  check_backward(in16({2, T, H, P, G, N, 256, true, true, true, true, true, true, fast, 3.0f}));
  check_backward(in16({2, 300, 16, 64, 8, 64, 64, true, true, true, true}));
  check_backward(in16({3, 150, 6, 18, 3, 13, 8, true, true, true, true}));
  check_backward(in16({2, 300, 16, 64, 8, 64, 64, true, true, true, true, true, true, exact}));

  // forward with documents: tensor cores (chunks 128 and 64, with and without a state), the
  // recurrence for short T and for untiled P, N
  check_forward_docs(2, T, H, P, G, N, 128, true);
  check_forward_docs(2, 333, 8, 128, 2, 128, 64, false);
  check_forward_docs(2, 10, H, P, G, N, 128, true);
  check_forward_docs(3, 37, 6, 24, 2, 40, 16, true);
  check_forward_docs(2, T, H, P, G, N, 128, true, ops::Fp32Products::Exact);
  // and with x, Bm, Cm in bf16: tensor cores, the recurrence (short T; untiled P, N)
  check_forward_docs(2, T, H, P, G, N, 128, true, ops::Fp32Products::Tf32, true);
  check_forward_docs(2, T, H, P, G, N, 256, false, ops::Fp32Products::Tf32, true);
  check_forward_docs(2, 10, H, P, G, N, 128, true, ops::Fp32Products::Tf32, true);
  check_forward_docs(3, 37, 6, 24, 2, 40, 16, true, ops::Fp32Products::Tf32, true);
  check_forward_docs(2, T, H, P, G, N, 128, true, ops::Fp32Products::Exact, true);
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("ssd_backward", run_ssd_backward);

}  // namespace conformance
