// Cross-entropy over the vocabulary on CUDA, with its gradient fused in (ops/forward_ops.inc).
//
// One block of 1024 threads per row. Pass 1 reads the row once with 16-byte loads (an unaligned
// head and tail of up to 3 elements each go scalar, so any V and any row offset work) and keeps
// per thread an online (max m, sum s of 2^((l - m) log2 e)) in fp32, rescaling s when m grows; the
// block combines the 1024 pairs in a fixed tree (warp shuffles, then warp 0), so a row's
// statistics are the same every run. lse = m + ln s in double; loss = lse - l[target] in double,
// rounded once, as the CPU. Pass 2 writes dlogits = grad_scale * exp(l - lse_f) (- grad_scale at
// the target) with lse_f = (float) lse, the CPU's formula. Where the row fits in shared memory
// (V up to ~58K floats on an H200: vocabularies of 32K and 50K) pass 1 also keeps it there and
// pass 2 reads it back, so logits cross DRAM once and dlogits once (3.3 GB for 8192 x 50304
// instead of 4.9 GB); longer rows (up to 256K and beyond) are read again from global memory.
// dlogits may be the logits buffer itself: every element is read before it is overwritten, by
// the thread that overwrites it, and the target logit is read before pass 1. dlogits may also be
// BF16 (mixed-precision training: the head's backward GEMM reads dy in bf16), each value rounded
// to nearest even once, as a conversion of the fp32 gradient would: 2 bytes written per class
// instead of 4, and no separate fp32 -> bf16 pass over the chunk before the GEMM.
//
// Accuracy against the CPU's double sum of exp_fast terms: each thread adds ~V/1024 terms <= 1
// in fp32 (relative error ~1e-7 of its partial), the tree of 1024 partials adds ~log2(1024)
// roundings, and exp2f is within 2 ulp: ln s is off by ~1e-7 at most, below half an ulp of a
// typical loss (~2e-6 at 10-20), so the float loss matches the CPU's or differs by one ulp.
//
// Targets are validated on the device before anything is written (-1 = ignored row; others
// must lie in [0, V)): a flag holds the first bad row, read back with one small synchronous copy,
// and the error names the row and the target as the CPU's does. Inside a CUDA-graph capture the
// check is skipped (no host read is possible there); a bad target then gives a NaN loss and
// the plain softmax as its gradient row instead of reading out of bounds.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <string>

#include "core/device.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"
#include "ops/cuda/vec4_io.cuh"

namespace mambalm::ops::cuda {

namespace {

constexpr int kCeThreads = 1024;
constexpr float kLog2e = 1.4426950408889634f;

// Flag: n - (first bad row) via atomicMax, 0 when every target is valid.
__global__ void find_bad_target(const int32_t* __restrict__ targets, int64_t n, int32_t V, int* flag) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t t = targets[i];
    if (t != -1 && (t < 0 || t >= V)) atomicMax(flag, int(n - i));
  }
}

int* bad_target_flag() {  // one device int for the process
  static int* flag = [] {
    int* p = nullptr;
    check_cuda(cudaMalloc(&p, sizeof(int)), "cross_entropy", "cudaMalloc");
    return p;
  }();
  return flag;
}

// Online softmax statistics: (m, s) stands for s * 2^(m log2 e) = sum of e^l over the values
// seen. Empty state: m = -inf, s = 0.
struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0f};  // both empty (or all -inf so far)
  return {m, a.s * exp2f((a.m - m) * kLog2e) + b.s * exp2f((b.m - m) * kLog2e)};
}

__device__ __forceinline__ void add_value(MaxSum& st, float v) {
  if (v > st.m) {
    st.s *= exp2f((st.m - v) * kLog2e);  // 0 when st.m = -inf
    st.m = v;
  }
  if (st.m != -INFINITY) st.s += exp2f((v - st.m) * kLog2e);
}

__device__ __forceinline__ void add_quad(MaxSum& st, float4 q) {
  const float mx = fmaxf(fmaxf(q.x, q.y), fmaxf(q.z, q.w));
  if (mx > st.m) {
    st.s *= exp2f((st.m - mx) * kLog2e);
    st.m = mx;
  }
  if (st.m != -INFINITY)
    st.s += (exp2f((q.x - st.m) * kLog2e) + exp2f((q.y - st.m) * kLog2e)) +
            (exp2f((q.z - st.m) * kLog2e) + exp2f((q.w - st.m) * kLog2e));
}

