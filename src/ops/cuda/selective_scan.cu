// Mamba-1 selective scan on CUDA: one warp per (sequence, channel), the state in registers,
// time in order; lanes split the state dimension N and combine with warp shuffles. With document
// ids the state restarts from zero at each document start.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

constexpr int kWarps = 8;  // warps per block

// Selective scan: one warp per (b, channel d); lane owns n = lane + 32 k.
template <int NK>
__global__ void __launch_bounds__(kWarps * 32)
selective_scan_kernel(const float* __restrict__ u, const float* __restrict__ delta,
                      const float* __restrict__ A, const float* __restrict__ Bm,
                      const float* __restrict__ Cm, const float* __restrict__ D,
                      const float* __restrict__ z, const int32_t* __restrict__ seq, float* state,
                      float* __restrict__ y, int Bsz, int T, int Di, int N) {
  const int lane = threadIdx.x & 31;
  const int64_t wid = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(Bsz) * Di) return;  // whole warp leaves together
  const int b = int(wid / Di), d = int(wid % Di);
  float hs[NK], Ad[NK];
#pragma unroll
  for (int k = 0; k < NK; ++k) {
    const int n = lane + 32 * k;
    Ad[k] = n < N ? A[int64_t(d) * N + n] : 0.0f;
    hs[k] = (state && n < N) ? state[(int64_t(b) * Di + d) * N + n] : 0.0f;
  }
  const float Dd = D ? D[d] : 0.0f;
  for (int t = 0; t < T; ++t) {
    const int64_t bt = int64_t(b) * T + t;
    const int64_t row = bt * Di + d;
    const float dl = delta[row], uv = u[row];
    const float du = dl * uv;
    if (seq && t > 0 && seq[bt] != seq[bt - 1]) {  // a new document starts from a zero state
#pragma unroll
      for (int k = 0; k < NK; ++k) hs[k] = 0.0f;
    }
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int n = lane + 32 * k;
      const float bn = n < N ? Bm[bt * N + n] : 0.0f;
      const float cn = n < N ? Cm[bt * N + n] : 0.0f;
      const float s = expf(dl * Ad[k]) * hs[k] + du * bn;
      hs[k] = s;
      acc += s * cn;
    }
    acc = warp_sum(acc);
    if (lane == 0) {
      float out = acc + Dd * uv;
      if (z) out *= silu_f(z[row]);
      y[row] = out;
    }
  }
  if (state) {
#pragma unroll
    for (int k = 0; k < NK; ++k) {
      const int n = lane + 32 * k;
      if (n < N) state[(int64_t(b) * Di + d) * N + n] = hs[k];
    }
  }
}
}  // namespace

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx, Tensor* state, Tensor& y) {
  const int64_t Bsz = u.dim(0), T = u.dim(1), Di = u.dim(2), N = A.dim(1);
  if (Bsz * Di == 0) return;
  const unsigned blocks = unsigned((Bsz * Di + kWarps - 1) / kWarps);
  const float* Dp = D ? D->f32() : nullptr;
  const float* zp = z ? z->f32() : nullptr;
  float* sp = state ? state->f32() : nullptr;
  const int32_t* seq = seq_idx ? seq_idx->data<int32_t>() : nullptr;
#define MAMBALM_SCAN_LAUNCH(NK)                                                                  \
  selective_scan_kernel<NK><<<blocks, kWarps * 32>>>(u.f32(), delta.f32(), A.f32(), Bm.f32(),       \
                                                     Cm.f32(), Dp, zp, seq, sp, y.f32(), int(Bsz), \
                                                     int(T), int(Di), int(N))
  switch (lanes_k(N, "selective_scan")) {
    case 1: MAMBALM_SCAN_LAUNCH(1); break;
    case 2: MAMBALM_SCAN_LAUNCH(2); break;
    case 4: MAMBALM_SCAN_LAUNCH(4); break;
    default: MAMBALM_SCAN_LAUNCH(8); break;
  }
#undef MAMBALM_SCAN_LAUNCH
  check_launch("selective_scan");
}

}  // namespace mambalm::ops::cuda
