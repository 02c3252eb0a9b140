#include "model/mamba2.h"

#include "ops/layout.h"
#include "ops/ops.h"

namespace mambalm {

void Mamba2Mixer::forward(const Tensor& x, LayerState* state, int64_t, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t Di = cfg_.d_inner, H = cfg_.n_heads, P = cfg_.head_dim, G = cfg_.n_groups, N = cfg_.d_state;
  const int64_t C = cfg_.conv_channels();

  Tensor zxbcdt = Tensor::empty({B, T, cfg_.in_proj_width()});  // z | x | B | C | dt
  ops::linear(x, in_proj_w_, cfg_.proj_bias ? &in_proj_b_ : nullptr, zxbcdt);
  Tensor z = Tensor::empty({B, T, Di});      // gate
  Tensor xbc = Tensor::empty({B, T, C});     // conv input: x | B | C
  Tensor dt_raw = Tensor::empty({B, T, H});  // dt before softplus
  ops::copy_columns(zxbcdt, 0, z);
  ops::copy_columns(zxbcdt, Di, xbc);
  ops::copy_columns(zxbcdt, Di + C, dt_raw);

  Tensor xbc_conv = Tensor::empty({B, T, C});  // SiLU(conv(x | B | C))
  ops::causal_conv1d(xbc, conv_w_, cfg_.conv_bias ? &conv_b_ : nullptr, state ? &state->conv : nullptr,
                     /*apply_silu=*/true, xbc_conv);
  Tensor xs = Tensor::empty({B, T, H, P});  // x split into heads
  Tensor Bm = Tensor::empty({B, T, G, N});  // input matrix per group
  Tensor Cm = Tensor::empty({B, T, G, N});  // output matrix per group
  Tensor xs_flat = xs.reshape({B, T, Di});
  ops::copy_columns(xbc_conv, 0, xs_flat);
  Tensor Bm_flat = Bm.reshape({B, T, G * N}), Cm_flat = Cm.reshape({B, T, G * N});
  ops::copy_columns(xbc_conv, Di, Bm_flat);
  ops::copy_columns(xbc_conv, Di + G * N, Cm_flat);

  Tensor dt = Tensor::empty({B, T, H});  // step sizes
  ops::softplus_dt(dt_raw, dt_bias_, static_cast<float>(cfg_.dt_limit_lo), static_cast<float>(cfg_.dt_limit_hi), dt);
  Tensor A = Tensor::empty({H});  // A = -exp(A_log), one decay rate per head
  ops::neg_exp(A_log_, A);

  Tensor ys = Tensor::empty({B, T, H, P});  // SSM output per head
  ops::ssd_chunked(xs, dt, A, Bm, Cm, &D_, cfg_.chunk_size, state ? &state->ssm : nullptr, ys);

  Tensor gated = Tensor::empty({B, T, Di});  // RMSNorm_grouped(y * SiLU(z)) * w
  ops::gated_rms_norm(ys.reshape({B, T, Di}), z, norm_w_, Di / cfg_.norm_groups, static_cast<float>(eps_), gated);
  ops::linear(gated, out_proj_w_, cfg_.proj_bias ? &out_proj_b_ : nullptr, y);
}

ParamList Mamba2Mixer::params(const std::string& prefix) {
  const int64_t Di = cfg_.d_inner, H = cfg_.n_heads, C = cfg_.conv_channels(), W = cfg_.in_proj_width();
  ParamList p;
  p.push_back(param(prefix + "in_proj.weight", &in_proj_w_, {W, d_}, Init::Normal, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "in_proj.bias", &in_proj_b_, {W}, Init::Zeros, false));
  ParamRef conv = param(prefix + "conv1d.weight", &conv_w_, {C, cfg_.d_conv}, Init::ConvUniform, true);
  conv.file_shape = {C, 1, cfg_.d_conv};  // nn.Conv1d(groups=C) stores [C, 1, K]
  p.push_back(conv);
  if (cfg_.conv_bias) p.push_back(param(prefix + "conv1d.bias", &conv_b_, {C}, Init::ConvUniform, false));
  p.push_back(param(prefix + "dt_bias", &dt_bias_, {H}, Init::DtBias, false));
  p.push_back(param(prefix + "A_log", &A_log_, {H}, Init::Mamba2ALog, false));
  p.push_back(param(prefix + "D", &D_, {H}, Init::Ones, false));
  p.push_back(param(prefix + "norm.weight", &norm_w_, {Di}, Init::Ones, false));
  p.push_back(param(prefix + "out_proj.weight", &out_proj_w_, {d_, Di}, Init::NormalOutput, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "out_proj.bias", &out_proj_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
