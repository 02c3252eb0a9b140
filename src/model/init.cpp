#include "model/init.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mambalm {

namespace {

constexpr double kInitStd = 0.02;

// dt ~ exp(U[ln dt_min, ln dt_max]), floored; stored as its inverse softplus so that
// softplus(bias) == dt at initialisation.
double draw_dt_bias(Rng& rng, double dt_min, double dt_max, double floor) {
  double dt = std::exp(rng.uniform(std::log(dt_min), std::log(dt_max)));
  dt = std::max(dt, floor);
  return dt + std::log(-std::expm1(-dt));
}

}  // namespace

void init_parameter(const ParamRef& p, const ModelConfig& cfg, Rng& rng) {
  float* w = p.tensor->f32();
  const int64_t n = p.tensor->numel();
  const bool mamba1 = cfg.mamba_version == 1;
  const double dt_min = mamba1 ? cfg.mamba1.dt_min : cfg.mamba2.dt_min;
  const double dt_max = mamba1 ? cfg.mamba1.dt_max : cfg.mamba2.dt_max;
  const double dt_floor = mamba1 ? cfg.mamba1.dt_init_floor : cfg.mamba2.dt_init_floor;
  switch (p.init) {
    case Init::Normal:
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(kInitStd * rng.normal());
      break;
    case Init::NormalOutput: {
      const double std = init_std(p, cfg);
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(std * rng.normal());
      break;
    }
    case Init::Ones: std::fill(w, w + n, 1.0f); break;
    case Init::Zeros: std::fill(w, w + n, 0.0f); break;
    case Init::ConvUniform: {
      int64_t k = mamba1 ? cfg.mamba1.d_conv : cfg.mamba2.d_conv;
      double bound = 1.0 / std::sqrt(static_cast<double>(k));
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(rng.uniform(-bound, bound));
      break;
    }
    case Init::Mamba2ALog:
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(std::log(rng.uniform(1.0, 16.0)));
      break;
    case Init::DtBias:
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(draw_dt_bias(rng, dt_min, dt_max, dt_floor));
      break;
    case Init::Mamba1ALog: {
      int64_t N = p.shape.back();
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(std::log(static_cast<double>(i % N + 1)));
      break;
    }
    case Init::Mamba1DtWeight: {
      const double bound = std::pow(static_cast<double>(cfg.mamba1.dt_rank), -0.5) * cfg.mamba1.dt_scale;
      for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(rng.uniform(-bound, bound));
      break;
    }
  }
}

double init_std(const ParamRef& p, const ModelConfig& cfg) {
  switch (p.init) {
    case Init::Normal: return kInitStd;
    case Init::NormalOutput: return kInitStd / std::sqrt(2.0 * static_cast<double>(cfg.n_layers()));
    case Init::Mamba1DtWeight:  // U(-b, b) with b = dt_rank^-0.5 * dt_scale
      return std::pow(static_cast<double>(cfg.mamba1.dt_rank), -0.5) * cfg.mamba1.dt_scale / std::sqrt(3.0);
    default: return 0.0;
  }
}

}  // namespace mambalm
