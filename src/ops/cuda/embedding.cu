// Token embedding on CUDA: the lookup (F32 or BF16 table) with its id check, and the backward.
// The backward, dtable[ids[i]] += dy[i], is a deterministic scatter-add:
//  1. a stable radix sort (CUB) of (id, position) pairs over the id bits puts every id's tokens in
//     one run, in token order;
//  2. the sorted list is cut into chunks of kRunChunk entries, one block each: a run that lies
//     inside one chunk is summed there (in token order) and added to its table row; the pieces of
//     a run that crosses chunks go to per-chunk partial rows (head: the piece that continues a
//     run from the previous chunk; tail: a run that starts here and continues);
//  3. one block per chunk where a crossing run starts adds that run's tail and the following
//     chunks' heads, in order, to the table row.
// Every table row is written by exactly one block and every sum has a fixed order (the partition
// depends only on the ids), so results are bit-identical run to run; long runs (frequent tokens)
// are spread over many blocks instead of serialising one.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <string>

#include "core/device.h"
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

namespace {

__global__ void find_bad_id(const int32_t* __restrict__ ids, int64_t n, int32_t V, int* first_bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    if (ids[i] < 0 || ids[i] >= V) atomicMin(first_bad, static_cast<int>(i));
}

template <class T>
__global__ void gather_rows(const int32_t* __restrict__ ids, const T* __restrict__ table, float* __restrict__ y,
                            int64_t D) {
  const int64_t row = blockIdx.x;
  const T* src = table + int64_t(ids[row]) * D;
  float* dst = y + row * D;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) dst[i] = as_float(src[i]);
}

int* bad_id_flag() {  // one device int for the process: the id check allocates nothing per call
  static int* flag = [] {
    int* p = nullptr;
    check_cuda(cudaMalloc(&p, sizeof(int)), "embedding", "cudaMalloc");
    return p;
  }();
  return flag;
}

// Ids are validated on the device first; a bad one is reported (position and value) before
// anything is written, as on the CPU. That costs one small device-to-host read per call, which
// a captured step cannot do: there the check is skipped (a captured decode step feeds back ids
// its own argmax produced, which lie in the table by construction).
void check_ids(const char* op, const Tensor& ids, int64_t V) {
  const int64_t n = ids.numel();
  if (cuda_capturing()) return;
  int* flag = bad_id_flag();
  const int init = INT_MAX;
  check_cuda(cudaMemcpy(flag, &init, sizeof(int), cudaMemcpyHostToDevice), op, "id check");
  find_bad_id<<<blocks_for(n), kThreads>>>(ids.data<int32_t>(), n, int32_t(V), flag);
  int first_bad = INT_MAX;
  check_cuda(cudaMemcpy(&first_bad, flag, sizeof(int), cudaMemcpyDeviceToHost), op, "id check");
  if (first_bad != INT_MAX) {
    int32_t id = 0;
    cudaMemcpy(&id, ids.data<int32_t>() + first_bad, sizeof(int32_t), cudaMemcpyDeviceToHost);
    fail(std::string("op ") + op, "token id " + std::to_string(id) + " at flat position " + std::to_string(first_bad) +
                                      " is out of range for a table of " + std::to_string(V) + " rows",
         "the tokenizer and the model's vocab_size disagree");
  }
}

}  // namespace

void embedding(const Tensor& ids, const Tensor& table, Tensor& y) {
  const int64_t n = ids.numel();
  const int64_t V = table.dim(0), D = table.dim(1);
  if (n == 0) return;
  MAMBALM_CHECK(n < INT_MAX && V <= INT_MAX, "op embedding (cuda)", "too many ids or rows");
  check_ids("embedding", ids, V);
  if (D == 0) return;
  if (table.dtype() == DType::BF16)
    gather_rows<<<unsigned(n), D >= 256 ? 256 : 64>>>(ids.data<int32_t>(), table.data<__nv_bfloat16>(), y.f32(), D);
  else
    gather_rows<<<unsigned(n), D >= 256 ? 256 : 64>>>(ids.data<int32_t>(), table.f32(), y.f32(), D);
  check_launch("embedding");
}

// ---- backward --------------------------------------------------------------------------------

