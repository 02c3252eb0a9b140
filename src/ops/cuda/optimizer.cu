// The optimizer's ops on CUDA (ops/forward_ops.inc): the AdamW update and the two reductions the
// trainer runs over every gradient (the squared norm for clipping, the finiteness check).
//
// adamw_update: one fused pass, float4 loads and stores of master, grad, m and v (16 bytes a
// stream) and, for a BF16 copy, four bf16 values (8 bytes) rounded to nearest even from the new
// master; 28 bytes an element (30 with the copy), memory-bound. The arithmetic is the CPU's,
// element by element. Unaligned tensors take the same kernel with scalar accesses. One tensor
// runs as a list of one (adamw_update_each), so a list gives the same bits as tensor by tensor.
//
// The _each ops take a list of tensors, up to kEachMax per launch, their pointers and sizes in the
// kernel's parameters: block b finds its tensor in a table of first blocks and works on its
// chunk of it. A step over ~150 parameters was ~450 launches of a few microseconds each.
// squared_norm_each runs each tensor's blocks exactly as squared_norm's grid would (the same
// partition, the same in-block tree), then one block per tensor adds its partials as
// squared_norm's last block does: the same bits, tensor by tensor.
//
// squared_norm, nonfinite_flag: a fixed grid (the block count depends on the element count only)
// of grid-stride partials, then the last block to finish (a device counter) combines the
// partials in block order and writes the result: one launch per tensor, and the same value every
// run. squared_norm accumulates x * x in double (each product exact), so it differs from the
// CPU's double sum only by the order of the additions (relative ~1e-16 log n).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

// ---- AdamW ----------------------------------------------------------------------------------

enum class CopyKind { kNone, kF32, kBF16 };

struct AdamWArgs {
  float* w;
  const float* g;
  float* m;
  float* v;
  void* copy;
  float b1, b2, gs, step, ibc2, eps, shrink;
};

__device__ __forceinline__ float adamw_one(const AdamWArgs& a, float w, float g, float& m, float& v) {
  const float gj = g * a.gs;
  m = a.b1 * m + (1.0f - a.b1) * gj;
  v = a.b2 * v + (1.0f - a.b2) * gj * gj;
  return w * a.shrink - a.step * m / (sqrtf(v) * a.ibc2 + a.eps);
}

// Elements [begin, end) (begin a multiple of 4), this thread's share: index tid, tid + stride,
// ... of the range's quads when vec (every stream 16-byte aligned, a bf16 copy 8-byte aligned),
// then of the scalar rest.
template <CopyKind kCopy>
__device__ __forceinline__ void adamw_range(const AdamWArgs& a, int64_t begin, int64_t end, bool vec, int64_t tid,
                                            int64_t stride) {
  const int64_t q_end = vec ? end / 4 : begin / 4;
  for (int64_t i = begin / 4 + tid; i < q_end; i += stride) {
    float4 w = reinterpret_cast<const float4*>(a.w)[i];
    const float4 g = reinterpret_cast<const float4*>(a.g)[i];
    float4 m = reinterpret_cast<const float4*>(a.m)[i];
    float4 v = reinterpret_cast<const float4*>(a.v)[i];
    w.x = adamw_one(a, w.x, g.x, m.x, v.x);
    w.y = adamw_one(a, w.y, g.y, m.y, v.y);
    w.z = adamw_one(a, w.z, g.z, m.z, v.z);
    w.w = adamw_one(a, w.w, g.w, m.w, v.w);
    reinterpret_cast<float4*>(a.w)[i] = w;
    reinterpret_cast<float4*>(a.m)[i] = m;
    reinterpret_cast<float4*>(a.v)[i] = v;
    if constexpr (kCopy == CopyKind::kF32) reinterpret_cast<float4*>(a.copy)[i] = w;
    if constexpr (kCopy == CopyKind::kBF16) {
      __nv_bfloat162 lo = __floats2bfloat162_rn(w.x, w.y), hi = __floats2bfloat162_rn(w.z, w.w);
      uint2 packed;
      packed.x = *reinterpret_cast<const uint32_t*>(&lo);
      packed.y = *reinterpret_cast<const uint32_t*>(&hi);
      reinterpret_cast<uint2*>(a.copy)[i] = packed;
    }
  }
  for (int64_t i = q_end * 4 + tid; i < end; i += stride) {
    float m = a.m[i], v = a.v[i];
    const float w = adamw_one(a, a.w[i], a.g[i], m, v);
    a.w[i] = w;
    a.m[i] = m;
    a.v[i] = v;
    if constexpr (kCopy == CopyKind::kF32) static_cast<float*>(a.copy)[i] = w;
    if constexpr (kCopy == CopyKind::kBF16) static_cast<__nv_bfloat16*>(a.copy)[i] = __float2bfloat16_rn(w);
  }
}

