// Mamba-1 selective scan on the CPU: the per-token recurrence of ops.h, exactly, in fp32.
//
//   h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] u_t[d] B_t[n]
//   y_t[d]    = sum_n h_t[d, n] C_t[n] + D[d] u_t[d];   y_t[d] *= silu(z_t[d]) if z is given
//
// Unlike SSD, A varies per (channel, state index), so every step needs Di*N exps: they are the
// cost, and exp_fast keeps the inner loop over N vectorised. Work is split over (batch, block
// of channels); a block's states (kChannelBlock x N floats, the caller's state tensor in place)
// stay in L1 across the time loop, and each time step reads the block's slice of u/delta/z plus
// B_t and C_t, shared by the block. A block is one call of selective_scan_block.h's kernel of
// the active instruction set (AVX-512 where it fits, else the portable loop here).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/cpu/cpu_ops.h"
#include "ops/cpu/scan_kernels.h"
#include "ops/cpu/selective_scan_block.h"

namespace mambalm::ops::cpu {

namespace {
constexpr int64_t kChannelBlock = kScanBlockAvx512;
}

void selective_scan_block_portable(const ScanBlock& s) {
  const int64_t N = s.N;
  for (int64_t t = 0; t < s.T; ++t) {
    const float* Bt = s.Bm + t * N;
    const float* Ct = s.Cm + t * N;
    for (int64_t dd = 0; dd < s.nd; ++dd) {
      const int64_t i = t * s.Di + dd;
      const float dl = s.delta[i];
      const float du = dl * s.u[i];
      const float* Ad = s.A + dd * N;
      float* hd = s.h + dd * N;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t n = 0; n < N; ++n) {
        float v = exp_fast(dl * Ad[n]) * hd[n] + du * Bt[n];
        hd[n] = v;
        acc += v * Ct[n];
      }
      float out = acc + (s.D ? s.D[dd] * s.u[i] : 0.0f);
      if (s.z) {
        const float zv = s.z[i];
        out *= zv / (1.0f + exp_fast(-zv));
      }
      s.y[i] = out;
    }
  }
}

void selective_scan_block(Isa isa, const ScanBlock& s) {
#if defined(__x86_64__)
  if ((isa == Isa::Avx512 || isa == Isa::Avx512Bf16) && scan_block_avx512_fits(s.nd, s.N))
    return selective_scan_block_avx512(s);
#endif
  (void)isa;
  selective_scan_block_portable(s);
}

void selective_scan_isa(Isa isa, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                        const Tensor& Cm, const Tensor* D, const Tensor* z, Tensor* state, Tensor& y) {
  const int64_t Bsz = u.dim(0), T = u.dim(1), Di = u.dim(2);
  const int64_t N = A.dim(1);
  const int64_t blocks = (Di + kChannelBlock - 1) / kChannelBlock;
  float* sp = state ? state->f32() : nullptr;

#pragma omp parallel
  {
    std::vector<float> h(sp ? 0 : static_cast<size_t>(kChannelBlock * N));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < Bsz; ++b) {
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t d0 = blk * kChannelBlock;
        ScanBlock s;
        s.T = T, s.Di = Di, s.N = N, s.nd = std::min(kChannelBlock, Di - d0);
        const int64_t row = b * T * Di + d0;  // (b, t = 0, d0) in the [B, T, Di] tensors
        s.u = u.f32() + row, s.delta = delta.f32() + row, s.z = z ? z->f32() + row : nullptr;
        s.A = A.f32() + d0 * N, s.D = D ? D->f32() + d0 : nullptr;
        s.Bm = Bm.f32() + b * T * N, s.Cm = Cm.f32() + b * T * N;
        s.y = y.f32() + row;
        // The block's states: the caller's, updated in place (one block per iteration owns them),
        // or zeros in a per-thread buffer.
        if (sp) {
          s.h = sp + (b * Di + d0) * N;
        } else {
          std::fill(h.begin(), h.end(), 0.0f);
          s.h = h.data();
        }
        selective_scan_block(isa, s);
      }
    }
  }
}

void selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx, Tensor* state, Tensor& y,
                    Tensor* chunk_states) {
  if (seq_idx || chunk_states) return selective_scan_with_documents(u, delta, A, Bm, Cm, D, z, seq_idx, state, y, chunk_states);
  selective_scan_isa(active_isa(), u, delta, A, Bm, Cm, D, z, state, y);
}

}  // namespace mambalm::ops::cpu
