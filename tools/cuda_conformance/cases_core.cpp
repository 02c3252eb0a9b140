// Conformance cases for the dense, elementwise, norm, conv, rope and layout ops at the 8B
// shapes (d_model 4096, Mamba-2 d_inner 8192, H 128, P 64, G 8, N 128; FFN 16384).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "harness.h"
#include "ops/cuda/bf16_convert.cuh"
#include "ops/ops.h"

namespace conformance {
namespace {

void check_linear(int64_t B, int64_t T, int64_t K, int64_t N, bool bias) {
  Tensor x = rand_cpu({B, T, K}, -1, 1), w = rand_cpu({N, K}, -0.03f, 0.03f), b = rand_cpu({N}, -1, 1);
  Tensor y = Tensor::empty({B, T, N});
  Tensor gx = up(x), gw = up(w), gb = up(b), gy = poisoned({B, T, N});
  auto t = run_pair([&] { ops::linear(x, w, bias ? &b : nullptr, y); },
                    [&] { ops::linear(gx, gw, bias ? &gb : nullptr, gy); });
  record("linear", shape_str(x.shape()) + "x" + shape_str(w.shape()), bias ? "y+bias" : "y",
         nmse(gy, y), kGemm, t.gpu_ms, t.cpu_ms);
}

void check_embedding(int64_t V, int64_t D, int64_t B, int64_t T) {
  Tensor table = rand_cpu({V, D}, -1, 1);
  Tensor ids = Tensor::empty({B, T}, DType::I32);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
  for (int64_t i = 0; i < B * T; ++i) ids.data<int32_t>()[i] = pick(rng);
  Tensor y = Tensor::empty({B, T, D});
  Tensor gt = up(table), gi = up(ids), gy = poisoned({B, T, D});
  auto t = run_pair([&] { ops::embedding(ids, table, y); }, [&] { ops::embedding(gi, gt, gy); });
  record("embedding", shape_str(table.shape()) + " ids" + shape_str(ids.shape()), "y", nmse(gy, y),
         kExact, t.gpu_ms, t.cpu_ms);
  // A bad id must throw before the gather, as on the CPU.
  ids.data<int32_t>()[B * T / 2] = int32_t(V);
  Tensor gbad = up(ids);
  bool threw = false;
  try {
    ops::embedding(gbad, gt, gy);
  } catch (const Error&) {
    threw = true;
  }
  record("embedding", "id = V at one position", "throws", threw ? 0.0 : INFINITY, kExact, NAN, NAN);
}

void check_elementwise(const Shape& s) {
  Tensor a = rand_cpu(s, -8, 8), b = rand_cpu(s, -8, 8), y = Tensor::empty(s);
  Tensor ga = up(a), gb = up(b), gy = poisoned(s);
  struct Un { const char* name; void (*f)(const Tensor&, Tensor&); };
  for (Un u : {Un{"silu", ops::silu}, Un{"relu_squared", ops::relu_squared}, Un{"gelu", ops::gelu}}) {
    gy = poisoned(s);
    auto t = run_pair([&] { u.f(a, y); }, [&] { u.f(ga, gy); });
    record(u.name, shape_str(s), "y", nmse(gy, y), kElementwise, t.gpu_ms, t.cpu_ms);
  }
  gy = poisoned(s);
  auto t = run_pair([&] { ops::add(a, b, y); }, [&] { ops::add(ga, gb, gy); });
  record("add", shape_str(s), "y", nmse(gy, y), kElementwise, t.gpu_ms, t.cpu_ms);
  gy = poisoned(s);
  t = run_pair([&] { ops::swiglu(a, b, y); }, [&] { ops::swiglu(ga, gb, gy); });
  record("swiglu", shape_str(s), "y", nmse(gy, y), kElementwise, t.gpu_ms, t.cpu_ms);
  // in place (y aliases x) must give the same numbers
  Tensor gin = up(a);
  ops::silu(gin, gin);
  ops::silu(a, y);
  record("silu", shape_str(s), "inplace", nmse(gin, y), kElementwise, NAN, NAN);
}

void check_norms(int64_t B, int64_t T, int64_t D, int64_t Dg, int64_t group) {
  Tensor x = rand_cpu({B, T, D}, -2, 2), w = rand_cpu({D}, 0.5f, 1.5f), bb = rand_cpu({D}, -1, 1);
  Tensor y = Tensor::empty({B, T, D});
  Tensor gx = up(x), gw = up(w), gbb = up(bb), gy = poisoned({B, T, D});
  auto t = run_pair([&] { ops::rms_norm(x, w, 1e-5f, y); }, [&] { ops::rms_norm(gx, gw, 1e-5f, gy); });
  record("rms_norm", shape_str(x.shape()), "y", nmse(gy, y), kNorm, t.gpu_ms, t.cpu_ms);
  Tensor wz = rand_cpu({D}, -0.5f, 0.5f), gwz = up(wz);  // zero-centred gain ("1p")
  gy = poisoned({B, T, D});
  t = run_pair([&] { ops::layer_norm(x, wz, nullptr, 1e-5f, true, y); },
               [&] { ops::layer_norm(gx, gwz, nullptr, 1e-5f, true, gy); });
  record("layer_norm", shape_str(x.shape()), "1p", nmse(gy, y), kNorm, t.gpu_ms, t.cpu_ms);
  Tensor xo = rand_cpu({B, T, D}, 99, 101), gxo = up(xo);  // mean offset 100
  gy = poisoned({B, T, D});
  t = run_pair([&] { ops::layer_norm(xo, w, &bb, 1e-5f, false, y); },
               [&] { ops::layer_norm(gxo, gw, &gbb, 1e-5f, false, gy); });
  record("layer_norm", shape_str(x.shape()) + " mean 100", "y+bias", nmse(gy, y), kNorm, t.gpu_ms, t.cpu_ms);

  Tensor xg = rand_cpu({B, T, Dg}, -2, 2), z = rand_cpu({B, T, Dg}, -4, 4), wg = rand_cpu({Dg}, 0.5f, 1.5f);
  Tensor yg = Tensor::empty({B, T, Dg});
  Tensor gxg = up(xg), gz = up(z), gwg = up(wg), gyg = poisoned({B, T, Dg});
  t = run_pair([&] { ops::gated_rms_norm(xg, z, wg, group, 1e-5f, yg); },
               [&] { ops::gated_rms_norm(gxg, gz, gwg, group, 1e-5f, gyg); });
  record("gated_rms_norm", shape_str(xg.shape()) + " g" + std::to_string(group), "y", nmse(gyg, yg),
         kNorm, t.gpu_ms, t.cpu_ms);
}

void check_conv_documents(int64_t B, int64_t T, int64_t C, int64_t K) {
  Tensor x = rand_cpu({B, T, C}, -1, 1), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  Tensor seq = random_documents(B, T), y = Tensor::empty({B, T, C});
  Tensor gx = up(x), gw = up(w), gb = up(b), gseq = up(seq), gy = poisoned({B, T, C});
  auto t = run_pair([&] { ops::causal_conv1d(x, w, &b, &seq, nullptr, true, y); },
                    [&] { ops::causal_conv1d(gx, gw, &gb, &gseq, nullptr, true, gy); });
  record("causal_conv1d", shape_str(x.shape()) + " K" + std::to_string(K), "y,documents", nmse(gy, y), kElementwise,
         t.gpu_ms, t.cpu_ms);
}

void check_conv(int64_t B, int64_t T, int64_t C, int64_t K, bool with_state) {
  Tensor x = rand_cpu({B, T, C}, -1, 1), w = rand_cpu({C, K}, -0.5f, 0.5f), b = rand_cpu({C}, -1, 1);
  Tensor st = rand_cpu({B, C, K - 1}, -1, 1), y = Tensor::empty({B, T, C});
  Tensor gx = up(x), gw = up(w), gb = up(b), gst = up(st), gy = poisoned({B, T, C});
  Tensor st_cpu = st.clone();
  auto t = run_pair([&] { ops::causal_conv1d(x, w, &b, nullptr, with_state ? &st_cpu : nullptr, true, y); },
                    [&] { ops::causal_conv1d(gx, gw, &gb, nullptr, with_state ? &gst : nullptr, true, gy); }, false);
  const std::string sh = shape_str(x.shape()) + " K" + std::to_string(K);
  record("causal_conv1d", sh, with_state ? "y" : "y,nost", nmse(gy, y), kElementwise, t.gpu_ms, t.cpu_ms);
  if (with_state) record("causal_conv1d", sh, "state", nmse(gst, st_cpu), kExact, NAN, NAN);
}

void check_layout(int64_t rows, int64_t W, int64_t col0, int64_t w) {
  Tensor src = rand_cpu({rows, W}, -1, 1), part = Tensor::empty({rows, w});
  Tensor gsrc = up(src), gpart = poisoned({rows, w});
  auto t = run_pair([&] { ops::copy_columns(src, col0, part); }, [&] { ops::copy_columns(gsrc, col0, gpart); });
  record("copy_columns", shape_str(src.shape()) + " [" + std::to_string(col0) + ",+" + std::to_string(w) + ")",
         "dst", nmse(gpart, part), kExact, t.gpu_ms, t.cpu_ms);
  Tensor dst = rand_cpu({rows, W}, -1, 1), gdst = up(dst);
  Tensor piece = rand_cpu({rows, w}, -1, 1), gpiece = up(piece);
  t = run_pair([&] { ops::write_columns(piece, dst, col0); }, [&] { ops::write_columns(gpiece, gdst, col0); });
  record("write_columns", shape_str(dst.shape()) + " [" + std::to_string(col0) + ",+" + std::to_string(w) + ")",
         "dst", nmse(gdst, dst), kExact, t.gpu_ms, t.cpu_ms);
  Tensor cache = rand_cpu({rows * 2, W}, -1, 1), gcache = up(cache);
  t = run_pair([&] { ops::copy_rows(src, rows, cache); }, [&] { ops::copy_rows(gsrc, rows, gcache); });
  record("copy_rows", std::to_string(rows) + " of " + shape_str(cache.shape()), "dst", nmse(gcache, cache),
         kExact, t.gpu_ms, t.cpu_ms);
  Tensor alog = rand_cpu({128}, 0.0f, 2.8f), a = Tensor::empty({128});
  Tensor galog = up(alog), ga = poisoned({128});
  t = run_pair([&] { ops::neg_exp(alog, a); }, [&] { ops::neg_exp(galog, ga); });
  record("neg_exp", "[128]", "y", nmse(ga, a), kElementwise, t.gpu_ms, t.cpu_ms);
  const float value = std::uniform_real_distribution<float>(-4.0f, 4.0f)(rng);
  t = run_pair([&] { ops::fill(part, value); }, [&] { ops::fill(gpart, value); });
  record("fill", shape_str(part.shape()), "t", nmse(gpart, part), kExact, t.gpu_ms, t.cpu_ms);
}

// fp32 -> bf16 -> fp32 through ops::convert against the CPU's conversions (exact: both round
// to nearest even), at sizes with and without a tail of fewer than 8 and at views 4 bytes off
// 16-byte alignment (the scalar path); then three arrays of different sizes in one launch.
void check_convert(int64_t n, int64_t offset) {
  Tensor src = rand_cpu({n + offset}, -3e4f, 3e4f);
  Tensor x = src.slice0(offset, offset + n), back = x.to(DType::BF16).to(DType::F32);
  Tensor gx = up(src).slice0(offset, offset + n);
  Tensor g16 = poisoned({n + offset}, DType::BF16).slice0(offset, offset + n), gback = poisoned({n});
  ops::convert(gx, g16);
  ops::convert(g16, gback);
  record("convert", "[" + std::to_string(n) + "] at +" + std::to_string(offset), "f32->bf16->f32",
         nmse(gback, back), kExact, NAN, NAN);
}

void check_convert_arrays() {
  const int64_t n[3] = {4096 * 8 + 3, 1000, 7};
  Tensor x[3], back[3], gx[3], g16[3], gback[3];
  for (int j = 0; j < 3; ++j) {
    x[j] = rand_cpu({n[j]}, -2.0f, 2.0f);
    back[j] = x[j].to(DType::BF16).to(DType::F32);
    gx[j] = up(x[j]);
    g16[j] = poisoned({n[j]}, DType::BF16);
    gback[j] = poisoned({n[j]});
  }
  ops::cuda::f32_to_bf16({{gx[0].f32(), g16[0].data<uint16_t>(), n[0]},
                          {gx[1].f32(), g16[1].data<uint16_t>(), n[1]},
                          {gx[2].f32(), g16[2].data<uint16_t>(), n[2]}});
  ops::cuda::bf16_to_f32({{g16[0].data<uint16_t>(), gback[0].f32(), n[0]},
                          {g16[1].data<uint16_t>(), gback[1].f32(), n[1]},
                          {g16[2].data<uint16_t>(), gback[2].f32(), n[2]}});
  for (int j = 0; j < 3; ++j)
    record("convert", "3 arrays, [" + std::to_string(n[j]) + "]", "f32->bf16->f32", nmse(gback[j], back[j]), kExact,
           NAN, NAN);
}

void check_softplus(int64_t B, int64_t T, int64_t H) {
  Tensor dt = rand_cpu({B, T, H}, -12, 24), bias = rand_cpu({H}, -6, 0), o = Tensor::empty({B, T, H});
  Tensor gdt = up(dt), gb = up(bias), go = poisoned({B, T, H});
  auto t = run_pair([&] { ops::softplus_dt(dt, bias, 1e-4f, 100.0f, o); },
                    [&] { ops::softplus_dt(gdt, gb, 1e-4f, 100.0f, go); });
  record("softplus_dt", shape_str(dt.shape()), "dt", nmse(go, o), kElementwise, t.gpu_ms, t.cpu_ms);
}

void run_core(bool quick) {
  const int64_t B = 2, T = quick ? 77 : 200;  // T not a multiple of the chunk
  const int64_t dm = 4096, di = 8192, H = 128, G = 8, N = 128;
  const int64_t in_proj = 2 * di + 2 * G * N + H;  // z | x | B | C | dt = 18560
  check_linear(B, T, dm, in_proj, false);
  check_linear(B, T, di, dm, true);
  check_linear(1, 1, dm, dm, false);
  check_linear(B, T, dm, 16384, false);
  check_embedding(quick ? 4096 : 32768, dm, B, T);
  check_elementwise({B, T, 16384});
  check_norms(B, T, dm, di, di / G);
  check_norms(B, T, 256, 4096, 4096);  // one gated group per row (Mamba-2 at d_model 2048)
  check_norms(3, 5, 48, 96, 48);       // groups the vectorised gated kernel does not take
  check_norms(B, T, 512, 1024, 128);   // Mamba-2 at d_model 512: warp-per-group kernel, one float4 a lane
  check_norms(B, T, 512, 2048, 256);   // two float4 a lane
  check_norms(3, 5, 48, 6 * 36, 36);   // a group shorter than a warp's float4s
  check_norms(2, 7, 1000, 96, 48);     // warp-per-row rms / layer norm, 8 float4 a lane, the last lanes past D
  check_norms(2, 7, 37, 96, 48);       // rows without float4 access: the block-per-row kernels
  check_norms(4, 1024, 2048, 96, 48);  // 4096 rows of 2048: the warp kernel, 16 float4 a lane
  check_norms(2, 2048, 1540, 96, 48);  // 4096 rows of 1540: the same kernel, the last lanes past D
  check_conv(B, T, di + 2 * G * N, 4, true);
  check_conv(B, T, di + 2 * G * N, 4, false);
  check_conv(B, 1, di + 2 * G * N, 4, true);
  check_conv(B, 2, di + 2 * G * N, 4, true);
  check_conv_documents(B, T, di + 2 * G * N, 4);
  check_softplus(B, T, H);
  check_softplus(B, T, 1024);  // Mamba-1's [B, T, Di]: the float4 path
  check_softplus(3, 5, 37);    // odd width: scalars
  check_layout(B * T, in_proj, di, di);
  for (int64_t off : {0, 1}) {
    check_convert(5, off);
    check_convert((int64_t(1) << 20) + 13, off);
  }
  check_convert_arrays();
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("core", run_core);

}  // namespace conformance
