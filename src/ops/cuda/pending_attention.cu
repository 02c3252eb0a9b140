// TEMPORARY: CUDA ops whose kernels are being written (the GPU-training issue). Each throws until
// its kernel replaces it; this file is deleted once they all exist.
#include "core/error.h"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* seq_idx,
                        float scale, const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) {
  fail("op attention_backward (cuda)", "not implemented on CUDA yet");
}

void rope_backward(Tensor& dx , int64_t pos0, int64_t rotary_dim, double theta) {
  fail("op rope_backward (cuda)", "not implemented on CUDA yet");
}

}  // namespace mambalm::ops::cuda
