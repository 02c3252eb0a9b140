#include "model/mamba1.h"

#include <limits>

#include "ops/layout.h"
#include "ops/ops.h"

namespace mambalm {

void Mamba1Mixer::forward(const Tensor& u, LayerState* state, int64_t, Tensor& y) {
  const int64_t B = u.dim(0), T = u.dim(1);
  const int64_t Di = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;

  Tensor xz = Tensor::empty({B, T, 2 * Di});  // x | z
  ops::linear(u, in_proj_w_, cfg_.proj_bias ? &in_proj_b_ : nullptr, xz);
  Tensor x = Tensor::empty({B, T, Di});  // SSM input
  Tensor z = Tensor::empty({B, T, Di});  // gate
  ops::copy_columns(xz, 0, x);
  ops::copy_columns(xz, Di, z);

  Tensor xc = Tensor::empty({B, T, Di});  // SiLU(conv(x))
  ops::causal_conv1d(x, conv_w_, cfg_.conv_bias ? &conv_b_ : nullptr, state ? &state->conv : nullptr,
                     /*apply_silu=*/true, xc);

  Tensor x_dbl = Tensor::empty({B, T, R + 2 * N});  // dt_low | B | C
  ops::linear(xc, x_proj_w_, nullptr, x_dbl);
  Tensor dt_low = Tensor::empty({B, T, R});
  Tensor Bm = Tensor::empty({B, T, N});
  Tensor Cm = Tensor::empty({B, T, N});
  ops::copy_columns(x_dbl, 0, dt_low);
  ops::copy_columns(x_dbl, R, Bm);
  ops::copy_columns(x_dbl, R + N, Cm);

  Tensor dt_lin = Tensor::empty({B, T, Di});  // W_dt dt_low (bias added inside softplus_dt)
  ops::linear(dt_low, dt_proj_w_, nullptr, dt_lin);
  Tensor dt = Tensor::empty({B, T, Di});  // softplus(W_dt dt_low + b_dt)
  ops::softplus_dt(dt_lin, dt_proj_b_, 0.0f, std::numeric_limits<float>::infinity(), dt);

  Tensor A = Tensor::empty({Di, N});  // -exp(A_log)
  ops::neg_exp(A_log_, A);
  Tensor ys = Tensor::empty({B, T, Di});  // gated scan output
  ops::selective_scan(xc, dt, A, Bm, Cm, &D_, &z, state ? &state->ssm : nullptr, ys);
  ops::linear(ys, out_proj_w_, cfg_.proj_bias ? &out_proj_b_ : nullptr, y);
}

ParamList Mamba1Mixer::params(const std::string& prefix) {
  const int64_t Di = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  ParamList p;
  p.push_back(param(prefix + "in_proj.weight", &in_proj_w_, {2 * Di, d_}, Init::Normal, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "in_proj.bias", &in_proj_b_, {2 * Di}, Init::Zeros, false));
  ParamRef conv = param(prefix + "conv1d.weight", &conv_w_, {Di, cfg_.d_conv}, Init::ConvUniform, true);
  conv.file_shape = {Di, 1, cfg_.d_conv};  // nn.Conv1d(groups=Di) stores [Di, 1, K]
  p.push_back(conv);
  if (cfg_.conv_bias) p.push_back(param(prefix + "conv1d.bias", &conv_b_, {Di}, Init::ConvUniform, false));
  p.push_back(param(prefix + "x_proj.weight", &x_proj_w_, {R + 2 * N, Di}, Init::Normal, true));
  p.push_back(param(prefix + "dt_proj.weight", &dt_proj_w_, {Di, R}, Init::Mamba1DtWeight, true));
  p.push_back(param(prefix + "dt_proj.bias", &dt_proj_b_, {Di}, Init::DtBias, false));
  p.push_back(param(prefix + "A_log", &A_log_, {Di, N}, Init::Mamba1ALog, false));
  p.push_back(param(prefix + "D", &D_, {Di}, Init::Ones, false));
  p.push_back(param(prefix + "out_proj.weight", &out_proj_w_, {d_, Di}, Init::NormalOutput, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "out_proj.bias", &out_proj_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