// The block's combined statistics, the same on every thread (fixed tree: lanes by xor shuffle,
// then the 32 warp results by warp 0).
__device__ __forceinline__ MaxSum block_combine(MaxSum st) {
  __shared__ float sm[32], ss[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o)};
    st = combine(st, other);
  }
  if (lane == 0) sm[warp] = st.m, ss[warp] = st.s;
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    MaxSum w = lane < nw ? MaxSum{sm[lane], ss[lane]} : MaxSum{-INFINITY, 0.0f};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum other{__shfl_xor_sync(0xffffffffu, w.m, o), __shfl_xor_sync(0xffffffffu, w.s, o)};
      w = combine(w, other);
    }
    if (lane == 0) sm[0] = w.m, ss[0] = w.s;
  }
  __syncthreads();
  return {sm[0], ss[0]};
}

// One row per block. kCache: the row is kept in dynamic shared memory between the passes
// (V + 3 floats; element j at index j + pad so that the float4 body is 16-byte aligned there).
template <bool kCache, class GT>
__global__ void __launch_bounds__(kCeThreads)
cross_entropy_rows(const float* logits, const int32_t* __restrict__ targets, float grad_scale, float* __restrict__ loss,
                   GT* dlogits, int64_t V) {
  extern __shared__ float4 cache4[];
  float* cache = reinterpret_cast<float*>(cache4);
  const int64_t row = blockIdx.x;
  const float* l = logits + row * V;
  GT* g = dlogits ? dlogits + row * V : nullptr;
  const int32_t t = targets[row];
  // Split the row into a scalar head (until 16-byte alignment), a float4 body and a scalar tail.
  const int64_t head = min(V, ((16 - int64_t(reinterpret_cast<uintptr_t>(l) & 15)) & 15) / 4);
  const int64_t body = (V - head) / 4;
  const int64_t tail0 = head + 4 * body;
  const int64_t pad = (4 - head) & 3;  // cache index of element j: j + pad
  const int tid = threadIdx.x;

  // dlogits takes the float4 path when its element `head` is aligned to four elements, as the
  // logits' is (the same buffer, or both from aligned allocations); else element by element.
  const bool g_vec = g && aligned_to(g + head, 4 * sizeof(GT));

  if (t == -1) {  // ignored row: loss 0, gradient 0
    if (tid == 0) loss[row] = 0.0f;
    if (g && g_vec) {
      for (int64_t j = tid; j < head; j += blockDim.x) store_float(g + j, 0.0f);
      for (int64_t q = tid; q < body; q += blockDim.x) store_float4(g + head + 4 * q, make_float4(0.0f, 0.0f, 0.0f, 0.0f));
      for (int64_t j = tail0 + tid; j < V; j += blockDim.x) store_float(g + j, 0.0f);
    } else if (g) {
      for (int64_t j = tid; j < V; j += blockDim.x) store_float(g + j, 0.0f);
    }
    return;
  }
  const bool valid = t >= 0 && t < V;
  const float lt = valid ? l[t] : NAN;  // read before any thread of this block writes the row

  // Pass 1: online max / sum, four float4 loads in flight per thread.
  MaxSum st{-INFINITY, 0.0f};
  for (int64_t j = tid; j < head; j += blockDim.x) {
    const float v = l[j];
    if (kCache) cache[j + pad] = v;
    add_value(st, v);
  }
  for (int64_t j = tail0 + tid; j < V; j += blockDim.x) {
    const float v = l[j];
    if (kCache) cache[j + pad] = v;
    add_value(st, v);
  }
  const float4* l4 = reinterpret_cast<const float4*>(l + head);
  float4* c4 = cache4 + (head + pad) / 4;
  constexpr int U = 4;
  for (int64_t q0 = tid; q0 < body; q0 += int64_t(U) * blockDim.x) {
    float4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t q = q0 + int64_t(u) * blockDim.x;
      if (q < body) v[u] = l4[q];
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t q = q0 + int64_t(u) * blockDim.x;
      if (q < body) {
        if (kCache) c4[q] = v[u];
        add_quad(st, v[u]);
      }
    }
  }
  const MaxSum tot = block_combine(st);  // ends with a barrier: the cache is complete
  const double lse = double(tot.m) + log(double(tot.s));
  if (tid == 0) loss[row] = valid ? float(lse - double(lt)) : NAN;
  if (!g) return;

  // Pass 2: the gradient.
  const float lse_f = float(lse);
  if (!g_vec) {
    for (int64_t j = tid; j < V; j += blockDim.x) {
      const float v = kCache ? cache[j + pad] : l[j];
      const float d = grad_scale * expf(v - lse_f);
      store_float(g + j, j == t ? d - grad_scale : d);
    }
    return;
  }
  for (int64_t j = tid; j < head; j += blockDim.x) {
    const float v = kCache ? cache[j + pad] : l[j];
    const float d = grad_scale * expf(v - lse_f);
    store_float(g + j, j == t ? d - grad_scale : d);
  }
  for (int64_t j = tail0 + tid; j < V; j += blockDim.x) {
    const float v = kCache ? cache[j + pad] : l[j];
    const float d = grad_scale * expf(v - lse_f);
    store_float(g + j, j == t ? d - grad_scale : d);
  }
  GT* gb = g + head;  // the float4 body, four elements a step
  const int64_t tq = valid && t >= head && t < tail0 ? (t - head) / 4 : -1;  // the quad holding the target
  for (int64_t q0 = tid; q0 < body; q0 += int64_t(U) * blockDim.x) {
    float4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t q = q0 + int64_t(u) * blockDim.x;
      if (q < body) v[u] = kCache ? c4[q] : l4[q];
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t q = q0 + int64_t(u) * blockDim.x;
      if (q < body) {
        float4 d = make_float4(grad_scale * expf(v[u].x - lse_f), grad_scale * expf(v[u].y - lse_f),
                               grad_scale * expf(v[u].z - lse_f), grad_scale * expf(v[u].w - lse_f));
        if (q == tq) {
          const int k = int(t - head - 4 * q);
          if (k == 0) d.x -= grad_scale;
          else if (k == 1) d.y -= grad_scale;
          else if (k == 2) d.z -= grad_scale;
          else d.w -= grad_scale;
        }
        store_float4(gb + 4 * q, d);
      }
    }
  }
}

