#include "ops/blas_core.h"

#include <cblas.h>

namespace mambalm::ops {

std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

}  // namespace mambalm::ops
