#include "model/mlp.h"

#include "ops/ops.h"

namespace mambalm {

void Mlp::forward(const Tensor& x, LayerState*, int64_t, Tensor& y) {
  int64_t B = x.dim(0), T = x.dim(1), F = cfg_.d_ff;
  const Tensor* bias_up = cfg_.bias ? &up_b_ : nullptr;
  Tensor h = Tensor::empty({B, T, F});  // activations in the MLP's width
  ops::linear(x, up_w_, bias_up, h);
  switch (cfg_.activation) {
    case MlpActivation::ReluSquared: ops::relu_squared(h, h); break;
    case MlpActivation::Gelu: ops::gelu(h, h); break;
    case MlpActivation::SwiGLU: {
      Tensor g = Tensor::empty({B, T, F});  // gate pre-activation
      ops::linear(x, gate_w_, cfg_.bias ? &gate_b_ : nullptr, g);
      ops::swiglu(g, h, h);
      break;
    }
  }
  ops::linear(h, down_w_, cfg_.bias ? &down_b_ : nullptr, y);
}

ParamList Mlp::params(const std::string& prefix) {
  int64_t F = cfg_.d_ff;
  ParamList p;
  if (cfg_.activation == MlpActivation::SwiGLU) {
    p.push_back(param(prefix + "gate_proj.weight", &gate_w_, {F, d_}, Init::Normal, true));
    if (cfg_.bias) p.push_back(param(prefix + "gate_proj.bias", &gate_b_, {F}, Init::Zeros, false));
  }
  p.push_back(param(prefix + "up_proj.weight", &up_w_, {F, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "up_proj.bias", &up_b_, {F}, Init::Zeros, false));
  p.push_back(param(prefix + "down_proj.weight", &down_w_, {d_, F}, Init::NormalOutput, true));
  if (cfg_.bias) p.push_back(param(prefix + "down_proj.bias", &down_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
