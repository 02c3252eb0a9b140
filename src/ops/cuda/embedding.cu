// Token embedding on CUDA: the lookup (F32 or BF16 table) with its id check.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

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
__device__ __forceinline__ float as_float(T v);
template <>
__device__ __forceinline__ float as_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float as_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

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

}  // namespace

// Ids are validated on the device first; a bad one is reported (position and value) before
// anything is written, as on the CPU. That costs one small device-to-host read per call, which
// a captured step cannot do: there the check is skipped (a captured decode step feeds back ids
// its own argmax produced, which lie in the table by construction).
void embedding(const Tensor& ids, const Tensor& table, Tensor& y) {
  const int64_t n = ids.numel();
  const int64_t V = table.dim(0), D = table.dim(1);
  if (n == 0) return;
  MAMBALM_CHECK(n < INT_MAX && V <= INT_MAX, "op embedding (cuda)", "too many ids or rows");
  if (!cuda_capturing()) {
    int* flag = bad_id_flag();
    const int init = INT_MAX;
    check_cuda(cudaMemcpy(flag, &init, sizeof(int), cudaMemcpyHostToDevice), "embedding", "id check");
    find_bad_id<<<blocks_for(n), kThreads>>>(ids.data<int32_t>(), n, int32_t(V), flag);
    int first_bad = INT_MAX;
    check_cuda(cudaMemcpy(&first_bad, flag, sizeof(int), cudaMemcpyDeviceToHost), "embedding", "id check");
    if (first_bad != INT_MAX) {
      int32_t id = 0;
      cudaMemcpy(&id, ids.data<int32_t>() + first_bad, sizeof(int32_t), cudaMemcpyDeviceToHost);
      fail("op embedding", "token id " + std::to_string(id) + " at flat position " + std::to_string(first_bad) +
                               " is out of range for a table of " + std::to_string(V) + " rows",
           "the tokenizer and the model's vocab_size disagree");
    }
  }
  if (D == 0) return;
  if (table.dtype() == DType::BF16)
    gather_rows<<<unsigned(n), D >= 256 ? 256 : 64>>>(ids.data<int32_t>(), table.data<__nv_bfloat16>(), y.f32(), D);
  else
    gather_rows<<<unsigned(n), D >= 256 ? 256 : 64>>>(ids.data<int32_t>(), table.f32(), y.f32(), D);
  check_launch("embedding");
}

}  // namespace mambalm::ops::cuda