namespace {

constexpr int kRunChunk = 8;           // sorted entries per block of the scatter
constexpr uint32_t kNoKey = 0xffffffffu;  // "no neighbour" (keys are <= V <= INT_MAX)

// Sort keys: the id, or V for an id outside the table (possible only when the check was skipped
// inside a capture: such tokens sort last and are dropped); values: the flat token position.
__global__ void make_sort_pairs(const int32_t* __restrict__ ids, int64_t n, int32_t V, uint32_t* __restrict__ keys,
                                int32_t* __restrict__ pos) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t id = ids[i];
    keys[i] = id >= 0 && id < V ? uint32_t(id) : uint32_t(V);
    pos[i] = int32_t(i);
  }
}

template <int VEC>
__device__ __forceinline__ void load_vec(const float* p, float* v) {
  if constexpr (VEC == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    v[0] = *p;
  }
}
template <int VEC>
__device__ __forceinline__ void store_vec(float* p, const float* v) {
  if constexpr (VEC == 4) *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  else *p = v[0];
}

// Step 2: block c owns sorted entries [c L, min(n, c L + L)), L = kRunChunk. Threads own VEC
// adjacent columns (looping over D); each loads its columns of the chunk's L dy rows at once (L
// loads in flight), then walks the entries in order, closing a run's sum where the key changes.
// Run pieces: closed in this chunk -> added to dtable; continuing a run from the previous chunk
// -> head[c]; starting here and continuing into the next -> tail[c].
template <int VEC>
__global__ void __launch_bounds__(256)
scatter_chunks(const uint32_t* __restrict__ keys, const int32_t* __restrict__ pos, int64_t n, uint32_t V,
               const float* __restrict__ dy, int64_t D, float* __restrict__ dtable, float* __restrict__ head,
               float* __restrict__ tail) {
  __shared__ uint32_t key[kRunChunk];
  __shared__ int32_t row[kRunChunk];
  __shared__ uint32_t prev_key, next_key;
  const int64_t c = blockIdx.x;
  const int64_t start = c * kRunChunk, end = min(n, start + kRunChunk);
  const int cnt = int(end - start);
  if (threadIdx.x < cnt) {
    key[threadIdx.x] = keys[start + threadIdx.x];
    row[threadIdx.x] = pos[start + threadIdx.x];
  }
  if (threadIdx.x == 0) {
    prev_key = start > 0 ? keys[start - 1] : kNoKey;
    next_key = end < n ? keys[end] : kNoKey;
  }
  __syncthreads();
  for (int64_t col = int64_t(threadIdx.x) * VEC; col < D; col += int64_t(blockDim.x) * VEC) {
    float v[kRunChunk][VEC];
#pragma unroll
    for (int j = 0; j < kRunChunk; ++j)
      if (j < cnt) load_vec<VEC>(dy + int64_t(row[j]) * D + col, v[j]);
    float acc[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) acc[k] = 0.0f;
    int piece_start = 0;
#pragma unroll
    for (int j = 0; j < kRunChunk; ++j) {
      if (j < cnt) {
#pragma unroll
        for (int k = 0; k < VEC; ++k) acc[k] += v[j][k];
        const uint32_t id = key[j];
        const bool last_entry = j + 1 == cnt;
        if (last_entry || key[j + 1 < kRunChunk ? j + 1 : j] != id) {  // the piece ends at j
          const bool open_before = piece_start == 0 && prev_key == id;
          const bool open_after = last_entry && next_key == id;
          if (id < V) {
            if (!open_before && !open_after) {
              float* t = dtable + int64_t(id) * D + col;
              float cur[VEC];
              load_vec<VEC>(t, cur);
#pragma unroll
              for (int k = 0; k < VEC; ++k) cur[k] += acc[k];
              store_vec<VEC>(t, cur);
            } else {
              store_vec<VEC>((open_before ? head : tail) + c * D + col, acc);
            }
          }
#pragma unroll
          for (int k = 0; k < VEC; ++k) acc[k] = 0.0f;
          piece_start = j + 1;
        }
      }
    }
  }
}

