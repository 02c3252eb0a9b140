// TEMPORARY: CUDA ops whose kernels are being written (the GPU-training issue). Each throws until
// its kernel replaces it; this file is deleted once they all exist.
#include "core/error.h"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

void ssd_chunked_backward(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& Bm,
                          const Tensor& Cm, const Tensor* D, const Tensor* seq_idx,
                          int64_t chunk_size, const Tensor* initial_state,
                          const Tensor* dfinal_state, const Tensor& dy, Tensor& dx, Tensor& ddt,
                          Tensor* dA, Tensor& dBm, Tensor& dCm, Tensor* dD,
                          Tensor* dinitial_state) {
  fail("op ssd_chunked_backward (cuda)", "not implemented on CUDA yet");
}

}  // namespace mambalm::ops::cuda
