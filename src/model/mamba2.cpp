#include "model/mamba2.h"

#include "core/device.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

LayerState Mamba2Mixer::new_state(const Mamba2Config& cfg, int64_t batch, const StateOptions& opts) {
  LayerState s;
  s.conv = zeros_on(opts.device, {batch, cfg.conv_channels(), cfg.d_conv - 1});
  s.ssm = zeros_on(opts.device, {batch, cfg.n_heads, cfg.head_dim, cfg.d_state});
  return s;
}

void Mamba2Mixer::forward(const Tensor& x, const LayerContext& ctx, Tensor& y) {
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t Di = cfg_.d_inner, H = cfg_.n_heads, P = cfg_.head_dim, G = cfg_.n_groups;
  const int64_t C = cfg_.conv_channels();
  LayerState* state = ctx.state;

  if (state && T == 1 && !ctx.cache) {
    Tensor zxbcdt = ctx.empty({B, T, cfg_.in_proj_width()});  // z | x | B | C | dt
    ops::linear(x, in_proj_w_.value, cfg_.proj_bias ? &in_proj_b_.value : nullptr, zxbcdt);
    // Decode: conv step, dt, SSD step and the gate split as one fused op (same function).
    Tensor ys = ctx.empty({B, H, P});  // SSM output per head
    Tensor z = ctx.empty({B, Di});     // gate
    ops::mamba2_decode_step(zxbcdt.reshape({B, cfg_.in_proj_width()}), conv_w_.value, cfg_.conv_bias ? &conv_b_.value : nullptr,
                            dt_bias_.value, A_log_.value, &D_.value, static_cast<float>(cfg_.dt_limit_lo),
                            static_cast<float>(cfg_.dt_limit_hi), G, state->conv, state->ssm, ys, z);
    Tensor gated = ctx.empty({B, T, Di});  // RMSNorm_grouped(y * SiLU(z)) * w
    ops::gated_rms_norm(ys.reshape({B, T, Di}), z.reshape({B, T, Di}), norm_w_.value, Di / cfg_.norm_groups,
                        static_cast<float>(eps_), gated);
    output_projection(gated, out_proj_w_.value, cfg_.proj_bias ? &out_proj_b_.value : nullptr, ctx, y);
    return;
  }
  // What training keeps for backward is allocated first; everything else is scratch above it,
  // released at the end (planned memory is a stack).
  // the gate z and the conv input x | B | C: bf16 in mixed-precision training (in_proj writes
  // them; the gated norm and the conv read them, and their backwards write bf16 gradients that
  // in_proj's backward reads as they are)
  Tensor z = ctx.empty({B, T, Di}, ctx.activation_dtype());
  Tensor xbc = ctx.empty({B, T, C}, ctx.activation_dtype());
  Tensor dt_raw = ctx.empty({B, T, H});  // dt before softplus
  // SSM output per head: bf16 in mixed-precision training too (the SSD rounds its fp32 sums once;
  // only the gated norm and its backward read it)
  Tensor ys = ctx.empty({B, T, H, P}, ctx.activation_dtype());
  const bool keep_gate = ctx.keeps(kKeepGate), keep_conv = ctx.keeps(kKeepConv);
  // RMSNorm_grouped(y * SiLU(z)) * w: below the scratch mark when it is kept
  Tensor gated = keep_gate ? ctx.empty({B, T, Di}, ctx.activation_dtype()) : Tensor();
  // What follows is scratch, released at the end, unless the conv outputs are kept
  const size_t scratch = ctx.workspace && !keep_conv ? ctx.workspace->mark() : 0;
  // z | xbc | dt_raw = W_in x, each block of the projection written as its own tensor
  ops::linear_parts(x, in_proj_w_.value, cfg_.proj_bias ? &in_proj_b_.value : nullptr, {&z, &xbc, &dt_raw});
  Recomputed r;
  conv_and_dt(xbc, dt_raw, ctx, state, r);
  if (state && !ctx.cache && !ctx.workspace) xbc = Tensor();  // dead once convolved (conv_and_dt's parts are its size)
  ops::ssd_chunked(r.xs, r.dt, r.A, r.Bm, r.Cm, &D_.value, ctx.seq_idx, cfg_.chunk_size, state ? &state->ssm : nullptr, ys,
                   ctx.fp32_products());
  const size_t gate_scratch = ctx.workspace && keep_conv && !keep_gate ? ctx.workspace->mark() : 0;
  r.gated = keep_gate ? gated : ctx.empty({B, T, Di}, ctx.activation_dtype());
  ops::gated_rms_norm(ys.reshape({B, T, Di}), z, norm_w_.value, Di / cfg_.norm_groups, static_cast<float>(eps_), r.gated);
  output_projection(r.gated, out_proj_w_.value, cfg_.proj_bias ? &out_proj_b_.value : nullptr, ctx, y);
  if (ctx.workspace && !keep_conv) ctx.workspace->release(scratch);
  else if (ctx.workspace && !keep_gate) ctx.workspace->release(gate_scratch);

  if (ctx.cache) {
    ctx.cache->x = x;
    auto a = std::make_unique<Activations>();
    a->z = z, a->xbc = xbc, a->dt_raw = dt_raw, a->ys = ys;
    if (keep_conv) a->kept = r;
    a->kept.gated = keep_gate ? r.gated : Tensor{};
    ctx.cache->activations = std::move(a);
  }
}

