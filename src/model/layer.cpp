#include "model/layer.h"

#include "ops/ops.h"

namespace mambalm {

Tensor LayerContext::zeros(const Shape& shape) const {
  Tensor t = empty(shape);
  ops::fill(t, 0.0f);
  return t;
}

}  // namespace mambalm
