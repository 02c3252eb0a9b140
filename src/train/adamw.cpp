#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>
#include <map>

#include "core/error.h"

namespace mambalm {

AdamW::AdamW(const ParamList& params, AdamWConfig cfg) : params_(params), cfg_(cfg) {
  check(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1, "adamw", "betas must lie in [0, 1)");
  check(cfg.eps > 0 && cfg.weight_decay >= 0, "adamw", "eps must be positive and weight decay non-negative");
  for (const ParamRef& p : params_) {
    check(p.grad != nullptr, "adamw", "parameter '" + p.name + "' has no gradient buffer");
    m_.push_back(Tensor::zeros(p.shape));
    v_.push_back(Tensor::zeros(p.shape));
  }
}

void AdamW::step(double lr) {
  ++t_;
  const double bias1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t_));
  const double bias2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(t_));
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float step_size = static_cast<float>(lr / bias1);
  const float inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
  const float eps = static_cast<float>(cfg_.eps);
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef& p = params_[i];
    const bool decay = p.decay || cfg_.decay_all;
    const float shrink = decay ? static_cast<float>(1.0 - lr * cfg_.weight_decay) : 1.0f;
    float* w = p.tensor->f32();
    const float* g = p.grad->f32();
    float* m = m_[i].f32();
    float* v = v_[i].f32();
    const int64_t n = p.tensor->numel();
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; ++j) {
      m[j] = b1 * m[j] + (1.0f - b1) * g[j];
      v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
      w[j] = w[j] * shrink - step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bias2 + eps);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i].name + ".exp_avg", m_[i]);
    out.emplace_back(params_[i].name + ".exp_avg_sq", v_[i]);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t steps_taken) {
  std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [suffix, dst] : {std::pair{".exp_avg", &m_[i]}, {".exp_avg_sq", &v_[i]}}) {
      auto it = by_name.find(params_[i].name + suffix);
      check(it != by_name.end(), "optimizer state", "missing tensor '" + params_[i].name + suffix + "'");
      check(it->second.shape() == params_[i].shape, "optimizer state",
            "tensor '" + params_[i].name + suffix + "' has shape " + shape_str(it->second.shape()) + ", expected " + shape_str(params_[i].shape));
      *dst = it->second.to(DType::F32);
    }
  }
  t_ = steps_taken;
}

double global_grad_norm(const ParamList& params) {
  // Fixed blocks summed in a fixed order: the result does not depend on the thread count or on
  // which thread finishes first (an OpenMP reduction would), so runs are bit-reproducible.
  constexpr int64_t kBlock = 1 << 14;
  double total = 0;
  std::vector<double> partial;
  for (const ParamRef& p : params) {
    const float* g = p.grad->f32();
    const int64_t n = p.grad->numel(), blocks = (n + kBlock - 1) / kBlock;
    partial.assign(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static) if (blocks > 4)
    for (int64_t b = 0; b < blocks; ++b) {
      double s = 0;
      for (int64_t j = b * kBlock, end = std::min(n, (b + 1) * kBlock); j < end; ++j) s += static_cast<double>(g[j]) * g[j];
      partial[static_cast<size_t>(b)] = s;
    }
    for (double s : partial) total += s;
  }
  return std::sqrt(total);
}

double clip_grad_norm(const ParamList& params, double max_norm) {
  double norm = global_grad_norm(params);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / (norm + 1e-6));
    for (const ParamRef& p : params) {
      float* g = p.grad->f32();
      for (int64_t j = 0, n = p.grad->numel(); j < n; ++j) g[j] *= scale;
    }
  }
  return norm;
}

void check_finite_grads(const ParamList& params) {
  for (const ParamRef& p : params) {
    const float* g = p.grad->f32();
    for (int64_t j = 0, n = p.grad->numel(); j < n; ++j) {
      if (!std::isfinite(g[j])) {
        fail("training", "gradient of '" + p.name + "' is " + (std::isnan(g[j]) ? "NaN" : "infinite") + " at element " + std::to_string(j),
             "lower the learning rate or check the data; the step was not applied");
      }
    }
  }
}

}  // namespace mambalm