void Mamba2Mixer::conv_and_dt(const Tensor& xbc, const Tensor& dt_raw, const LayerContext& ctx, LayerState* state,
                              Recomputed& r) const {
  const int64_t B = xbc.dim(0), T = xbc.dim(1);
  const int64_t Di = cfg_.d_inner, H = cfg_.n_heads, P = cfg_.head_dim, G = cfg_.n_groups, N = cfg_.d_state;
  // On the CPU the conv writes xs, Bm, Cm straight from x | B | C (forward() then frees x | B | C,
  // so a prefill's peak holds the same bytes as below).
  const bool in_place = state && !ctx.cache && xbc.device() != Device::CPU;
  if (in_place) {
    // Stateful inference: x | B | C is dead once convolved (nothing keeps it for a backward), and
    // xs, Bm, Cm together are exactly its size, so they take its bytes, one after another: one
    // [B, T, C] buffer less at a prefill's peak.
    const Tensor flat = xbc.reshape({B * T * cfg_.conv_channels()});  // [B T C]
    r.xs = flat.slice0(0, B * T * Di).reshape({B, T, H, P});
    r.Bm = flat.slice0(B * T * Di, B * T * (Di + G * N)).reshape({B, T, G, N});
    r.Cm = flat.slice0(B * T * (Di + G * N), B * T * (Di + 2 * G * N)).reshape({B, T, G, N});
  } else {
    // x | B | C's dtype: bf16 in mixed-precision training, half the bytes the conv writes and the
    // SSD reads (its fast products round them to bf16 anyway)
    r.xs = ctx.empty({B, T, H, P}, xbc.dtype());
    r.Bm = ctx.empty({B, T, G, N}, xbc.dtype());
    r.Cm = ctx.empty({B, T, G, N}, xbc.dtype());
  }
  r.dt = ctx.empty({B, T, H});
  r.A = ctx.empty({H});
  // xs | Bm | Cm = SiLU(conv(x | B | C))
  Tensor xs_flat = r.xs.reshape({B, T, Di}), Bm_flat = r.Bm.reshape({B, T, G * N}), Cm_flat = r.Cm.reshape({B, T, G * N});
  const Tensor* conv_b = cfg_.conv_bias ? &conv_b_.value : nullptr;
  if (in_place) {  // the parts alias x | B | C: a whole-width conv beside it, then the split
    const size_t mark = ctx.workspace ? ctx.workspace->mark() : 0;
    Tensor xbc_conv = ctx.empty(xbc.shape());
    ops::causal_conv1d(xbc, conv_w_.value, conv_b, ctx.seq_idx, &state->conv, /*apply_silu=*/true, xbc_conv);
    ops::split_columns(xbc_conv, {&xs_flat, &Bm_flat, &Cm_flat});
    if (ctx.workspace) ctx.workspace->release(mark);
  } else {
    ops::causal_conv1d_parts(xbc, conv_w_.value, conv_b, ctx.seq_idx, state ? &state->conv : nullptr, /*apply_silu=*/true,
                             {&xs_flat, &Bm_flat, &Cm_flat});
  }
  ops::softplus_dt(dt_raw, dt_bias_.value, static_cast<float>(cfg_.dt_limit_lo), static_cast<float>(cfg_.dt_limit_hi), r.dt);
  ops::neg_exp(A_log_.value, r.A);
}

