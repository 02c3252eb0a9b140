// Training kernels of the two scans (Mamba-2 chunked SSD, Mamba-1 selective scan), forward with
// document resets and chunked backward, templated over the scalar type. The float instances
// serve the ops (ops_backward.h); the double instances exist so tests can check the backward
// against central finite differences in double precision. Explicitly instantiated for float and
// double in ssd_train.cpp / scan_train.cpp. Raw row-major pointers; shapes as in ops.h.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/tensor.h"

namespace mambalm::ops::cpu {

// The chunk length the CPU's SSD runs (forward, with documents, backward): the config's, capped
// at kCpuSsdChunk. SSD is exact for any chunk length (chunks only regroup the same sums), so the
// cap changes nothing but rounding. A chunk's intra-chunk products cost ~Q (N + P) a token and
// head, growing with Q, while the state terms it saves stop paying below ~64 on a CPU: at
// mamba2-130m's prefill shape (T 512, 24 heads of 64, N 128) chunk 256 took 2.2x chunk 64's time
// forward (bf16 products) and 2.2-2.4x backward (bench/NOTES.md). Checkpoints made for GPUs carry
// 128 or 256 (state-spaces/mamba2-*: 256), which their kernels want.
constexpr int64_t kCpuSsdChunk = 64;
inline int64_t cpu_ssd_chunk(int64_t config_chunk) { return std::min(config_chunk, kCpuSsdChunk); }

template <class R>
struct SsdProblem {
  int64_t Bsz = 0, T = 0, H = 0, P = 0, G = 0, N = 0;
  int64_t chunk = 64;
  const R* x = nullptr;   // [B, T, H, P]
  const R* dt = nullptr;  // [B, T, H] (after softplus)
  const R* A = nullptr;   // [H]
  const R* Bm = nullptr;  // [B, T, G, N]
  const R* Cm = nullptr;  // [B, T, G, N]
  const R* D = nullptr;   // [H] or null
  const int32_t* seq_idx = nullptr;  // [B, T] or null
};

// y [B, T, H, P]; state_in/state_out [B, H, P, N], either may be null; they may be the same.
template <class R>
void ssd_chunked_forward(const SsdProblem<R>& p, const R* state_in, R* state_out, R* y);

// See ops_backward.h ssd_chunked_backward. dA, dD, dstate_in may be null; dA/dD accumulate.
template <class R>
void ssd_chunked_backward(const SsdProblem<R>& p, const R* state_in, const R* dstate_out,
                          const R* dy, R* dx, R* ddt, R* dA, R* dB, R* dC, R* dD, R* dstate_in);

template <class R>
struct ScanProblem {
  int64_t Bsz = 0, T = 0, Di = 0, N = 0;
  int64_t chunk = 64;
  const R* u = nullptr;      // [B, T, Di]
  const R* delta = nullptr;  // [B, T, Di]
  const R* A = nullptr;      // [Di, N]
  const R* Bm = nullptr;     // [B, T, N]
  const R* Cm = nullptr;     // [B, T, N]
  const R* D = nullptr;      // [Di] or null
  const R* z = nullptr;      // [B, T, Di] or null
  const int32_t* seq_idx = nullptr;  // [B, T] or null
  // The forward's chunk_states ([B, ceil(T / chunk), Di, N], chunk = kScanStateChunk) or null:
  // the backward then reads the chunks' entering states there instead of walking t forwards.
  const R* chunk_states = nullptr;
};

// chunk_states (optional, [B, ceil(T / p.chunk), Di, N]): the state entering every p.chunk-th step.
template <class R>
void selective_scan_forward(const ScanProblem<R>& p, const R* state_in, R* state_out, R* y, R* chunk_states = nullptr);

// dz required iff p.z; dA, dD, dstate_in may be null; dA/dD accumulate.
template <class R>
void selective_scan_backward(const ScanProblem<R>& p, const R* state_in, const R* dstate_out,
                             const R* dy, R* du, R* ddelta, R* dA, R* dB, R* dC, R* dD, R* dz,
                             R* dstate_in);

// The ops' forward with document ids on Tensors (ssd_backward.cpp, selective_scan_backward.cpp):
// ssd_chunked and selective_scan route here when seq_idx is given.
void ssd_chunked_with_documents(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                                const Tensor* D, const Tensor& seq_idx, int64_t chunk_size, Tensor* state, Tensor& y);
// selective_scan also routes here when chunk_states are wanted (seq_idx may then be null).
void selective_scan_with_documents(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                   const Tensor& Cm, const Tensor* D, const Tensor* z, const Tensor* seq_idx,
                                   Tensor* state, Tensor& y, Tensor* chunk_states);

}  // namespace mambalm::ops::cpu
