// Fused kernels for one decode token, where a step is hundreds of tiny kernels and the fixed
// cost per kernel (~2 us even inside a CUDA graph) rivals the weight reads:
//  - add_rms_norm: the residual add and the next block's RMSNorm in one pass over the row;
//  - mamba2_decode_step: the Mamba-2 mixer between in_proj and the gated norm in two kernels
//    (conv step over all channels; SSD step per (sequence, head) with softplus(dt), A and D)
//    instead of eight.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda_memory.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

// One block per row; statistics in double as rms_norm_kernel. Each thread reads x and r before
// writing sum at the same index, so sum may alias x.
__global__ void add_rms_norm_kernel(const float* x, const float* __restrict__ r, const float* __restrict__ w, float eps,
                                    float* sum, float* __restrict__ y, int64_t D) {
  pdl_launch_dependents();  // the next GEMV may start streaming its weights
  __shared__ double scratch[32];
  const int64_t off = int64_t(blockIdx.x) * D;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float v = x[off + i] + r[off + i];
    sum[off + i] = v;
    s += double(v) * v;
  }
  s = block_sum(s, scratch);  // ends with a barrier: every sum element of the row is written
  const float inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) y[off + i] = sum[off + i] * inv * w[i];
}

// The same for rows of D = 8 x blockDim.x (4096 with 512 threads): each thread keeps its 8
// values in registers (two float4 of x and of r), so the row is read once and there is no
// second pass over memory. At batch 1 a norm is one block: latency, not bandwidth, sets its
// time (8.8 us for the generic kernel under ncu, 2026-11-29).
__global__ void add_rms_norm_vec8(const float* x, const float* __restrict__ r, const float* __restrict__ w, float eps,
                                  float* sum, float* __restrict__ y, int64_t D) {
  pdl_launch_dependents();
  __shared__ double scratch[32];
  const int64_t off = int64_t(blockIdx.x) * D + 8 * threadIdx.x;
  const float4* xp = reinterpret_cast<const float4*>(x + off);
  const float4* rp = reinterpret_cast<const float4*>(r + off);
  float4 a = xp[0], b = xp[1];
  const float4 ra = rp[0], rb = rp[1];
  a.x += ra.x; a.y += ra.y; a.z += ra.z; a.w += ra.w;
  b.x += rb.x; b.y += rb.y; b.z += rb.z; b.w += rb.w;
  reinterpret_cast<float4*>(sum + off)[0] = a;
  reinterpret_cast<float4*>(sum + off)[1] = b;
  double s = double(a.x) * a.x + double(a.y) * a.y + double(a.z) * a.z + double(a.w) * a.w + double(b.x) * b.x +
             double(b.y) * b.y + double(b.z) * b.z + double(b.w) * b.w;
  s = block_sum(s, scratch);
  const float inv = float(1.0 / sqrt(s / double(D) + double(eps)));
  const float4* wp = reinterpret_cast<const float4*>(w + 8 * threadIdx.x);
  const float4 wa = wp[0], wb = wp[1];
  float4* yp = reinterpret_cast<float4*>(y + off);
  yp[0] = make_float4(a.x * inv * wa.x, a.y * inv * wa.y, a.z * inv * wa.z, a.w * inv * wa.w);
  yp[1] = make_float4(b.x * inv * wb.x, b.y * inv * wb.y, b.z * inv * wb.z, b.w * inv * wb.w);
}

// Conv step for one token: thread per (b, c). Input is column Di + c of the projection row; the
// sum runs from the bias over the K-1 state columns then the new input, in k order as conv_kernel.
// The thread owns its channel's window, so it shifts it in place after reading it.
__global__ void conv_step_kernel(const float* __restrict__ zxbcdt, int64_t W, int64_t col0, const float* __restrict__ w,
                                 const float* __restrict__ bias, float* state, float* __restrict__ out, int64_t B,
                                 int64_t C, int64_t K) {
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < B * C; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = idx % C, b = idx / C;
    const float xin = zxbcdt[b * W + col0 + c];
    float* s = state + idx * (K - 1);
    float acc = bias ? bias[c] : 0.0f;
    for (int64_t k = 0; k + 1 < K; ++k) acc += w[c * K + k] * s[k];
    acc += w[c * K + K - 1] * xin;
    for (int64_t k = 0; k + 2 < K; ++k) s[k] = s[k + 1];
    if (K > 1) s[K - 2] = xin;
    out[idx] = silu_f(acc);
  }
}

constexpr int kStepWarps = 8;

