// Attention backward in fp32 (the reference-grade path): F32 K/V, and BF16 K/V at the head dims
// the tensor-core backward does not cover; any head dim <= 256, documents, GQA, S >= T.
//
// Two kernels, one warp per row, lane owning head dims d = lane + 32 i (as rows.cu):
//  - query rows (b, t, h): pass 1 is the forward's online softmax over the visible keys, which
//    gives lse = m + log(l) and D = dO . O (O = acc / l); pass 2 walks the keys again for
//    dq = scale sum_j P_j (dP_j - D) k_j with P_j = exp(s_j - lse), dP_j = dO . v_j.
//    lse and D go to a [B, Hq, T] scratch for the second kernel.
//  - key rows (b, j, KV head): for each query head of the group and each query row that sees
//    key j, P and dS = P (dP - D) from the same scores, dv += P dO, dk += dS q; dk *= scale.
// Every output element is written by one warp that sums in a fixed order: deterministic. The
// arithmetic is fp32 with expf, summed in another order than the CPU's sgemm (the CPU forms D
// in double); no rounding to bf16 anywhere. Cost: 3 dot products and 2 axpys of length D per
// (query, key) pair over both kernels, each dot a 5-step warp reduction: about 35x slower than
// the tensor-core path per FLOP (measured 5.4 ms at B 1, L 1024, 32 x 128: it is for
// --dtype f32 runs and small shapes).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "ops/cuda/attention/common.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kRowWarps = 4;

// Sum over the warp of two values at once (interleaved shuffles).
__device__ __forceinline__ void warp_sum2(float& a, float& b) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, o);
    b += __shfl_xor_sync(0xffffffffu, b, o);
  }
}

// One warp per query row (b, t, h): lse and D into the scratch, then dq.
template <int DK, class KV, bool DOC>
__global__ void __launch_bounds__(kRowWarps * 32)
bwd_query_rows_kernel(const float* __restrict__ q, const KV* __restrict__ k,
                      const KV* __restrict__ v, const int* __restrict__ seq_idx,
                      const float* __restrict__ dout, float scale, float* __restrict__ dq,
                      float* __restrict__ lse_out, float* __restrict__ dsum_out, int B, int T,
                      int S, int Hq, int Hkv, int Dh) {
  const int64_t wid = int64_t(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(B) * T * Hq) return;
  const int lane = threadIdx.x & 31;
  const int h = int(wid % Hq);
  const int t = int((wid / Hq) % T);
  const int b = int(wid / (int64_t(Hq) * T));
  const int kvh = h / (Hq / Hkv);
  const int pos = S - T + t;
  const int64_t kv_ld = int64_t(Hkv) * Dh;
  const KV* kb = k + (int64_t(b) * S * Hkv + kvh) * Dh;
  const KV* vb = v + (int64_t(b) * S * Hkv + kvh) * Dh;
  const int* seq = DOC ? seq_idx + int64_t(b) * S : nullptr;
  const int doc = DOC ? __ldg(seq + pos) : 0;

  float qv[DK], gv[DK], acc[DK];
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < Dh ? q[wid * Dh + d] : 0.f;
    gv[i] = d < Dh ? dout[wid * Dh + d] : 0.f;
    acc[i] = 0.f;
  }
  // Pass 1: the forward's online softmax (scores in scaled units).
  float m = -INFINITY, l = 0.f;
  for (int j = 0; j <= pos; ++j) {
    if constexpr (DOC) {
      if (__ldg(seq + j) != doc) continue;
    }
    const KV* kj = kb + j * kv_ld;
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      if (d < Dh) dot += qv[i] * load_elem(kj + d);
    }
    const float s = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);
    const float p = expf(s - m_new);
    l = l * corr + p;
    const KV* vj = vb + j * kv_ld;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      acc[i] = acc[i] * corr + (d < Dh ? p * load_elem(vj + d) : 0.f);
    }
    m = m_new;
  }
  const float inv = 1.0f / l;
  float dsum = 0.f;
