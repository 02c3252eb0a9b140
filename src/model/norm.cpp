#include "model/norm.h"

#include "ops/ops.h"
#include "ops/ops_backward.h"

namespace mambalm {

void Norm::forward(const Tensor& x, Tensor& y) const {
  if (kind_ == NormKind::RMSNorm) ops::rms_norm(x, weight_.value, static_cast<float>(eps_), y);
  else ops::layer_norm(x, weight_.value, &bias_.value, static_cast<float>(eps_), /*zero_centered=*/true, y);
}

void Norm::add_forward(Tensor& h, const Tensor& r, Tensor& y) const {
  if (kind_ == NormKind::RMSNorm) {
    ops::add_rms_norm(h, r, weight_.value, static_cast<float>(eps_), h, y);
    return;
  }
  ops::add(h, r, h);
  forward(h, y);
}

void Norm::backward(const Tensor& x, const Tensor& dy, Tensor& dx, bool accumulate) {
  if (kind_ == NormKind::RMSNorm) {
    ops::rms_norm_backward(x, weight_.value, static_cast<float>(eps_), dy, dx, &weight_.grad, accumulate);
  } else {
    ops::layer_norm_backward(x, weight_.value, static_cast<float>(eps_), /*zero_centered=*/true, dy, dx, &weight_.grad,
                             &bias_.grad, accumulate);
  }
}

ParamList Norm::params(const std::string& prefix) {
  if (kind_ == NormKind::RMSNorm) return {param(prefix + "weight", weight_, {d_}, Init::Ones, false)};
  return {param(prefix + "weight", weight_, {d_}, Init::Zeros, false), param(prefix + "bias", bias_, {d_}, Init::Zeros, false)};
}

}  // namespace mambalm