// Rows of at most 32K classes with float4 access (V % 4 == 0, 16-byte aligned rows): NT threads
// per row, each holding Q float4s (float4 number tid + NT q) in registers, so the row is read
// once and written once with no shared-memory copy, and a block is small enough for several per
// SM. The statistics and the formulas are the kernel's above (per-thread online max / sum,
// block_combine, lse in double). With 1024 threads on a row of 8K classes (the study's
// vocabulary) each thread had held 8 values between two block-wide reductions: 0.7 ms for 16384
// rows, ~3x the row's memory time.
template <int Q, int NT, class GT>
__global__ void __launch_bounds__(NT)
cross_entropy_regs(const float* logits, const int32_t* __restrict__ targets, float grad_scale, float* __restrict__ loss,
                   GT* dlogits, int64_t V) {
  const int64_t row = blockIdx.x;
  const float4* l4 = reinterpret_cast<const float4*>(logits + row * V);
  GT* g4 = dlogits ? dlogits + row * V : nullptr;  // quad i at g4 + 4 i
  const int32_t t = targets[row];
  const int tid = threadIdx.x;
  const int64_t quads = V / 4;
  if (t == -1) {  // ignored row: loss 0, gradient 0
    if (tid == 0) loss[row] = 0.0f;
    if (g4)
#pragma unroll
      for (int q = 0; q < Q; ++q)
        if (tid + int64_t(NT) * q < quads) store_float4(g4 + 4 * (tid + int64_t(NT) * q), make_float4(0.0f, 0.0f, 0.0f, 0.0f));
    return;
  }
  const bool valid = t >= 0 && t < V;
  const float lt = valid ? logits[row * V + t] : NAN;  // read before any thread of this block writes the row
  float4 v[Q];
  MaxSum st{-INFINITY, 0.0f};
#pragma unroll
  for (int q = 0; q < Q; ++q) {
    const int64_t i = tid + int64_t(NT) * q;
    if (i < quads) {
      v[q] = l4[i];
      add_quad(st, v[q]);
    }
  }
  const MaxSum tot = block_combine(st);
  const double lse = double(tot.m) + log(double(tot.s));
  if (tid == 0) loss[row] = valid ? float(lse - double(lt)) : NAN;
  if (!g4) return;
  const float lse_f = float(lse);
#pragma unroll
  for (int q = 0; q < Q; ++q) {
    const int64_t i = tid + int64_t(NT) * q;
    if (i >= quads) continue;
    float4 d = make_float4(grad_scale * expf(v[q].x - lse_f), grad_scale * expf(v[q].y - lse_f),
                           grad_scale * expf(v[q].z - lse_f), grad_scale * expf(v[q].w - lse_f));
    if (valid && t / 4 == i) {
      const int k = int(t % 4);
      if (k == 0) d.x -= grad_scale;
      else if (k == 1) d.y -= grad_scale;
      else if (k == 2) d.z -= grad_scale;
      else d.w -= grad_scale;
    }
    store_float4(g4 + 4 * i, d);
  }
}