#pragma unroll
  for (int i = 0; i < DK; ++i) dsum += gv[i] * (acc[i] * inv);
  dsum = warp_sum(dsum);
  const float lse = m + logf(l);
  if (lane == 0) {
    const int64_t row = (int64_t(b) * Hq + h) * T + t;
    lse_out[row] = lse;
    dsum_out[row] = dsum;
  }

  // Pass 2: dq = scale sum_j P_j (dP_j - D) k_j.
  float dqa[DK];
#pragma unroll
  for (int i = 0; i < DK; ++i) dqa[i] = 0.f;
  for (int j = 0; j <= pos; ++j) {
    if constexpr (DOC) {
      if (__ldg(seq + j) != doc) continue;
    }
    const KV* kj = kb + j * kv_ld;
    const KV* vj = vb + j * kv_ld;
    float kd[DK], sdot = 0.f, gdot = 0.f;
#pragma unroll
    for (int i = 0; i < DK; ++i) {
      const int d = lane + 32 * i;
      kd[i] = d < Dh ? load_elem(kj + d) : 0.f;
      sdot += qv[i] * kd[i];
      gdot += d < Dh ? gv[i] * load_elem(vj + d) : 0.f;
    }
    warp_sum2(sdot, gdot);
    const float p = expf(sdot * scale - lse);
    const float ds = p * (gdot - dsum);
#pragma unroll
    for (int i = 0; i < DK; ++i) dqa[i] = fmaf(ds, kd[i], dqa[i]);
  }
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    if (d < Dh) dq[wid * Dh + d] = dqa[i] * scale;
  }
}