void Mamba2Mixer::backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& dx) {
  const Tensor& x = cache.x;
  const Activations& a = activations<Activations>(dy, ctx, cache);
  const Tensor* seq_idx = ctx.seq_idx;
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t Di = cfg_.d_inner, H = cfg_.n_heads, P = cfg_.head_dim, G = cfg_.n_groups, N = cfg_.d_state;
  const int64_t C = cfg_.conv_channels();
  Recomputed r = a.kept;  // kept by the forward, or recomputed here
  if (!r.xs.defined()) conv_and_dt(a.xbc, a.dt_raw, ctx, nullptr, r);

  // y = W_out gated (d loss / d gated in bf16 in mixed precision, as the MLP's d loss / d h: the
  // gated norm's backward reads it once)
  Tensor dgated = ctx.empty({B, T, Di}, ctx.activation_dtype());
  {
    const size_t mark = ctx.workspace ? ctx.workspace->mark() : 0;
    Tensor gated = r.gated;
    if (!gated.defined()) {  // RMSNorm_grouped(ys * SiLU(z)) * w, again
      gated = ctx.empty({B, T, Di}, ctx.activation_dtype());
      ops::gated_rms_norm(a.ys.reshape({B, T, Di}), a.z, norm_w_.value, Di / cfg_.norm_groups, static_cast<float>(eps_),
                          gated);
    }
    ops::linear_backward(dy, gated, out_proj_w_.value, &dgated, &out_proj_w_.grad,
                         cfg_.proj_bias ? &out_proj_b_.grad : nullptr);
    if (ctx.workspace) ctx.workspace->release(mark);
  }
  // d loss / d (z | xbc | dt_raw), in_proj's output: each gradient goes into its own columns, so
  // that in_proj's backward reads one [B, T, W] dy (on CUDA no copy of the blocks side by side)
  Tensor dzxbcdt = ctx.empty({B, T, cfg_.in_proj_width()}, a.z.dtype());
  // gated = RMSNorm_grouped(ys * SiLU(z)) * w
  Tensor dys = ctx.empty({B, T, H, P});
  Tensor dys_flat = dys.reshape({B, T, Di});
  ops::gated_rms_norm_backward(a.ys.reshape({B, T, Di}), a.z, norm_w_.value, Di / cfg_.norm_groups, static_cast<float>(eps_),
                               dgated, dys_flat, dzxbcdt, &norm_w_.grad, /*dz_col0=*/0);
  // ys = SSD(xs, dt, A, B, C) + D xs
  Tensor dxs = ctx.empty({B, T, H, P}), ddt = ctx.empty({B, T, H});
  Tensor dBm = ctx.empty({B, T, G, N}), dCm = ctx.empty({B, T, G, N});
  Tensor dA = ctx.zeros({H});
  ops::ssd_chunked_backward(r.xs, r.dt, r.A, r.Bm, r.Cm, &D_.value, seq_idx, cfg_.chunk_size, nullptr, nullptr, dys, dxs, ddt,
                            &dA, dBm, dCm, &D_.grad, nullptr, ctx.fp32_products());
  // A = -exp(A_log)
  ops::neg_exp_backward(r.A, dA, A_log_.grad);
  // dt = clamp(softplus(dt_raw + dt_bias))
  Tensor ddt_raw = ctx.empty({B, T, H});
  ops::softplus_dt_backward(a.dt_raw, dt_bias_.value, static_cast<float>(cfg_.dt_limit_lo), static_cast<float>(cfg_.dt_limit_hi),
                            ddt, ddt_raw, &dt_bias_.grad);
  // xs | B | C = SiLU(conv(xbc))
  const Tensor dxs_flat = dxs.reshape({B, T, Di}), dBm_flat = dBm.reshape({B, T, G * N}),
               dCm_flat = dCm.reshape({B, T, G * N});
  ops::causal_conv1d_backward_parts(a.xbc, conv_w_.value, cfg_.conv_bias ? &conv_b_.value : nullptr, seq_idx,
                                    /*apply_silu=*/true, {&dxs_flat, &dBm_flat, &dCm_flat}, dzxbcdt, &conv_w_.grad,
                                    cfg_.conv_bias ? &conv_b_.grad : nullptr, /*dx_col0=*/Di);
  ops::write_columns(ddt_raw, dzxbcdt, Di + C);  // rounded to bf16 in mixed precision, as the GEMM would
  // z | xbc | dt_raw = W_in x
  ops::linear_backward(dzxbcdt, x, in_proj_w_.value, &dx, &in_proj_w_.grad, cfg_.proj_bias ? &in_proj_b_.grad : nullptr);
}

ParamList Mamba2Mixer::params(const std::string& prefix) {
  const int64_t Di = cfg_.d_inner, H = cfg_.n_heads, C = cfg_.conv_channels(), W = cfg_.in_proj_width();
  ParamList p;
  p.push_back(param(prefix + "in_proj.weight", in_proj_w_, {W, d_}, Init::FanInUniform, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "in_proj.bias", in_proj_b_, {W}, Init::Zeros, false));
  ParamRef conv = param(prefix + "conv1d.weight", conv_w_, {C, cfg_.d_conv}, Init::ConvUniform, true);
  conv.file_shape = {C, 1, cfg_.d_conv};  // nn.Conv1d(groups=C) stores [C, 1, K]
  p.push_back(conv);
  if (cfg_.conv_bias) p.push_back(param(prefix + "conv1d.bias", conv_b_, {C}, Init::ConvUniform, false));
  p.push_back(param(prefix + "dt_bias", dt_bias_, {H}, Init::DtBias, false));
  p.push_back(param(prefix + "A_log", A_log_, {H}, Init::Mamba2ALog, false));
  p.push_back(param(prefix + "D", D_, {H}, Init::Ones, false));
  p.push_back(param(prefix + "norm.weight", norm_w_, {Di}, Init::Ones, false));
  p.push_back(param(prefix + "out_proj.weight", out_proj_w_, {d_, Di}, Init::NormalMixerOutput, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "out_proj.bias", out_proj_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
