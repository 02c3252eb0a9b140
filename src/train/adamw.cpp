#include "train/adamw.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mambalm {

AdamW::AdamW(const ParamList& params, AdamWConfig cfg) : params_(params), cfg_(cfg) {
  check_adamw_config(cfg);
  for (const ParamRef& p : params_) {
    check(p.grad != nullptr, "adamw", "parameter '" + p.name + "' has no gradient buffer");
    m_.push_back(zeros_on(p.tensor->device(), p.shape));
    v_.push_back(zeros_on(p.tensor->device(), p.shape));
  }
}

void check_adamw_config(const AdamWConfig& cfg) {
  check(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1, "adamw", "betas must lie in [0, 1)");
  check(cfg.eps > 0 && cfg.weight_decay >= 0, "adamw", "eps must be positive and weight decay non-negative");
}

ops::AdamWStep adamw_step_scalars(const AdamWConfig& cfg, int64_t t, double lr, double grad_scale) {
  const double bias1 = 1.0 - std::pow(cfg.beta1, static_cast<double>(t));
  const double bias2 = 1.0 - std::pow(cfg.beta2, static_cast<double>(t));
  ops::AdamWStep s;
  s.beta1 = static_cast<float>(cfg.beta1);
  s.beta2 = static_cast<float>(cfg.beta2);
  s.step_size = static_cast<float>(lr / bias1);
  s.inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
  s.eps = static_cast<float>(cfg.eps);
  s.grad_scale = static_cast<float>(grad_scale);
  return s;
}

float adamw_shrink(const AdamWConfig& cfg, const ParamRef& p, double lr) {
  return p.decay || cfg.decay_all ? static_cast<float>(1.0 - lr * cfg.weight_decay) : 1.0f;
}

void AdamW::step(double lr, double grad_scale) {
  const ops::AdamWStep s = adamw_step_scalars(cfg_, ++t_, lr, grad_scale);
  std::vector<ops::AdamWSlot> slots;
  slots.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRef& p = params_[i];
    const bool mixed = p.master && p.master->defined();
    slots.push_back({mixed ? p.master : p.tensor, mixed ? p.tensor : nullptr, p.grad, &m_[i], &v_[i], adamw_shrink(cfg_, p, lr)});
  }
  ops::adamw_update_each(slots, s);
}

NamedTensors AdamW::state_tensors() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i].name + ".exp_avg", to_host(m_[i]));
    out.emplace_back(params_[i].name + ".exp_avg_sq", to_host(v_[i]));
  }
  return out;
}

void AdamW::load_state(const NamedTensors& tensors, int64_t steps_taken) {
  std::map<std::string, Tensor> by_name(tensors.begin(), tensors.end());
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [suffix, dst] : {std::pair{".exp_avg", &m_[i]}, {".exp_avg_sq", &v_[i]}}) {
      auto it = by_name.find(params_[i].name + suffix);
      check(it != by_name.end(), "optimizer state", "missing tensor '" + params_[i].name + suffix + "'");
      check(it->second.shape() == params_[i].shape, "optimizer state",
            "tensor '" + params_[i].name + suffix + "' has shape " + shape_str(it->second.shape()) + ", expected " + shape_str(params_[i].shape));
      const Tensor host = it->second.to(DType::F32);
      *dst = params_[i].tensor->device() == Device::CPU ? host : to_device(host, params_[i].tensor->device());
    }
  }
  t_ = steps_taken;
}

double global_grad_norm(const ParamList& params) {
  if (params.empty()) return 0.0;
  // One F64 per parameter on the gradients' device, read back once.
  Tensor sums = empty_on(params.front().grad->device(), {static_cast<int64_t>(params.size())}, DType::F64);
  std::vector<const Tensor*> grads;
  for (const ParamRef& p : params) grads.push_back(p.grad);
  ops::squared_norm_each(grads, sums);
  const Tensor host = to_host(sums);
  double total = 0;
  for (size_t i = 0; i < params.size(); ++i) total += host.data<double>()[i];
  return std::sqrt(total);
}

double clip_factor(double norm, double max_norm) { return max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0; }

void check_finite_grads(const ParamList& params) {
  if (params.empty()) return;
  Tensor flags = empty_on(params.front().grad->device(), {static_cast<int64_t>(params.size())}, DType::I32);
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor one = flags.slice0(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    ops::nonfinite_flag(*params[i].grad, one);
  }
  const Tensor host = to_host(flags);
  for (size_t i = 0; i < params.size(); ++i)
    if (host.data<int32_t>()[i])
      fail("training", "gradient of '" + params[i].name + "' holds a NaN or an infinity",
           "lower the learning rate or check the data; the step was not applied");
}

}  // namespace mambalm
