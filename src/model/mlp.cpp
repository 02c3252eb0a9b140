#include "model/mlp.h"

#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

void Mlp::forward(const Tensor& x, const LayerContext& ctx, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1), F = cfg_.d_ff;
  const DType it = ctx.activation_dtype();
  Tensor up = ctx.empty({B, T, F}, it);  // W_up x (kept for backward)
  ops::linear(x, up_w_.value, bias(up_b_), up);
  Tensor gate;  // W_gate x (SwiGLU; kept for backward)
  if (cfg_.activation == MlpActivation::SwiGLU) {
    gate = ctx.empty({B, T, F}, it);
    ops::linear(x, gate_w_.value, bias(gate_b_), gate);
  }
  const bool keep = ctx.keeps(kKeepMlp);
  const size_t scratch = ctx.workspace && !keep ? ctx.workspace->mark() : 0;
  // act(up), the input of W_down: recomputed in backward unless kept. Without a backward, up is
  // dead once read, so act(up) overwrites it (the activations read and write each element at
  // one index): one [B, T, F] buffer less at a prefill's peak.
  Tensor h = ctx.cache ? ctx.empty({B, T, F}, it) : up;
  activate(up, gate, h);
  output_projection(h, down_w_.value, bias(down_b_), ctx, y);
  if (ctx.workspace && !keep) ctx.workspace->release(scratch);
  if (ctx.cache) {
    ctx.cache->x = x;
    auto a = std::make_unique<Activations>();
    a->up = up, a->gate = gate;
    if (keep) a->h = h;
    ctx.cache->activations = std::move(a);
  }
}

void Mlp::activate(const Tensor& up, const Tensor& gate, Tensor& h) const {
  switch (cfg_.activation) {
    case MlpActivation::ReluSquared: ops::relu_squared(up, h); break;
    case MlpActivation::Gelu: ops::gelu(up, h); break;
    case MlpActivation::SwiGLU: ops::swiglu(gate, up, h); break;
  }
}

void Mlp::backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) {
  const Tensor& x = cache.x;
  const Activations& a = activations<Activations>(dy, ctx, cache);
  const Tensor& up = a.up;
  const DType it = up.dtype();            // the forward's activation_dtype
  Tensor dh = ctx.empty(up.shape(), it);  // d loss / d h
  {
    const size_t mark = ctx.workspace ? ctx.workspace->mark() : 0;
    Tensor h = a.h;  // act(up): kept, or again (one elementwise pass instead of keeping it)
    if (!h.defined()) {
      h = ctx.empty(up.shape(), it);
      activate(up, a.gate, h);
    }
    ops::linear_backward(dy, h, down_w_.value, &dh, &down_w_.grad, bias_grad(down_b_));
    if (ctx.workspace) ctx.workspace->release(mark);
  }
  Tensor dup = ctx.empty(up.shape(), it);  // d loss / d (W_up x)
  switch (cfg_.activation) {
    case MlpActivation::ReluSquared: ops::relu_squared_backward(up, dh, dup); break;
    case MlpActivation::Gelu: ops::gelu_backward(up, dh, dup); break;
    case MlpActivation::SwiGLU: {
      Tensor dgate = ctx.empty(up.shape(), it);
      ops::swiglu_backward(a.gate, up, dh, dgate, dup);
      // dx = dgate W_gate + dup W_up, the second product accumulated onto the first
      ops::linear_backward(dgate, x, gate_w_.value, &dx, &gate_w_.grad, bias_grad(gate_b_));
      ops::linear_backward(dup, x, up_w_.value, &dx, &up_w_.grad, bias_grad(up_b_), /*accumulate_dx=*/true);
      return;
    }
  }
  ops::linear_backward(dup, x, up_w_.value, &dx, &up_w_.grad, bias_grad(up_b_));
}

ParamList Mlp::params(const std::string& prefix) {
  const int64_t F = cfg_.d_ff;
  ParamList p;
  if (cfg_.activation == MlpActivation::SwiGLU) {
    p.push_back(param(prefix + "gate_proj.weight", gate_w_, {F, d_}, Init::Normal, true));
    if (cfg_.bias) p.push_back(param(prefix + "gate_proj.bias", gate_b_, {F}, Init::Zeros, false));
  }
  p.push_back(param(prefix + "up_proj.weight", up_w_, {F, d_}, Init::Normal, true));
  if (cfg_.bias) p.push_back(param(prefix + "up_proj.bias", up_b_, {F}, Init::Zeros, false));
  p.push_back(param(prefix + "down_proj.weight", down_w_, {d_, F}, Init::NormalOutput, true));
  if (cfg_.bias) p.push_back(param(prefix + "down_proj.bias", down_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
