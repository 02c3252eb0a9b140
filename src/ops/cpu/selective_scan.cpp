// Mamba-1 selective scan on the CPU: the per-token recurrence of ops.h, exactly, in fp32.
//
//   h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] u_t[d] B_t[n]
//   y_t[d]    = sum_n h_t[d, n] C_t[n] + D[d] u_t[d];   y_t[d] *= silu(z_t[d]) if z is given
//
// Unlike SSD, A varies per (channel, state index), so every step needs Di*N exps: they are the
// cost, and exp_fast keeps the inner loop over N vectorised. Work is split over (batch, block
// of channels); a block's states (kChannelBlock x N floats, the caller's state tensor in place)
// stay in L1 across the time loop,
// and each time step reads the block's slice of u/delta/z plus B_t and C_t, shared by the block.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/scan_kernels.h"

namespace mambalm::ops::cpu {

namespace {
constexpr int64_t kChannelBlock = 16;
}

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx, Tensor* state, Tensor& y,
                    Tensor* chunk_states) {
  if (seq_idx || chunk_states) return selective_scan_with_documents(u, delta, A, Bm, Cm, D, z, seq_idx, state, y, chunk_states);
  const int64_t Bsz = u.dim(0), T = u.dim(1), Di = u.dim(2);
  const int64_t N = A.dim(1);
  const int64_t blocks = (Di + kChannelBlock - 1) / kChannelBlock;
  const float* up = u.f32();
  const float* dp = delta.f32();
  const float* Ap = A.f32();
  const float* Bp = Bm.f32();
  const float* Cp = Cm.f32();
  const float* Dp = D ? D->f32() : nullptr;
  const float* zp = z ? z->f32() : nullptr;
  float* sp = state ? state->f32() : nullptr;
  float* yp = y.f32();

#pragma omp parallel
  {
    std::vector<float> h(sp ? 0 : static_cast<size_t>(kChannelBlock * N));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < Bsz; ++b) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t d0 = blk * kChannelBlock;
        const int64_t nd = std::min(kChannelBlock, Di - d0);
        // The block's states: the caller's, updated in place (one block per iteration owns them),
        // or zeros in a per-thread buffer.
        float* hb = sp ? sp + (b * Di + d0) * N : h.data();
        if (!sp) std::fill(h.begin(), h.end(), 0.0f);
        for (int64_t t = 0; t < T; ++t) {
          const int64_t row = (b * T + t) * Di + d0;
          const float* Bt = Bp + (b * T + t) * N;
          const float* Ct = Cp + (b * T + t) * N;
          for (int64_t dd = 0; dd < nd; ++dd) {
            const float dl = dp[row + dd];
            const float du = dl * up[row + dd];
            const float* Ad = Ap + (d0 + dd) * N;
            float* hd = hb + dd * N;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t n = 0; n < N; ++n) {
              float s = exp_fast(dl * Ad[n]) * hd[n] + du * Bt[n];
              hd[n] = s;
              acc += s * Ct[n];
            }
            float out = acc + (Dp ? Dp[d0 + dd] * up[row + dd] : 0.0f);
            if (zp) {
              const float zv = zp[row + dd];
              out *= zv / (1.0f + exp_fast(-zv));
            }
            yp[row + dd] = out;
          }
        }
      }
    }
  }
}

}  // namespace mambalm::ops::cpu
