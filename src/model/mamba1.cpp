#include "model/mamba1.h"

#include <algorithm>
#include <limits>

#include "core/device.h"
#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

namespace {
// Chunk of the Mamba-1 scan backward: states are kept at chunk boundaries only.
constexpr int64_t kScanBackwardChunk = 64;
constexpr float kNoClamp = std::numeric_limits<float>::infinity();
}  // namespace

LayerState Mamba1Mixer::new_state(const Mamba1Config& cfg, int64_t batch, const StateOptions& opts) {
  LayerState s;
  s.conv = zeros_on(opts.device, {batch, cfg.d_inner, cfg.d_conv - 1});
  s.ssm = zeros_on(opts.device, {batch, cfg.d_inner, cfg.d_state});
  return s;
}

Tensor Mamba1Mixer::inference_A() {
  const Tensor& A_log = A_log_.value;
  std::lock_guard<std::mutex> lock(a_cache_mutex_);
  // A version is never handed out twice, so (pointer, version) cannot match a freed and
  // reallocated A_log that happens to sit at the same address.
  const uint64_t version = A_log.version();
  if (!a_cache_.defined() || a_cache_data_ != A_log.raw() || a_cache_version_ != version ||
      a_cache_.shape() != A_log.shape()) {
    // A new tensor rather than overwriting: a forward on another thread may still hold the old A.
    Tensor A = Tensor::empty(A_log.shape());
    ops::neg_exp(A_log, A);
    a_cache_ = A;
    a_cache_data_ = A_log.raw();
    a_cache_version_ = version;
  }
  return a_cache_;
}

void Mamba1Mixer::selective_path(const Tensor& x, const Tensor& z, const Tensor& A, const LayerContext& ctx,
                                 LayerState* state, Tensor& ys, Activations* keep) {
  const int64_t B = x.dim(0), T = x.dim(1);
  const int64_t Di = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;

  Tensor xc = ctx.empty({B, T, Di});  // SiLU(conv(x))
  ops::causal_conv1d(x, conv_w_.value, cfg_.conv_bias ? &conv_b_.value : nullptr, ctx.seq_idx,
                     state ? &state->conv : nullptr, /*apply_silu=*/true, xc);

  Tensor x_dbl = ctx.empty({B, T, R + 2 * N});  // dt_low | B | C
  ops::linear(xc, x_proj_w_.value, nullptr, x_dbl);
  Tensor dt_low = ctx.empty({B, T, R});
  Tensor Bm = ctx.empty({B, T, N});
  Tensor Cm = ctx.empty({B, T, N});
  ops::split_columns(x_dbl, {&dt_low, &Bm, &Cm});

  // dt = softplus(W_dt dt_low + b_dt), in place over W_dt dt_low: the backward needs only dt
  // (the softplus's derivative is 1 - exp(-dt), taken inside the scan's backward)
  Tensor dt = ctx.empty({B, T, Di});
  ops::linear(dt_low, dt_proj_w_.value, nullptr, dt);
  ops::softplus_dt(dt, dt_proj_b_.value, 0.0f, kNoClamp, dt);

  // Training keeps the scan's state every kScanStateChunk steps, so that the backward starts from
  // them instead of walking the sequence again (N / 8 floats per token and channel: 2 at N = 16,
  // beside the 6 per channel this layer keeps anyway).
  Tensor chunk_states;  // [B, ceil(T / K), Di, N]
  if (keep) chunk_states = ctx.empty({B, (T + ops::kScanStateChunk - 1) / ops::kScanStateChunk, Di, N});
  ops::selective_scan(xc, dt, A, Bm, Cm, &D_.value, &z, ctx.seq_idx, state ? &state->ssm : nullptr, ys,
                      keep ? &chunk_states : nullptr);
  if (keep) {
    keep->xc = xc, keep->dt_low = dt_low, keep->Bm = Bm, keep->Cm = Cm, keep->dt = dt;
    keep->chunk_states = chunk_states;
  }
}

void Mamba1Mixer::forward(const Tensor& u, const LayerContext& ctx, Tensor& y) {
  const int64_t B = u.dim(0), T = u.dim(1);
  const int64_t Di = cfg_.d_inner, N = cfg_.d_state;

  // x | z = W_in u, each column block written to its own tensor
  Tensor x = ctx.empty({B, T, Di});  // SSM input before the conv
  Tensor z = ctx.empty({B, T, Di});  // gate
  ops::linear_parts(u, in_proj_w_.value, cfg_.proj_bias ? &in_proj_b_.value : nullptr, {&x, &z});

  Tensor A;  // [Di, N] -exp(A_log)
  if (!ctx.cache && A_log_.value.device() == Device::CPU) {
    A = inference_A();
  } else {
    A = ctx.empty({Di, N});
    ops::neg_exp(A_log_.value, A);
  }
  // The gated scan output; without a backward it takes x's bytes (x is dead once convolved): one
  // [B, T, Di] buffer less at a prefill's peak.
  Tensor ys = ctx.cache ? ctx.empty({B, T, Di}) : x;

  if (!ctx.cache && B == 1 && !ctx.seq_idx && T > kInferenceSlice && x.device() == Device::CPU) {
    // A CPU prefill: the selective path runs kInferenceSlice tokens at a time, its conv and scan
    // carrying their states from slice to slice (the same recurrences, in the same order), so
    // that its [T, Di] intermediates (the conv's output and dt) exist for one slice at a time:
    // at T 512 and Di 1536, 4.5 of a layer's 12 MiB. Each slice's output overwrites x's rows
    // of that slice, which the conv has read by then (the next slice's history is in the state).
    LayerState own;
    LayerState* state = ctx.state;
    if (!state) {
      own = new_state(cfg_, 1, StateOptions{});
      state = &own;
    }
    const Tensor x_rows = x.reshape({T, Di}), z_rows = z.reshape({T, Di});
    for (int64_t t0 = 0; t0 < T; t0 += kInferenceSlice) {
      const int64_t n = std::min(kInferenceSlice, T - t0);
      Tensor xs = x_rows.slice0(t0, t0 + n).reshape({1, n, Di});
      const Tensor zs = z_rows.slice0(t0, t0 + n).reshape({1, n, Di});
      selective_path(xs, zs, A, ctx, state, xs, nullptr);
    }
  } else {
    auto a = ctx.cache ? std::make_unique<Activations>() : nullptr;
    selective_path(x, z, A, ctx, ctx.state, ys, a.get());
    if (a) {
      ctx.cache->x = u;
      a->xin = x, a->z = z, a->A = A, a->ys = ys;
      ctx.cache->activations = std::move(a);
    }
  }
  output_projection(ys, out_proj_w_.value, cfg_.proj_bias ? &out_proj_b_.value : nullptr, ctx, y);
}