// SSD step per (b, h): warp w owns rows p = w + 8 r, lane owns state columns n = lane + 32 k.
// S = exp(dt A) S + dt x B^T;  y = S C + D x  (as ssd_kernel for one time step). The block also
// copies its P channels of the gate z out of the projection row.
template <int NK>
__global__ void __launch_bounds__(kStepWarps * 32)
ssd_step_kernel(const float* __restrict__ zxbcdt, int64_t W, const float* __restrict__ xbc, int64_t C,
                const float* __restrict__ dt_bias, const float* __restrict__ A_log, const float* __restrict__ D,
                float dt_min, float dt_max, float* state, float* __restrict__ ys, float* __restrict__ z, int H, int P,
                int N, int G) {
  const int h = blockIdx.x, b = blockIdx.y;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int Di = H * P, g = h / (H / G);
  const float* row = zxbcdt + int64_t(b) * W;
  for (int p = threadIdx.x; p < P; p += blockDim.x) z[int64_t(b) * Di + h * P + p] = row[h * P + p];
  const float v = row[Di + C + h] + dt_bias[h];
  const float dt = fminf(fmaxf(v > 20.0f ? v : log1pf(expf(v)), dt_min), dt_max);  // softplus_dt
  const float dA = expf(dt * -expf(A_log[h]));
  const float* xr = xbc + int64_t(b) * C;
  float Bn[NK], Cn[NK];
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int n = lane + 32 * k;
    Bn[k] = n < N ? xr[Di + g * N + n] : 0.0f;
    Cn[k] = n < N ? xr[Di + G * N + g * N + n] : 0.0f;
  }
  const float Dh = D ? D[h] : 0.0f;
  float* S = state + (int64_t(b) * H + h) * int64_t(P) * N;
  // Each warp loads its kRows state rows (kRows x NK values per lane) before updating any, so
  // ~4 KB per warp are in flight: the step is a pure stream over the state (read + write).
  constexpr int kRows = 8;
  for (int p0 = warp; p0 < P; p0 += kStepWarps * kRows) {
    float sv[kRows][NK], xp[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int p = p0 + r * kStepWarps;
      xp[r] = p < P ? xr[h * P + p] : 0.0f;
#pragma unroll
      for (int k = 0; k < NK; ++k) {
        const int n = lane + 32 * k;
        sv[r][k] = (p < P && n < N) ? S[int64_t(p) * N + n] : 0.0f;
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int p = p0 + r * kStepWarps;
      if (p >= P) break;
      float acc = 0.0f;
#pragma unroll
      for (int k = 0; k < NK; ++k) {
        const int n = lane + 32 * k;
        if (n < N) {
          const float v = dA * sv[r][k] + dt * xp[r] * Bn[k];
          S[int64_t(p) * N + n] = v;
          acc += v * Cn[k];
        }
      }
      acc = warp_sum(acc);
      if (lane == 0) ys[(int64_t(b) * H + h) * P + p] = acc + Dh * xp[r];
    }
  }
}

}  // namespace

void add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, float eps, Tensor& sum, Tensor& y) {
  const int64_t D = x.dim(-1);
  const int64_t rows = D ? x.numel() / D : 0;
  if (rows == 0) return;
  const bool aligned = (reinterpret_cast<uintptr_t>(x.f32()) | reinterpret_cast<uintptr_t>(r.f32()) |
                        reinterpret_cast<uintptr_t>(w.f32()) | reinterpret_cast<uintptr_t>(sum.f32()) |
                        reinterpret_cast<uintptr_t>(y.f32())) % 16 == 0;
  if (aligned && D % 256 == 0 && D / 8 <= 1024)
    add_rms_norm_vec8<<<unsigned(rows), unsigned(D / 8)>>>(x.f32(), r.f32(), w.f32(), eps, sum.f32(), y.f32(), D);
  else
    add_rms_norm_kernel<<<unsigned(rows), D >= 1024 ? 512 : 128>>>(x.f32(), r.f32(), w.f32(), eps, sum.f32(), y.f32(), D);
  check_launch("add_rms_norm");
}

void mamba2_decode_step(const Tensor& zxbcdt, const Tensor& conv_w, const Tensor* conv_b, const Tensor& dt_bias,
                        const Tensor& A_log, const Tensor* D, float dt_min, float dt_max, int64_t n_groups,
                        Tensor& conv_state, Tensor& ssm_state, Tensor& ys, Tensor& z) {
  const int64_t B = zxbcdt.dim(0), W = zxbcdt.dim(1), H = dt_bias.numel(), P = ssm_state.dim(2), N = ssm_state.dim(3);
  const int64_t Di = H * P, C = conv_w.dim(0), K = conv_w.dim(1);
  if (B == 0) return;
  // The conv outputs of this token: x | B | C after SiLU, [B, C]. Grow-only scratch, sized in
  // the warm-up steps before a decode graph is captured.
  static GrowOnlyBuffer xbc_buffer;
  float* xbc = xbc_buffer.get<float>(size_t(B * C), "mamba2_decode_step");
  conv_step_kernel<<<blocks_for(B * C), kThreads>>>(zxbcdt.f32(), W, Di, conv_w.f32(), conv_b ? conv_b->f32() : nullptr,
                                                    conv_state.f32(), xbc, B, C, K);
  check_launch("mamba2_decode_step (conv)");
  const dim3 grid{static_cast<unsigned>(H), static_cast<unsigned>(B)};
#define MAMBALM_STEP_LAUNCH(NK)                                                                                         \
  ssd_step_kernel<NK><<<grid, kStepWarps * 32>>>(zxbcdt.f32(), W, xbc, C, dt_bias.f32(), A_log.f32(),            \
                                                 D ? D->f32() : nullptr, dt_min, dt_max, ssm_state.f32(), ys.f32(), \
                                                 z.f32(), int(H), int(P), int(N), int(n_groups))
  switch (lanes_k(N, "mamba2_decode_step")) {
    case 1: MAMBALM_STEP_LAUNCH(1); break;
    case 2: MAMBALM_STEP_LAUNCH(2); break;
    case 4: MAMBALM_STEP_LAUNCH(4); break;
    default: MAMBALM_STEP_LAUNCH(8); break;
  }
#undef MAMBALM_STEP_LAUNCH
  check_launch("mamba2_decode_step (ssd)");
}

}  // namespace mambalm::ops::cuda
