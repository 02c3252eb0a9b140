#include "ops/blas_core.h"

#include <cblas.h>

#include "ops/cpu/cpu_features.h"
#include "ops/cpu/onednn_gemm.h"

namespace mambalm::ops {

std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

bool onednn_bf16_prefill() {
  return cpu::active_isa() == cpu::Isa::Avx512Bf16 && cpu::onednn_bf16_gemm_available();
}

}  // namespace mambalm::ops