// One warp per key row (b, j, kvh): dk and dv over the group's query heads and the rows that
// see key j, heads in order, rows in order.
template <int DK, class KV, bool DOC>
__global__ void __launch_bounds__(kRowWarps * 32)
bwd_key_rows_kernel(const float* __restrict__ q, const KV* __restrict__ k,
                    const KV* __restrict__ v, const int* __restrict__ seq_idx,
                    const float* __restrict__ dout, float scale, const float* __restrict__ lse_in,
                    const float* __restrict__ dsum_in, float* __restrict__ dk,
                    float* __restrict__ dv, int B, int T, int S, int Hq, int Hkv, int Dh) {
  const int64_t wid = int64_t(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  if (wid >= int64_t(B) * S * Hkv) return;
  const int lane = threadIdx.x & 31;
  const int kvh = int(wid % Hkv);
  const int j = int((wid / Hkv) % S);
  const int b = int(wid / (int64_t(Hkv) * S));
  const int G = Hq / Hkv;
  const int offset = S - T;
  const int* seq = DOC ? seq_idx + int64_t(b) * S : nullptr;
  const int doc = DOC ? __ldg(seq + j) : 0;

  float kv_k[DK], kv_v[DK], dka[DK], dva[DK];
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    kv_k[i] = d < Dh ? load_elem(k + wid * Dh + d) : 0.f;
    kv_v[i] = d < Dh ? load_elem(v + wid * Dh + d) : 0.f;
    dka[i] = dva[i] = 0.f;
  }
  const int i_first = j > offset ? j - offset : 0;  // the first query row at position >= j
  const int64_t q_ld = int64_t(Hq) * Dh;
  for (int hh = 0; hh < G; ++hh) {
    const int h = kvh * G + hh;
    const float* qh = q + (int64_t(b) * T * Hq + h) * Dh;
    const float* gh = dout + (int64_t(b) * T * Hq + h) * Dh;
    const float* lse = lse_in + (int64_t(b) * Hq + h) * T;
    const float* dsm = dsum_in + (int64_t(b) * Hq + h) * T;
    for (int i = i_first; i < T; ++i) {
      if constexpr (DOC) {
        if (__ldg(seq + offset + i) != doc) continue;
      }
      const float* qi = qh + i * q_ld;
      const float* gi = gh + i * q_ld;
      float qd[DK], gd[DK], sdot = 0.f, gdot = 0.f;
#pragma unroll
      for (int c = 0; c < DK; ++c) {
        const int d = lane + 32 * c;
        qd[c] = d < Dh ? qi[d] : 0.f;
        gd[c] = d < Dh ? gi[d] : 0.f;
        sdot += qd[c] * kv_k[c];
        gdot += gd[c] * kv_v[c];
      }
      warp_sum2(sdot, gdot);
      const float p = expf(sdot * scale - __ldg(lse + i));
      const float ds = p * (gdot - __ldg(dsm + i));
#pragma unroll
      for (int c = 0; c < DK; ++c) {
        dva[c] = fmaf(p, gd[c], dva[c]);
        dka[c] = fmaf(ds, qd[c], dka[c]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < DK; ++i) {
    const int d = lane + 32 * i;
    if (d < Dh) {
      dk[wid * Dh + d] = dka[i] * scale;
      dv[wid * Dh + d] = dva[i];
    }
  }
}

template <int DK, class KV, bool DOC>
void launch_rows_bwd(const Tensor& q, const KV* kp, const KV* vp, const int* seq, float scale,
                     const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv, float* lse,
                     float* dsum, int B, int T, int S, int Hq, int Hkv, int Dh) {
  const int64_t qwarps = int64_t(B) * T * Hq, kwarps = int64_t(B) * S * Hkv;
  bwd_query_rows_kernel<DK, KV, DOC><<<unsigned((qwarps + kRowWarps - 1) / kRowWarps),
                                       kRowWarps * 32>>>(q.f32(), kp, vp, seq, dout.f32(), scale,
                                                         dq.f32(), lse, dsum, B, T, S, Hq, Hkv,
                                                         Dh);
  bwd_key_rows_kernel<DK, KV, DOC><<<unsigned((kwarps + kRowWarps - 1) / kRowWarps),
                                     kRowWarps * 32>>>(q.f32(), kp, vp, seq, dout.f32(), scale,
                                                       lse, dsum, dk.f32(), dv.f32(), B, T, S,
                                                       Hq, Hkv, Dh);
}

template <int DK>
void launch_rows_bwd_dk(const Tensor& q, const Tensor& k, const Tensor& v, const int* seq,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv,
                        float* lse, float* dsum) {
  const int B = int(q.dim(0)), T = int(q.dim(1)), Hq = int(q.dim(2)), Dh = int(q.dim(3));
  const int S = int(k.dim(1)), Hkv = int(k.dim(2));
  if (k.dtype() == DType::BF16) {
    const uint16_t *kp = k.data<uint16_t>(), *vp = v.data<uint16_t>();
    if (seq) launch_rows_bwd<DK, uint16_t, true>(q, kp, vp, seq, scale, dout, dq, dk, dv, lse, dsum, B, T, S, Hq, Hkv, Dh);
    else launch_rows_bwd<DK, uint16_t, false>(q, kp, vp, seq, scale, dout, dq, dk, dv, lse, dsum, B, T, S, Hq, Hkv, Dh);
  } else {
    const float *kp = k.f32(), *vp = v.f32();
    if (seq) launch_rows_bwd<DK, float, true>(q, kp, vp, seq, scale, dout, dq, dk, dv, lse, dsum, B, T, S, Hq, Hkv, Dh);
    else launch_rows_bwd<DK, float, false>(q, kp, vp, seq, scale, dout, dq, dk, dv, lse, dsum, B, T, S, Hq, Hkv, Dh);
  }
}

}  // namespace

void attention_backward_rows(const Tensor& q, const Tensor& k, const Tensor& v,
                             const DocView* docs, float scale, const Tensor& dout, Tensor& dq,
                             Tensor& dk, Tensor& dv, float* lse, float* dsum) {
  const int64_t Dh = q.dim(3);
  const int* seq = docs ? docs->seq : nullptr;
  if (Dh <= 32) launch_rows_bwd_dk<1>(q, k, v, seq, scale, dout, dq, dk, dv, lse, dsum);
  else if (Dh <= 64) launch_rows_bwd_dk<2>(q, k, v, seq, scale, dout, dq, dk, dv, lse, dsum);
  else if (Dh <= 128) launch_rows_bwd_dk<4>(q, k, v, seq, scale, dout, dq, dk, dv, lse, dsum);
  else if (Dh <= 256) launch_rows_bwd_dk<8>(q, k, v, seq, scale, dout, dq, dk, dv, lse, dsum);
  else fail("op attention_backward (cuda)",
            "head dim " + std::to_string(Dh) + " is above the supported 256");
}

}  // namespace mambalm::ops::cuda