void Mamba1Mixer::backward(const Tensor& dy, const LayerContext& ctx, LayerCache& cache, Tensor& du) {
  const Tensor& u = cache.x;
  const Activations& a = activations<Activations>(dy, ctx, cache);
  const Tensor* seq_idx = ctx.seq_idx;
  const int64_t B = u.dim(0), T = u.dim(1);
  const int64_t Di = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;

  // y = W_out ys
  Tensor dys = ctx.empty({B, T, Di});
  ops::linear_backward(dy, a.ys, out_proj_w_.value, &dys, &out_proj_w_.grad, cfg_.proj_bias ? &out_proj_b_.grad : nullptr);
  // ys = scan(xc, dt, A, B, C) * SiLU(z) (+ D xc inside), dt = softplus(dt_lin + b): the scan's
  // backward also takes the softplus's, so ddt_lin is w.r.t. dt_lin and b's gradient is summed
  Tensor dxc = ctx.empty({B, T, Di}), ddt_lin = ctx.empty({B, T, Di}), dz = ctx.empty({B, T, Di});
  Tensor dBm = ctx.empty({B, T, N}), dCm = ctx.empty({B, T, N});
  Tensor dA = ctx.zeros({Di, N});
  ops::selective_scan_backward(a.xc, a.dt, a.A, a.Bm, a.Cm, &D_.value, &a.z, seq_idx, nullptr, nullptr, kScanBackwardChunk, dys,
                               dxc, ddt_lin, &dA, dBm, dCm, &D_.grad, &dz, nullptr, &a.chunk_states, &dt_proj_b_.grad);
  // A = -exp(A_log)
  ops::neg_exp_backward(a.A, dA, A_log_.grad);
  // dt_lin = W_dt dt_low
  Tensor ddt_low = ctx.empty({B, T, R});
  ops::linear_backward(ddt_lin, a.dt_low, dt_proj_w_.value, &ddt_low, &dt_proj_w_.grad, nullptr);
  // dt_low | B | C = W_x xc
  // xc's gradient through x_proj accumulated onto the scan's
  ops::linear_backward_parts({&ddt_low, &dBm, &dCm}, a.xc, x_proj_w_.value, &dxc, &x_proj_w_.grad, nullptr,
                             /*accumulate_dx=*/true);
  // xc = SiLU(conv(x))
  Tensor dx = ctx.empty({B, T, Di});
  ops::causal_conv1d_backward(a.xin, conv_w_.value, cfg_.conv_bias ? &conv_b_.value : nullptr, seq_idx, nullptr,
                              /*apply_silu=*/true, dxc, dx, &conv_w_.grad, cfg_.conv_bias ? &conv_b_.grad : nullptr, nullptr);
  // x | z = W_in u
  ops::linear_backward_parts({&dx, &dz}, u, in_proj_w_.value, &du, &in_proj_w_.grad,
                             cfg_.proj_bias ? &in_proj_b_.grad : nullptr);
}

ParamList Mamba1Mixer::params(const std::string& prefix) {
  const int64_t Di = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  ParamList p;
  p.push_back(param(prefix + "in_proj.weight", in_proj_w_, {2 * Di, d_}, Init::FanInUniform, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "in_proj.bias", in_proj_b_, {2 * Di}, Init::Zeros, false));
  ParamRef conv = param(prefix + "conv1d.weight", conv_w_, {Di, cfg_.d_conv}, Init::ConvUniform, true);
  conv.file_shape = {Di, 1, cfg_.d_conv};  // nn.Conv1d(groups=Di) stores [Di, 1, K]
  p.push_back(conv);
  if (cfg_.conv_bias) p.push_back(param(prefix + "conv1d.bias", conv_b_, {Di}, Init::ConvUniform, false));
  p.push_back(param(prefix + "x_proj.weight", x_proj_w_, {R + 2 * N, Di}, Init::FanInUniform, true));
  p.push_back(param(prefix + "dt_proj.weight", dt_proj_w_, {Di, R}, Init::Mamba1DtWeight, true));
  p.push_back(param(prefix + "dt_proj.bias", dt_proj_b_, {Di}, Init::DtBias, false));
  p.push_back(param(prefix + "A_log", A_log_, {Di, N}, Init::Mamba1ALog, false));
  p.push_back(param(prefix + "D", D_, {Di}, Init::Ones, false));
  p.push_back(param(prefix + "out_proj.weight", out_proj_w_, {d_, Di}, Init::NormalMixerOutput, true));
  if (cfg_.proj_bias) p.push_back(param(prefix + "out_proj.bias", out_proj_b_, {d_}, Init::Zeros, false));
  return p;
}

}  // namespace mambalm
