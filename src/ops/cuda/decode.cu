// Decode-step ops on CUDA, where a step is hundreds of tiny kernels and the fixed cost per kernel
// (~2 us even inside a CUDA graph) rivals the weight reads:
//  - mamba2_decode_step: the Mamba-2 mixer between in_proj and the gated norm in two kernels
//    (conv step over all channels; SSD step per (sequence, head) with softplus(dt), A and D)
//    instead of eight;
//  - argmax, and for batches of sequences at their own positions rope_at and kv_append.
//    Positions are read on the device (I32 [B]), so a captured decode step stays valid as they
//    advance between replays.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/device.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

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


namespace {

// One thread per (b, t, h, i < half); angle in double, cos/sin rounded to fp32 once, as rope().
__global__ void rope_at_kernel(float* x, const int32_t* __restrict__ positions, int64_t B, int64_t T, int64_t H,
                               int64_t Dh, int64_t half, int64_t rotary_dim, double theta) {
  const int64_t n = B * T * H * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx % half;
    const int64_t h = (idx / half) % H;
    const int64_t row = idx / (half * H);  // b * T + t
    const int64_t b = row / T, t = row % T;
    rope_pair(x + (row * H + h) * Dh, i, half, double(positions[b] + t), rotary_dim, theta);
  }
}

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// cache[b, positions[b] + t, :] = x[b, t, :] with `row` = Hkv * Dh elements per token.
template <class T>
__global__ void kv_append_kernel(const float* __restrict__ x, const int32_t* __restrict__ positions, T* cache,
                                 int64_t B, int64_t Tn, int64_t row, int64_t capacity) {
  const int64_t n = B * Tn * row;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = idx % row;
    const int64_t bt = idx / row;
    const int64_t b = bt / Tn, t = bt % Tn;
    const int64_t p = positions[b] + t;
    if (p < capacity) store(cache + (b * capacity + p) * row + e, x[idx]);  // never write past the cache
  }
}

// Argmax in two passes: kArgmaxChunks blocks per row each reduce a contiguous chunk to its
// (value, index) best, then one block per row reduces those. The largest value wins and, among
// equals, the smallest index (the CPU's first-index rule). One block per row walked the 256000
// logits of the 8B vocabulary in ~390 us (ncu, 2026-11-29), more than a tenth of a decode step.
constexpr int kArgmaxChunks = 128;
constexpr int kArgmaxThreads = 256;

__device__ __forceinline__ void better(float& bv, int32_t& bi, float v, int32_t i) {
  if (v > bv || (v == bv && i < bi)) {
    bv = v;
    bi = i;
  }
}

__device__ void block_best(float& bv, int32_t& bi) {
  __shared__ float sv[kArgmaxThreads];
  __shared__ int32_t si[kArgmaxThreads];
  sv[threadIdx.x] = bv;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int s = kArgmaxThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) better(sv[threadIdx.x], si[threadIdx.x], sv[threadIdx.x + s], si[threadIdx.x + s]);
    __syncthreads();
  }
  bv = sv[0];
  bi = si[0];
}

__global__ void argmax_partial(const float* __restrict__ x, int64_t V, int64_t limit, float* __restrict__ pv,
                               int32_t* __restrict__ pi) {
  const int64_t chunk = (limit + kArgmaxChunks - 1) / kArgmaxChunks;
  const int64_t begin = blockIdx.x * chunk, end = min(limit, begin + chunk);
  const float* row = x + blockIdx.y * V;
  float bv = -INFINITY;
  int32_t bi = 0x7fffffff;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) better(bv, bi, row[j], int32_t(j));
  block_best(bv, bi);
  if (threadIdx.x == 0) {
    pv[blockIdx.y * kArgmaxChunks + blockIdx.x] = bv;
    pi[blockIdx.y * kArgmaxChunks + blockIdx.x] = bi;
  }
}

__global__ void argmax_final(const float* __restrict__ pv, const int32_t* __restrict__ pi, int32_t* __restrict__ out) {
  float bv = -INFINITY;
  int32_t bi = 0x7fffffff;
  for (int j = threadIdx.x; j < kArgmaxChunks; j += blockDim.x)
    better(bv, bi, pv[blockIdx.x * kArgmaxChunks + j], pi[blockIdx.x * kArgmaxChunks + j]);
  block_best(bv, bi);
  // A row of NaNs leaves no winner: report index 0, as the CPU loop does.
  if (threadIdx.x == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
}

}  // namespace

void argmax(const Tensor& x, int64_t limit, Tensor& out) {
  const int64_t M = x.dim(0), V = x.dim(1);
  if (M == 0) return;
  // Partial results: a grow-only buffer (sized before any capture by the uncaptured warm-up).
  static GrowOnlyBuffer partial;
  float* pv = partial.get<float>(size_t(2 * M * kArgmaxChunks), "argmax");
  auto* pi = reinterpret_cast<int32_t*>(pv + M * kArgmaxChunks);
  argmax_partial<<<dim3(kArgmaxChunks, unsigned(M)), kArgmaxThreads>>>(x.f32(), V, limit, pv, pi);
  check_launch("argmax");
  argmax_final<<<unsigned(M), kArgmaxThreads>>>(pv, pi, out.data<int32_t>());
  check_launch("argmax");
}

void rope_at(Tensor& x, const Tensor& positions, int64_t rotary_dim, double theta) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), Dh = x.dim(3);
  const int64_t half = rotary_dim / 2;
  if (half == 0 || x.numel() == 0) return;
  rope_at_kernel<<<blocks_for(B * T * H * half), kThreads>>>(x.f32(), positions.data<int32_t>(), B, T, H, Dh, half,
                                                             rotary_dim, theta);
  check_launch("rope_at");
}

void kv_append(const Tensor& x, const Tensor& positions, Tensor& cache) {
  const int64_t B = x.dim(0), T = x.dim(1), row = x.dim(2) * x.dim(3), cap = cache.dim(1);
  if (x.numel() == 0) return;
  if (cache.dtype() == DType::BF16)
    kv_append_kernel<<<blocks_for(x.numel()), kThreads>>>(x.f32(), positions.data<int32_t>(),
                                                          cache.data<__nv_bfloat16>(), B, T, row, cap);
  else
    kv_append_kernel<<<blocks_for(x.numel()), kThreads>>>(x.f32(), positions.data<int32_t>(), cache.f32(), B, T, row,
                                                          cap);
  check_launch("kv_append");
}

}  // namespace mambalm::ops::cuda