// ---- reductions -----------------------------------------------------------------------------

constexpr int kRedThreads = 256;
constexpr int kRedMaxBlocks = 1024;

// Blocks for n elements: one per 16K elements (each thread then handles 16 quads), at most
// kRedMaxBlocks; a function of n alone, so the partition and the sums are the same every run.
unsigned reduction_blocks(int64_t n) {
  const int64_t b = (n + 16383) / 16384;
  return unsigned(std::clamp<int64_t>(b, 1, kRedMaxBlocks));
}

// Scratch of one reduction kind: the block partials and the arrival counter (zero between
// calls: the last block resets it). Allocated once at a fixed size.
template <class T>
struct ReductionScratch {
  T* partial;
  unsigned* counter;
};

template <class T>
ReductionScratch<T> reduction_scratch(const char* op) {
  static GrowOnlyBuffer buf;  // zero-filled when allocated: the counter starts at 0
  char* p = static_cast<char*>(buf.get(kRedMaxBlocks * sizeof(T) + 256, op));
  return {reinterpret_cast<T*>(p + 256), reinterpret_cast<unsigned*>(p)};
}

// True in every thread of the block that arrives last (after its partial is visible).
__device__ __forceinline__ bool last_block_arrives(unsigned* counter) {
  __shared__ bool last;
  __syncthreads();  // this block's partial has been written (by thread 0)
  if (threadIdx.x == 0) {
    __threadfence();
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  return last;
}

// Block `block` of a squared_norm grid of `blocks` blocks over x: its partial sum (every thread).
__device__ __forceinline__ double squared_norm_partial(const float* __restrict__ x, int64_t n, bool vec, unsigned block,
                                                       unsigned blocks, double* scratch) {
  const int64_t stride = int64_t(blocks) * blockDim.x;
  const int64_t tid = block * int64_t(blockDim.x) + threadIdx.x;
  const int64_t n4 = vec ? n / 4 : 0;
  double s = 0.0;
  for (int64_t i = tid; i < n4; i += stride) {
    const float4 q = reinterpret_cast<const float4*>(x)[i];
    s += double(q.x) * q.x;
    s += double(q.y) * q.y;
    s += double(q.z) * q.z;
    s += double(q.w) * q.w;
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) s += double(x[i]) * x[i];
  return block_sum(s, scratch);
}

// The blocks' partials added in block order (every thread).
__device__ __forceinline__ double squared_norm_total(const double* partial, unsigned blocks, double* scratch) {
  double t = 0.0;
  for (unsigned b = threadIdx.x; b < blocks; b += blockDim.x) t += static_cast<const volatile double*>(partial)[b];
  return block_sum(t, scratch);
}

__global__ void __launch_bounds__(kRedThreads)
squared_norm_kernel(const float* __restrict__ x, int64_t n, bool vec, double* partial, unsigned* counter,
                    double* __restrict__ out) {
  __shared__ double scratch[32];
  const double s = squared_norm_partial(x, n, vec, blockIdx.x, gridDim.x, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
  if (!last_block_arrives(counter)) return;
  __threadfence();
  const double t = squared_norm_total(partial, gridDim.x, scratch);
  if (threadIdx.x == 0) {
    *out = t;
    *counter = 0;
  }
}

// ---- lists of tensors -----------------------------------------------------------------------

constexpr int kEachMax = 32;                   // tensors per launch: the parameters stay under 4 KB
constexpr int64_t kEachChunk = kThreads * 16;  // elements per block of fill_each / adamw_update_each

// Where each tensor's blocks start in the launch's grid (first[count] = the grid).
struct EachBlocks {
  int count;
  unsigned first[kEachMax + 1];
};

// The tensor block blockIdx.x works on (a short walk: at most kEachMax entries).
__device__ __forceinline__ int each_entry(const EachBlocks& e) {
  int i = 0;
  while (blockIdx.x >= e.first[i + 1]) ++i;
  return i;
}

struct FillEachArgs {
  EachBlocks blocks;
  float* p[kEachMax];
  int64_t n[kEachMax];
};

__global__ void fill_each_kernel(const __grid_constant__ FillEachArgs a, float value) {
  const int e = each_entry(a.blocks);
  const int64_t begin = int64_t(blockIdx.x - a.blocks.first[e]) * kEachChunk, end = min(a.n[e], begin + kEachChunk);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) a.p[e][i] = value;
}

struct AdamWEachArgs {
  EachBlocks blocks;
  AdamWArgs t[kEachMax];
  int64_t n[kEachMax];
  unsigned char copy[kEachMax];  // CopyKind
  bool vec[kEachMax];
};

__global__ void adamw_each_kernel(const __grid_constant__ AdamWEachArgs a) {
  const int e = each_entry(a.blocks);
  const int64_t begin = int64_t(blockIdx.x - a.blocks.first[e]) * kEachChunk, end = min(a.n[e], begin + kEachChunk);
  switch (CopyKind(a.copy[e])) {
    case CopyKind::kNone: adamw_range<CopyKind::kNone>(a.t[e], begin, end, a.vec[e], threadIdx.x, blockDim.x); break;
    case CopyKind::kF32: adamw_range<CopyKind::kF32>(a.t[e], begin, end, a.vec[e], threadIdx.x, blockDim.x); break;
    case CopyKind::kBF16: adamw_range<CopyKind::kBF16>(a.t[e], begin, end, a.vec[e], threadIdx.x, blockDim.x); break;
  }
}

struct NormEachArgs {
  EachBlocks blocks;  // each tensor's reduction_blocks(n), as squared_norm's grid
  const float* x[kEachMax];
  int64_t n[kEachMax];
  bool vec[kEachMax];
};

__global__ void __launch_bounds__(kRedThreads) squared_norm_each_partials(const __grid_constant__ NormEachArgs a, double* partial) {
  __shared__ double scratch[32];
  const int e = each_entry(a.blocks);
  const unsigned first = a.blocks.first[e];
  const double s = squared_norm_partial(a.x[e], a.n[e], a.vec[e], blockIdx.x - first, a.blocks.first[e + 1] - first, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block per tensor of the launch.
__global__ void __launch_bounds__(kRedThreads) squared_norm_each_totals(const __grid_constant__ NormEachArgs a,
                                                                      const double* partial, double* out) {
  __shared__ double scratch[32];
  const unsigned first = a.blocks.first[blockIdx.x];
  const double t = squared_norm_total(partial + first, a.blocks.first[blockIdx.x + 1] - first, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = t;
}

__device__ __forceinline__ bool nonfinite(float v) { return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u; }

__global__ void __launch_bounds__(kRedThreads)
nonfinite_kernel(const float* __restrict__ x, int64_t n, bool vec, int* partial, unsigned* counter,
                 int32_t* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t n4 = vec ? n / 4 : 0;
  bool bad = false;
  for (int64_t i = tid; i < n4; i += stride) {
    const float4 q = reinterpret_cast<const float4*>(x)[i];
    bad |= nonfinite(q.x) | nonfinite(q.y) | nonfinite(q.z) | nonfinite(q.w);
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride) bad |= nonfinite(x[i]);
  bad = __syncthreads_or(bad);
  if (threadIdx.x == 0) partial[blockIdx.x] = bad;
  if (!last_block_arrives(counter)) return;
  __threadfence();
  int any = 0;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) any |= static_cast<volatile int*>(partial)[b];
  any = __syncthreads_or(any);
  if (threadIdx.x == 0) {
    *out = any ? 1 : 0;
    *counter = 0;
  }
}

}  // namespace

// One parameter: the list kernel with one entry (the same code, so the same bits as in a list).
void adamw_update(Tensor& master, Tensor* copy, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  cuda::adamw_update_each({AdamWSlot{&master, copy, &grad, &m, &v, s.shrink}}, s);
}

void squared_norm(const Tensor& x, Tensor& out) {
  const int64_t n = x.numel();
  const auto sc = reduction_scratch<double>("squared_norm");
  squared_norm_kernel<<<reduction_blocks(n), kRedThreads>>>(x.f32(), n, aligned16(x.f32()), sc.partial, sc.counter,
                                                            out.data<double>());
  check_launch("squared_norm");
}

void nonfinite_flag(const Tensor& x, Tensor& out) {
  const int64_t n = x.numel();
  const auto sc = reduction_scratch<int>("nonfinite_flag");
  nonfinite_kernel<<<reduction_blocks(n), kRedThreads>>>(x.f32(), n, aligned16(x.f32()), sc.partial, sc.counter,
                                                         out.data<int32_t>());
  check_launch("nonfinite_flag");
}

namespace {

// Runs `launch(args, g0)` for the list in groups of up to kEachMax tensors (g0: the group's first
// list index), each group's args.blocks filled from blocks_of(i) (the blocks tensor i needs; 0
// leaves it out) and its entries by set(args, entry, i).
template <class Args, class BlocksOf, class Set, class Launch>
void for_each_group(size_t n, BlocksOf blocks_of, Set set, Launch launch) {
  for (size_t g = 0; g < n;) {
    Args a{};
    a.blocks.count = 0;
    a.blocks.first[0] = 0;
    const size_t g0 = g;
    for (; g < n && a.blocks.count < kEachMax; ++g) {
      const unsigned nb = blocks_of(g);
      if (nb == 0) continue;
      set(a, a.blocks.count, g);
      a.blocks.first[a.blocks.count + 1] = a.blocks.first[a.blocks.count] + nb;
      ++a.blocks.count;
    }
    if (a.blocks.count > 0) launch(a, g0);
  }
}

unsigned chunks_of(int64_t n) { return unsigned((n + kEachChunk - 1) / kEachChunk); }

}  // namespace

void fill_each(const std::vector<Tensor*>& ts, float value) {
  for_each_group<FillEachArgs>(
      ts.size(), [&](size_t i) { return chunks_of(ts[i]->numel()); },
      [&](FillEachArgs& a, int k, size_t i) {
        a.p[k] = ts[i]->f32();
        a.n[k] = ts[i]->numel();
      },
      [&](const FillEachArgs& a, size_t) {
        fill_each_kernel<<<a.blocks.first[a.blocks.count], kThreads>>>(a, value);
        check_launch("fill_each");
      });
}

void adamw_update_each(const std::vector<AdamWSlot>& slots, const AdamWStep& s) {
  for_each_group<AdamWEachArgs>(
      slots.size(), [&](size_t i) { return chunks_of(slots[i].master->numel()); },
      [&](AdamWEachArgs& a, int k, size_t i) {
        const AdamWSlot& slot = slots[i];
        AdamWArgs& t = a.t[k];
        t = AdamWArgs{slot.master->f32(), slot.grad->f32(), slot.m->f32(), slot.v->f32(), nullptr,
                      s.beta1, s.beta2, s.grad_scale, s.step_size, s.inv_sqrt_bias2, s.eps, slot.shrink};
        a.n[k] = slot.master->numel();
        bool vec = aligned16(t.w) && aligned16(t.g) && aligned16(t.m) && aligned16(t.v);
        a.copy[k] = static_cast<unsigned char>(CopyKind::kNone);
        if (slot.copy && slot.copy->raw() != slot.master->raw()) {
          t.copy = slot.copy->raw();
          const bool bf16 = slot.copy->dtype() == DType::BF16;
          a.copy[k] = static_cast<unsigned char>(bf16 ? CopyKind::kBF16 : CopyKind::kF32);
          vec = vec && (bf16 ? reinterpret_cast<uintptr_t>(t.copy) % 8 == 0 : aligned16(t.copy));
        }
        a.vec[k] = vec;
      },
      [&](const AdamWEachArgs& a, size_t) {
        adamw_each_kernel<<<a.blocks.first[a.blocks.count], kThreads>>>(a);
        check_launch("adamw_update_each");
      });
}

void squared_norm_each(const std::vector<const Tensor*>& xs, Tensor& out) {
  static GrowOnlyBuffer partial_buf;
  double* partial = partial_buf.get<double>(size_t(kEachMax) * kRedMaxBlocks, "squared_norm_each");
  double* out_p = out.data<double>();
  for_each_group<NormEachArgs>(
      // squared_norm's grid, at least one block: every tensor keeps its entry (an empty one's
      // out[i] is assigned 0), so a group's entries are list indices g0, g0 + 1, ...
      xs.size(), [&](size_t i) { return reduction_blocks(xs[i]->numel()); },
      [&](NormEachArgs& a, int k, size_t i) {
        a.x[k] = xs[i]->f32();
        a.n[k] = xs[i]->numel();
        a.vec[k] = aligned16(a.x[k]);
      },
      [&](const NormEachArgs& a, size_t g0) {
        squared_norm_each_partials<<<a.blocks.first[a.blocks.count], kRedThreads>>>(a, partial);
        check_launch("squared_norm_each");
        squared_norm_each_totals<<<a.blocks.count, kRedThreads>>>(a, partial, out_p + g0);
        check_launch("squared_norm_each");
      });
}

}  // namespace mambalm::ops::cuda
