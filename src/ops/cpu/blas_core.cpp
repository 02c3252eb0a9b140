#include "ops/blas_core.h"

#include <cblas.h>

#include <cstdlib>

#include "ops/cpu/cpu_features.h"
#include "ops/cpu/onednn_gemm.h"

namespace mambalm::ops {

std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

namespace {

// How wide the vectors of a core's sgemm kernels are: 2 for AVX-512, 1 for AVX2, 0 for older
// (and for names this list does not know).
int vector_level(const std::string& core) {
  for (const char* c : {"SkylakeX", "Cooperlake", "SapphireRapids"})
    if (core == c) return 2;
  for (const char* c : {"Haswell", "Zen"})
    if (core == c) return 1;
  return 0;
}

}  // namespace

const char* openblas_core_to_force(const std::string& current, cpu::Isa best) {
  const char* want = best == cpu::Isa::Avx512Bf16 ? "Cooperlake"
                     : best == cpu::Isa::Avx512   ? "SkylakeX"
                     : best == cpu::Isa::Avx2     ? "Haswell"
                                                  : nullptr;
  return want && vector_level(current) < vector_level(want) ? want : nullptr;
}

const char* openblas_core_to_force() {
  if (std::getenv("OPENBLAS_CORETYPE")) return nullptr;
  return openblas_core_to_force(openblas_core(), cpu::best_supported_isa());
}

bool onednn_bf16_prefill() {
  return cpu::active_isa() == cpu::Isa::Avx512Bf16 && cpu::onednn_bf16_gemm_available();
}

}  // namespace mambalm::ops
