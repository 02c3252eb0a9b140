// Conformance cases for the inference path: bf16 weights in linear (GEMV for decode, cuBLASLt
// for prefill) and in the embedding, rope / rope_at, kv_append into F32 and BF16 caches, argmax.
// bf16 cases round the operand to bf16 on both sides, so only accumulation order (and, for the
// cuBLASLt path, the rounding of x to bf16) differs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "harness.h"
#include "ops/ops.h"

namespace conformance {
namespace {

// x rounded to bf16 and back, on the CPU.
Tensor bf16_rounded(const Tensor& x) { return x.to(DType::BF16).to(DType::F32); }

Tensor positions_cpu(const std::vector<int32_t>& p) {
  Tensor t = Tensor::empty({static_cast<int64_t>(p.size())}, DType::I32);
  std::memcpy(t.raw(), p.data(), p.size() * 4);
  return t;
}

// kGemm for the GEMV (fp32 products of bf16 weights, fp32 sums); the cuBLASLt path also rounds x
// to bf16: relative error ~2^-9 per product, averaging down over K, nmse ~1e-6.
constexpr double kBf16GemmRoundedX = 2e-5;

void check_linear_bf16(int64_t M, int64_t K, int64_t N, bool bias) {
  Tensor x = rand_cpu({M, K}, -1, 1), w = bf16_rounded(rand_cpu({N, K}, -0.03f, 0.03f)), b = rand_cpu({N}, -1, 1);
  Tensor y = Tensor::empty({M, N});
  Tensor gx = up(x), gw = up(w.to(DType::BF16)), gb = up(b), gy = poisoned({M, N});
  auto t = run_pair([&] { ops::linear(x, w, bias ? &b : nullptr, y); }, [&] { ops::linear(gx, gw, bias ? &gb : nullptr, gy); });
  const bool gemv = M <= 2;  // the GEMV path (linear.cu kGemvRows); larger M goes through cuBLASLt
  record(gemv ? "linear bf16 gemv" : "linear bf16 lt", "[" + std::to_string(M) + "," + std::to_string(K) + "]x" + shape_str(w.shape()),
         bias ? "y+bias" : "y", nmse(gy, y), gemv ? kGemm : kBf16GemmRoundedX, t.gpu_ms, t.cpu_ms);
}

void check_embedding_bf16(int64_t V, int64_t D, int64_t n) {
  Tensor table = bf16_rounded(rand_cpu({V, D}, -1, 1));
  Tensor ids = Tensor::empty({1, n}, DType::I32);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(V - 1));
  for (int64_t i = 0; i < n; ++i) ids.data<int32_t>()[i] = pick(rng);
  Tensor y = Tensor::empty({1, n, D}), gy = poisoned({1, n, D});
  Tensor gt = up(table.to(DType::BF16)), gi = up(ids);
  auto t = run_pair([&] { ops::embedding(ids, table, y); }, [&] { ops::embedding(gi, gt, gy); });
  record("embedding bf16", shape_str(table.shape()), "y", nmse(gy, y), kExact, t.gpu_ms, t.cpu_ms);
}

void check_rope(int64_t B, int64_t T, int64_t H, int64_t Dh, int64_t rot, int64_t pos0) {
  Tensor x = rand_cpu({B, T, H, Dh}, -1, 1);
  Tensor gx = up(x);
  auto t = run_pair([&] { ops::rope(x, pos0, rot, 10000.0); }, [&] { ops::rope(gx, pos0, rot, 10000.0); }, false);
  record("rope", shape_str(x.shape()) + " r" + std::to_string(rot) + " pos0 " + std::to_string(pos0), "x", nmse(gx, x),
         kElementwise, t.gpu_ms, t.cpu_ms);
}

void check_rope_at(int64_t T, int64_t H, int64_t Dh, const std::vector<int32_t>& pos) {
  const int64_t B = static_cast<int64_t>(pos.size());
  Tensor x = rand_cpu({B, T, H, Dh}, -1, 1), p = positions_cpu(pos);
  Tensor gx = up(x), gp = up(p);
  auto t = run_pair([&] { ops::rope_at(x, p, Dh, 10000.0); }, [&] { ops::rope_at(gx, gp, Dh, 10000.0); }, false);
  record("rope_at", shape_str(x.shape()) + " ragged", "x", nmse(gx, x), kElementwise, t.gpu_ms, t.cpu_ms);
}

void check_kv_append(int64_t T, int64_t Hkv, int64_t Dh, int64_t cap, const std::vector<int32_t>& pos, DType dtype) {
  const int64_t B = static_cast<int64_t>(pos.size());
  Tensor x = rand_cpu({B, T, Hkv, Dh}, -1, 1), p = positions_cpu(pos);
  Tensor cache = rand_cpu({B, cap, Hkv, Dh}, -1, 1);
  if (dtype == DType::BF16) {
    x = bf16_rounded(x);
    cache = bf16_rounded(cache);
  }
  Tensor gx = up(x), gp = up(p), gc = up(cache.to(dtype));
  auto t = run_pair([&] { ops::kv_append(x, p, cache); }, [&] { ops::kv_append(gx, gp, gc); }, false);
  Tensor back = down(gc).to(DType::F32);
  record("kv_append", std::string(dtype == DType::BF16 ? "bf16 " : "f32 ") + shape_str(cache.shape()), "cache",
         nmse(up(back), cache), kExact, t.gpu_ms, t.cpu_ms);
}

void check_argmax(int64_t M, int64_t V, int64_t limit) {
  Tensor x = rand_cpu({M, V}, -4, 4);
  Tensor o = Tensor::empty({M}, DType::I32), go = poisoned({M}, DType::I32);
  Tensor gx = up(x);
  auto t = run_pair([&] { ops::argmax(x, limit, o); }, [&] { ops::argmax(gx, limit, go); }, false);
  Tensor back = down(go);
  int64_t wrong = 0;
  for (int64_t m = 0; m < M; ++m) wrong += back.data<int32_t>()[m] != o.data<int32_t>()[m];
  record("argmax", "[" + std::to_string(M) + "," + std::to_string(V) + "] limit " + std::to_string(limit), "ids",
         double(wrong), kExact, t.gpu_ms, t.cpu_ms);
}

void check_split_columns(int64_t rows, const std::vector<int64_t>& widths, int64_t W) {
  Tensor src = rand_cpu({rows, W}, -1, 1), gsrc = up(src);
  std::vector<Tensor> c, g;
  for (int64_t w : widths) {
    c.push_back(Tensor::empty({rows, w}));
    g.push_back(poisoned({rows, w}));
  }
  auto run = [&](const Tensor& s, std::vector<Tensor>& p) {
    if (p.size() == 2) ops::split_columns(s, {&p[0], &p[1]});
    else ops::split_columns(s, {&p[0], &p[1], &p[2]});
  };
  auto t = run_pair([&] { run(src, c); }, [&] { run(gsrc, g); }, false);
  double worst = 0;
  for (size_t i = 0; i < c.size(); ++i) worst = std::max(worst, nmse(g[i], c[i]));
  record("split_columns", "[" + std::to_string(rows) + "," + std::to_string(W) + "] into " + std::to_string(widths.size()),
         "parts", worst, kExact, t.gpu_ms, t.cpu_ms);
}

void check_add_rms_norm(int64_t rows, int64_t D) {
  Tensor x = rand_cpu({rows, D}, -2, 2), r = rand_cpu({rows, D}, -2, 2), w = rand_cpu({D}, 0.5f, 1.5f);
  Tensor sum = x.clone(), y = Tensor::empty({rows, D});
  Tensor gsum = up(x), gr = up(r), gw = up(w), gy = poisoned({rows, D});
  auto t = run_pair([&] { ops::add_rms_norm(sum, r, w, 1e-5f, sum, y); }, [&] { ops::add_rms_norm(gsum, gr, gw, 1e-5f, gsum, gy); },
                    false);
  record("add_rms_norm", "[" + std::to_string(rows) + "," + std::to_string(D) + "] in place", "y", nmse(gy, y), kNorm, t.gpu_ms,
         t.cpu_ms);
  record("add_rms_norm", "[" + std::to_string(rows) + "," + std::to_string(D) + "] in place", "sum", nmse(gsum, sum), kExact,
         NAN, NAN);
}

// The fused decode step against the CPU's composition of the unfused ops, over three tokens.
void check_mamba2_decode_step(int64_t B, int64_t H, int64_t P, int64_t G, int64_t N, int64_t K) {
  const int64_t Di = H * P, C = Di + 2 * G * N, W = Di + C + H;
  Tensor conv_w = rand_cpu({C, K}, -0.5f, 0.5f), conv_b = rand_cpu({C}, -0.2f, 0.2f);
  Tensor dt_bias = rand_cpu({H}, -4, -1), A_log = rand_cpu({H}, 0.0f, 2.7f), D = rand_cpu({H}, 0.5f, 1.5f);
  Tensor conv_state = rand_cpu({B, C, K - 1}, -1, 1), ssm_state = rand_cpu({B, H, P, N}, -0.5f, 0.5f);
  Tensor g_cw = up(conv_w), g_cb = up(conv_b), g_dtb = up(dt_bias), g_al = up(A_log), g_D = up(D);
  Tensor g_cs = up(conv_state), g_ss = up(ssm_state);
  double err_y = 0, err_z = 0;
  for (int step = 0; step < 3; ++step) {
    Tensor row = rand_cpu({B, W}, -3, 3), ys = Tensor::empty({B, H, P}), z = Tensor::empty({B, Di});
    Tensor g_row = up(row), g_ys = poisoned({B, H, P}), g_z = poisoned({B, Di});
    ops::mamba2_decode_step(row, conv_w, &conv_b, dt_bias, A_log, &D, 1e-4f, 100.0f, G, conv_state, ssm_state, ys, z);
    ops::mamba2_decode_step(g_row, g_cw, &g_cb, g_dtb, g_al, &g_D, 1e-4f, 100.0f, G, g_cs, g_ss, g_ys, g_z);
    err_y = std::max(err_y, nmse(g_ys, ys));
    err_z = std::max(err_z, nmse(g_z, z));
  }
  const std::string sh = "B" + std::to_string(B) + " H" + std::to_string(H) + " P" + std::to_string(P) + " G" +
                         std::to_string(G) + " N" + std::to_string(N) + " x3 tokens";
  const double err_conv = nmse(g_cs, conv_state), err_ssm = nmse(g_ss, ssm_state);  // before timing moves them
  const double ms = time_ms([&] {
    Tensor g_row = up(rand_cpu({B, W}, -3, 3)), g_ys = poisoned({B, H, P}), g_z = poisoned({B, Di});
    ops::mamba2_decode_step(g_row, g_cw, &g_cb, g_dtb, g_al, &g_D, 1e-4f, 100.0f, G, g_cs, g_ss, g_ys, g_z);
  });
  record("mamba2_decode_step", sh, "ys", err_y, kScan, ms, NAN);
  record("mamba2_decode_step", sh, "z", err_z, kExact, NAN, NAN);
  record("mamba2_decode_step", sh, "conv_state", err_conv, kExact, NAN, NAN);
  record("mamba2_decode_step", sh, "ssm_state", err_ssm, kScan, NAN, NAN);
}

void run_inference(bool quick) {
  check_add_rms_norm(3, 4096);
  check_add_rms_norm(77, 1000);
  check_mamba2_decode_step(2, 128, 64, 8, 128, 4);
  check_mamba2_decode_step(3, 6, 24, 2, 40, 3);
  check_split_columns(154, {8192, 10240, 128}, 18560);
  check_split_columns(3, {7, 5}, 13);
  check_split_columns(4099, {32, 16, 16}, 64);  // Mamba-1's x_proj output: rows of narrow parts
  const int64_t dm = 4096, di = 8192, in_proj = 18560;
  for (int64_t M : {1, 2, 3, 8}) check_linear_bf16(M, dm, in_proj, false);
  check_linear_bf16(1, di, dm, true);
  check_linear_bf16(2, 16384, dm, false);
  check_linear_bf16(quick ? 77 : 200, dm, in_proj, false);
  check_linear_bf16(33, 100, 70, true);  // K % 8 != 0: the unaligned path
  check_embedding_bf16(quick ? 4096 : 32768, dm, 9);
  check_rope(2, 77, 32, 128, 64, 0);
  check_rope(2, 77, 32, 128, 128, 123456);
  check_rope_at(1, 32, 128, {0, 17, 4095, 131071});
  check_rope_at(5, 8, 64, {3, 100});
  for (DType d : {DType::F32, DType::BF16}) {
    check_kv_append(1, 8, 128, 300, {0, 299, 17}, d);
    check_kv_append(13, 8, 128, 300, {5, 287}, d);
  }
  check_argmax(3, 256000, 256000);
  check_argmax(2, 1000, 777);
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("inference", run_inference);

}  // namespace conformance
