// Decode-step ops on the CPU: argmax, the fused Mamba-2 decode step, and for batches of sequences
// at their own positions rope_at and kv_append (into an F32 or BF16 cache). Each is the
// composition of the single-position ops (a per-sequence loop where sequences differ), so the
// CPU reference stays the already-tested rope(), causal_conv1d() and ssd_sequential().
#include <cstring>

#include "ops/cpu/cpu_ops.h"

namespace mambalm::ops::cpu {

void argmax(const Tensor& x, int64_t limit, Tensor& out) {
  const int64_t M = x.dim(0), V = x.dim(1);
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x.f32() + m * V;
    int64_t best = 0;
    for (int64_t j = 1; j < limit; ++j)
      if (row[j] > row[best]) best = j;
    out.data<int32_t>()[m] = static_cast<int32_t>(best);
  }
}

// The composition of the unfused ops, so the CPU reference is what the layer computes for T > 1.
void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w, const Tensor* conv_b, const Tensor& dt_bias,
                        const Tensor& A_log, const Tensor* D, float dt_min, float dt_max, int64_t n_groups,
                        Tensor& conv_state, Tensor& ssm_state, Tensor& ys, Tensor& z) {
  const int64_t B = zxbcdt.dim(0), H = dt_bias.dim(0), P = ssm_state.dim(2), N = ssm_state.dim(3);
  const int64_t Di = H * P, C = conv_w.dim(0), G = n_groups;
  Tensor xbc = Tensor::empty({B, 1, C}), dt_raw = Tensor::empty({B, 1, H});  // split of the row
  Tensor z3 = z.reshape({B, 1, Di}), row = zxbcdt.reshape({B, 1, zxbcdt.dim(1)});
  split_columns(row, {&z3, &xbc, &dt_raw});
  Tensor xbc_conv = Tensor::empty({B, 1, C});
  causal_conv1d(xbc, conv_w, conv_b, nullptr, &conv_state, /*apply_silu=*/true, xbc_conv);
  Tensor xs = Tensor::empty({B, 1, H, P}), Bm = Tensor::empty({B, 1, G, N}), Cm = Tensor::empty({B, 1, G, N});
  Tensor xs_flat = xs.reshape({B, 1, Di}), Bm_flat = Bm.reshape({B, 1, G * N}), Cm_flat = Cm.reshape({B, 1, G * N});
  split_columns(xbc_conv, {&xs_flat, &Bm_flat, &Cm_flat});
  Tensor dt = Tensor::empty({B, 1, H}), A = Tensor::empty({H});
  softplus_dt(dt_raw, dt_bias, dt_min, dt_max, dt);
  neg_exp(A_log, A);
  Tensor y4 = ys.reshape({B, 1, H, P});
  ssd_sequential(xs, dt, A, Bm, Cm, D, &ssm_state, y4);
}

void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta) {
  const int64_t B = x.dim(0);
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    Tensor xb = x.slice0(b, b + 1);  // [1, T, H, Dh]
    rope(xb, pos[b], rotary_dim, theta);
  }
}

// A BF16 cache stores each element rounded to nearest even (f32_to_bf16, the rounding every
// F32 -> BF16 conversion of the project uses), so the cache equals x.to(BF16) row for row.
void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache) {
  const int64_t B = x.dim(0), T = x.dim(1), row = x.dim(2) * x.dim(3), cap = cache.dim(1);
  const int32_t* pos = positions.data<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const float* src = x.f32() + b * T * row;  // [T, Hkv, Dh] of sequence b
    if (cache.dtype() == DType::BF16) {
      uint16_t* dst = cache.data<uint16_t>() + (b * cap + pos[b]) * row;
      for_each_simd(T * row, T * row > kParallelMin, [&](int64_t i) { dst[i] = f32_to_bf16(src[i]); });
    } else {
      std::memcpy(cache.f32() + (b * cap + pos[b]) * row, src, static_cast<size_t>(T * row) * 4);
    }
  }
}

}  // namespace mambalm::ops::cpu
