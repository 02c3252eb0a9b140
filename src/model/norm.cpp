#include "model/norm.h"

#include "ops/ops.h"

namespace mambalm {

void Norm::forward(const Tensor& x, Tensor& y) const {
  if (kind_ == NormKind::RMSNorm) ops::rms_norm(x, weight_, static_cast<float>(eps_), y);
  else ops::layer_norm(x, weight_, &bias_, static_cast<float>(eps_), /*zero_centered=*/true, y);
}

ParamList Norm::params(const std::string& prefix) {
  if (kind_ == NormKind::RMSNorm) return {param(prefix + "weight", &weight_, {d_}, Init::Ones, false)};
  return {param(prefix + "weight", &weight_, {d_}, Init::Zeros, false),
          param(prefix + "bias", &bias_, {d_}, Init::Zeros, false)};
}

}  // namespace mambalm
