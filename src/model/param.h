// Parameters as the model sees them: a tensor field of a layer, its name in the HF layout,
// its shape here and in the file, and how it is initialised and regularised.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mambalm {

// Each rule follows the study's code (Megatron-LM, commit df61e60; docs/study-fidelity.md has the
// table with the file each comes from). L is Megatron's num_layers (init.h: megatron_num_layers).
enum class Init {
  Normal,          // N(0, 0.02): embeddings, LM head, q/k/v, MLP up/gate (Megatron's init_method_std)
  NormalOutput,    // N(0, 0.02 / sqrt(2 L)): attention o_proj and MLP down_proj (scaled_init_method_normal)
  NormalMixerOutput,  // N(0, 0.02 / sqrt(L)): Mamba out_proj (mamba_block.py _init_weights, rescale_prenorm_residual)
  FanInUniform,    // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): Mamba in_proj, x_proj (kaiming_uniform, a = sqrt(5))
  Ones,            // RMSNorm gains, D
  Zeros,           // biases, LayerNorm1p's zero-centred gain
  ConvUniform,     // U(-1/sqrt(K), 1/sqrt(K)): PyTorch's default for a depthwise conv of width K
  Mamba2ALog,      // log(U[1, 16]) per head
  DtBias,          // inverse softplus of dt ~ exp(U[ln dt_min, ln dt_max]) floored at dt_init_floor
  Mamba1ALog,      // log(1..N) along the state dimension
  Mamba1DtWeight,  // U(-s, s), s = dt_rank^-0.5 * dt_scale
};

struct ParamRef {
  std::string name;  // full HF tensor name, e.g. "backbone.layers.3.mixer.in_proj.weight"
  Tensor* tensor;    // the layer's field: what the ops read
  Tensor* grad = nullptr;    // its gradient buffer (training only), same shape, F32
  Tensor* master = nullptr;  // mixed-precision training: the F32 master when *tensor is a BF16 copy
  Shape shape;       // shape used by the layer (F32)
  Shape file_shape;  // shape in the safetensors file (conv1d weights carry a middle 1)
  Init init;
  bool decay;        // AdamW weight decay applies: Megatron's rule, not to biases and 1-D tensors (norms,
                     // A_log, D, dt_bias); matrices, conv taps and the embedding are decayed. Mamba-1's
                     // 2-D A_log is not (mamba_ssm marks it _no_weight_decay).
};

using ParamList = std::vector<ParamRef>;

inline ParamRef param(std::string name, Tensor* t, Tensor* grad, Shape shape, Init init, bool decay) {
  return ParamRef{std::move(name), t, grad, nullptr, shape, shape, init, decay};
}

// A parameter and its gradient buffer, declared side by side in a layer.
struct Weight {
  Tensor value;   // what the ops read (F32; BF16 for matrices on CUDA)
  Tensor grad;    // F32, training only
  Tensor master;  // F32, mixed-precision training only: value is then its BF16 rounding
};

inline ParamRef param(std::string name, Weight& w, Shape shape, Init init, bool decay) {
  return ParamRef{std::move(name), &w.value, &w.grad, &w.master, shape, shape, init, decay};
}

// Parameters consumed by a matrix product or the embedding lookup (the large ones): these may be
// stored in BF16. Norm gains, biases, conv taps, A_log, D and dt_bias stay F32.
inline bool is_matrix(const ParamRef& p) {
  return p.shape.size() == 2 && (p.init == Init::Normal || p.init == Init::NormalOutput || p.init == Init::NormalMixerOutput ||
                                 p.init == Init::FanInUniform || p.init == Init::Mamba1DtWeight);
}

// The parameter's true value (the F32 master in mixed-precision training, else the tensor).
inline const Tensor& exact_value(const ParamRef& p) { return p.master && p.master->defined() ? *p.master : *p.tensor; }

}  // namespace mambalm
