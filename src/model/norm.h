// Pre-norms and the final norm: RMSNorm, or LayerNorm with a zero-centred gain (LayerNorm1p,
// the study's Transformer: y = (x - mean)/std * (1 + w) + b).
#pragma once
#include "config/model_config.h"
#include "model/param.h"

namespace mambalm {

class Norm {
 public:
  Norm(NormKind kind, int64_t d_model, double eps) : kind_(kind), d_(d_model), eps_(eps) {}
  void forward(const Tensor& x /*[..., D]*/, Tensor& y /*[..., D]*/) const;
  // h += r, then y = Norm(h): a residual add followed by this norm (one fused op for RMSNorm).
  void add_forward(Tensor& h /*[..., D]*/, const Tensor& r /*[..., D]*/, Tensor& y /*[..., D]*/) const;
  // dx = d loss / d x, or with `accumulate` dx += it (a block's residual path); weight (and
  // bias) gradients accumulate.
  void backward(const Tensor& x, const Tensor& dy, Tensor& dx, bool accumulate = false);
  ParamList params(const std::string& prefix);  // prefix + "weight" (+ "bias")

 private:
  NormKind kind_;
  int64_t d_;
  double eps_;
  Weight weight_;  // [D]
  Weight bias_;    // [D], LayerNorm1p only
};

}  // namespace mambalm
