// TEMPORARY: CUDA ops whose kernels are being written (the GPU-training issue). Each throws until
// its kernel replaces it; this file is deleted once they all exist.
#include "core/error.h"
#include "ops/cuda/cuda_ops.h"

namespace mambalm::ops::cuda {


void rms_norm_backward(const Tensor& x , const Tensor& w , float eps,
                       const Tensor& dy, Tensor& dx, Tensor* dw ) {
  fail("op rms_norm_backward (cuda)", "not implemented on CUDA yet");
}

void layer_norm_backward(const Tensor& x, const Tensor& w, float eps, bool zero_centered,
                         const Tensor& dy, Tensor& dx, Tensor* dw , Tensor* db ) {
  fail("op layer_norm_backward (cuda)", "not implemented on CUDA yet");
}

void gated_rms_norm_backward(const Tensor& x, const Tensor& z, const Tensor& w,
                             int64_t group_size, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dz, Tensor* dw ) {
  fail("op gated_rms_norm_backward (cuda)", "not implemented on CUDA yet");
}

void causal_conv1d_backward(const Tensor& x, const Tensor& w, const Tensor* bias,
                            const Tensor* seq_idx, const Tensor* initial_state, bool apply_silu,
                            const Tensor& dy, Tensor& dx, Tensor* dw ,
                            Tensor* dbias , Tensor* dinitial_state ) {
  fail("op causal_conv1d_backward (cuda)", "not implemented on CUDA yet");
}

void selective_scan_backward(const Tensor& u, const Tensor& delta, const Tensor& A,
                             const Tensor& Bm, const Tensor& Cm, const Tensor* D, const Tensor* z,
                             const Tensor* seq_idx, const Tensor* initial_state,
                             const Tensor* dfinal_state, int64_t chunk_size, const Tensor& dy,
                             Tensor& du, Tensor& ddelta, Tensor* dA, Tensor& dBm, Tensor& dCm,
                             Tensor* dD, Tensor* dz, Tensor* dinitial_state) {
  fail("op selective_scan_backward (cuda)", "not implemented on CUDA yet");
}

}  // namespace mambalm::ops::cuda