// Step 3: block c finishes the crossing run that starts in chunk c (if any): its tail[c] piece,
// then head[c + 1], head[c + 2], ... while the run continues, added in that order to the row.
template <int VEC>
__global__ void __launch_bounds__(256)
finish_crossing_runs(const uint32_t* __restrict__ keys, int64_t n, uint32_t V, int64_t D,
                     const float* __restrict__ head, const float* __restrict__ tail, float* __restrict__ dtable) {
  const int64_t c = blockIdx.x;
  const int64_t start = c * kRunChunk, end = min(n, start + kRunChunk);
  const uint32_t id = keys[end - 1];
  const bool open_after = end < n && keys[end] == id;
  const bool continues_from_before = start > 0 && keys[start - 1] == id && keys[start] == id;
  if (!open_after || continues_from_before || id >= V) return;  // block-uniform
  int64_t last = c + 1;  // the run's last chunk
  while ((last + 1) * kRunChunk < n && keys[(last + 1) * kRunChunk] == id) ++last;
  for (int64_t col = int64_t(threadIdx.x) * VEC; col < D; col += int64_t(blockDim.x) * VEC) {
    float acc[VEC];
    load_vec<VEC>(tail + c * D + col, acc);
#pragma unroll 4
    for (int64_t k = c + 1; k <= last; ++k) {
      float p[VEC];
      load_vec<VEC>(head + k * D + col, p);
#pragma unroll
      for (int q = 0; q < VEC; ++q) acc[q] += p[q];
    }
    float* t = dtable + int64_t(id) * D + col;
    float cur[VEC];
    load_vec<VEC>(t, cur);
#pragma unroll
    for (int q = 0; q < VEC; ++q) cur[q] += acc[q];
    store_vec<VEC>(t, cur);
  }
}

int id_bits(int64_t V) {  // bits that hold every key 0 .. V
  int b = 1;
  while (b < 32 && (int64_t(1) << b) <= V) ++b;
  return b;
}

}  // namespace

void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dtable) {
  const char* op = "embedding_backward";
  const int64_t n = ids.numel(), V = dtable.dim(0), D = dtable.dim(1);
  if (n == 0) return;
  MAMBALM_CHECK(n < INT_MAX && V < INT_MAX, "op embedding_backward (cuda)", "too many ids or rows");
  check_ids(op, ids, V);
  if (D == 0) return;

  static GrowOnlyBuffer keys_buf, pos_buf, sort_buf, head_buf, tail_buf;
  auto* keys = keys_buf.get<uint32_t>(size_t(2 * n), op);  // unsorted | sorted
  auto* pos = pos_buf.get<int32_t>(size_t(2 * n), op);
  make_sort_pairs<<<blocks_for(n), kThreads>>>(ids.data<int32_t>(), n, int32_t(V), keys, pos);
  check_launch(op);
  const int bits = id_bits(V);
  size_t sort_bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys, keys + n, pos, pos + n, int(n), 0, bits,
                                             cudaStreamPerThread),
             op, "radix sort (size)");
  void* sort_tmp = sort_buf.get(std::max<size_t>(sort_bytes, 1), op);
  check_cuda(cub::DeviceRadixSort::SortPairs(sort_tmp, sort_bytes, keys, keys + n, pos, pos + n, int(n), 0, bits,
                                             cudaStreamPerThread),
             op, "radix sort");
  check_launch(op);

  const int64_t chunks = (n + kRunChunk - 1) / kRunChunk;
  float* head = head_buf.get<float>(size_t(chunks * D), op);
  float* tail = tail_buf.get<float>(size_t(chunks * D), op);
  const uint32_t* sk = keys + n;
  const int32_t* sp = pos + n;
  const bool vec = D % 4 == 0 && aligned16(dy.f32()) && aligned16(dtable.f32());
  const int64_t lanes = vec ? D / 4 : D;  // threads' column slots
  const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (lanes + 31) / 32 * 32)));
  if (vec) {
    scatter_chunks<4><<<unsigned(chunks), threads>>>(sk, sp, n, uint32_t(V), dy.f32(), D, dtable.f32(), head, tail);
    check_launch(op);
    finish_crossing_runs<4><<<unsigned(chunks), threads>>>(sk, n, uint32_t(V), D, head, tail, dtable.f32());
  } else {
    scatter_chunks<1><<<unsigned(chunks), threads>>>(sk, sp, n, uint32_t(V), dy.f32(), D, dtable.f32(), head, tail);
    check_launch(op);
    finish_crossing_runs<1><<<unsigned(chunks), threads>>>(sk, n, uint32_t(V), D, head, tail, dtable.f32());
  }
  check_launch(op);
}

}  // namespace mambalm::ops::cuda