// The register kernel for the row length, or false when it does not apply.
template <class GT>
bool launch_cross_entropy_regs(const float* logits, const int32_t* tg, float grad_scale, float* loss, GT* g,
                               int64_t N, int64_t V) {
  const bool ok = V % 4 == 0 && V <= 32768 && aligned16(logits) && (!g || aligned_to(g, 4 * sizeof(GT)));
  if (!ok) return false;
  if (V <= 4096) cross_entropy_regs<8, 128><<<unsigned(N), 128>>>(logits, tg, grad_scale, loss, g, V);
  else if (V <= 8192) cross_entropy_regs<8, 256><<<unsigned(N), 256>>>(logits, tg, grad_scale, loss, g, V);
  else if (V <= 16384) cross_entropy_regs<8, 512><<<unsigned(N), 512>>>(logits, tg, grad_scale, loss, g, V);
  else cross_entropy_regs<16, 512><<<unsigned(N), 512>>>(logits, tg, grad_scale, loss, g, V);
  return true;
}

// Largest dynamic shared memory one block may use (opt-in), once per process.
int max_dynamic_smem() {
  static int bytes = [] {
    int dev = 0, v = 0;
    check_cuda(cudaGetDevice(&dev), "cross_entropy", "cudaGetDevice");
    check_cuda(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cross_entropy",
               "shared memory limit");
    // room for the kernel's static shared memory (the reduction's 256 bytes) and some slack
    v -= 1024;
    if (v > 0) {
      check_cuda(cudaFuncSetAttribute(cross_entropy_rows<true, float>, cudaFuncAttributeMaxDynamicSharedMemorySize, v),
                 "cross_entropy", "cudaFuncSetAttribute");
      check_cuda(cudaFuncSetAttribute(cross_entropy_rows<true, __nv_bfloat16>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, v),
                 "cross_entropy", "cudaFuncSetAttribute");
    }
    return v;
  }();
  return bytes;
}

// The kernel for the row length and the gradient's storage (g null: the loss only).
template <class GT>
void launch_cross_entropy(const float* logits, const int32_t* tg, float grad_scale, float* loss, GT* g, int64_t N,
                          int64_t V) {
  const size_t cache_bytes = size_t(V + 3) * sizeof(float);
  if (launch_cross_entropy_regs(logits, tg, grad_scale, loss, g, N, V))
    ;  // rows up to 32K classes
  else if (g && cache_bytes <= size_t(std::max(0, max_dynamic_smem())))
    cross_entropy_rows<true><<<unsigned(N), kCeThreads, cache_bytes>>>(logits, tg, grad_scale, loss, g, V);
  else  // no gradient (one pass only) or a row too long to keep
    cross_entropy_rows<false><<<unsigned(N), kCeThreads>>>(logits, tg, grad_scale, loss, g, V);
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& targets, float grad_scale, Tensor& loss, Tensor* dlogits) {
  const char* op = "cross_entropy";
  const int64_t N = logits.dim(0), V = logits.dim(1);
  if (N == 0) return;
  MAMBALM_CHECK(N < INT_MAX && V < INT_MAX, "op cross_entropy (cuda)", "too many rows or classes");
  const int32_t* tg = targets.data<int32_t>();
  if (!cuda_capturing()) {
    int* flag = bad_target_flag();
    check_cuda(cudaMemsetAsync(flag, 0, sizeof(int), cudaStreamPerThread), op, "target check");
    find_bad_target<<<blocks_for(N), kThreads>>>(tg, N, int32_t(V), flag);
    check_launch(op);
    int bad = 0;
    check_cuda(cudaMemcpy(&bad, flag, sizeof(int), cudaMemcpyDeviceToHost), op, "target check");
    if (bad != 0) {
      const int64_t r = N - bad;
      int32_t value = 0;
      cudaMemcpy(&value, tg + r, sizeof(int32_t), cudaMemcpyDeviceToHost);
      fail("op cross_entropy",
           "target " + std::to_string(value) + " at row " + std::to_string(r) + " is out of range for " +
               std::to_string(V) + " classes",
           "targets must be token ids < vocab_size, or -1 to ignore the row");
    }
  }
  if (dlogits && dlogits->dtype() == DType::BF16)
    launch_cross_entropy(logits.f32(), tg, grad_scale, loss.f32(), dlogits->data<__nv_bfloat16>(), N, V);
  else
    launch_cross_entropy(logits.f32(), tg, grad_scale, loss.f32(), dlogits ? dlogits->f32() : nullptr, N, V);
  check_launch(op);
}

}  // namespace mambalm::ops::cuda
