// TEMPORARY: CUDA ops whose kernels are being written (the GPU-training issue). Each throws until
// its kernel replaces it; this file is deleted once they all exist.
#include "core/error.h"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {


void linear_backward(const Tensor& dy , const Tensor& x ,
                     const Tensor& w , Tensor* dx , Tensor* dw ,
                     Tensor* db ) {
  fail("op linear_backward (cuda)", "not implemented on CUDA yet");
}

void embedding_backward(const Tensor& ids , const Tensor& dy ,
                        Tensor& dtable ) {
  fail("op embedding_backward (cuda)", "not implemented on CUDA yet");
}

void silu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  fail("op silu_backward (cuda)", "not implemented on CUDA yet");
}

void relu_squared_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  fail("op relu_squared_backward (cuda)", "not implemented on CUDA yet");
}

void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  fail("op gelu_backward (cuda)", "not implemented on CUDA yet");
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dy, Tensor& dgate,
                     Tensor& dup) {
  fail("op swiglu_backward (cuda)", "not implemented on CUDA yet");
}

void neg_exp_backward(const Tensor& y, const Tensor& dy, Tensor& dx ) {
  fail("op neg_exp_backward (cuda)", "not implemented on CUDA yet");
}

void softplus_dt_backward(const Tensor& dt , const Tensor& dt_bias ,
                          float dt_min, float dt_max, const Tensor& dy, Tensor& ddt,
                          Tensor* ddt_bias ) {
  fail("op softplus_dt_backward (cuda)", "not implemented on CUDA yet");
}

void cross_entropy(const Tensor& logits, const Tensor& targets, float grad_scale, Tensor& loss, Tensor* dlogits) {
  fail("op cross_entropy (cuda)", "not implemented on CUDA yet");
}

void adamw_update(Tensor& master, Tensor* copy, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  fail("op adamw_update (cuda)", "not implemented on CUDA yet");
}

void squared_norm(const Tensor& x, Tensor& out) {
  fail("op squared_norm (cuda)", "not implemented on CUDA yet");
}

void nonfinite_flag(const Tensor& x, Tensor& out) {
  fail("op nonfinite_flag (cuda)", "not implemented on CUDA yet");
}

}  // namespace mambalm::ops::cuda
