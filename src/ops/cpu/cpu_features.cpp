// Run-time CPU feature detection (cpu_features.h): GCC/Clang's __builtin_cpu_supports on x86,
// nothing to detect on AArch64 (Advanced SIMD is part of the base architecture).
#include "ops/cpu/cpu_features.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace mambalm::ops::cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
    case Isa::Neon: return "neon";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if defined(__x86_64__)
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::Avx512:
      return isa_supported(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
    case Isa::Avx512Bf16:
      return isa_supported(Isa::Avx512) && __builtin_cpu_supports("avx512bf16");
#endif
#if defined(__aarch64__)
    case Isa::Neon: return true;
#endif
    default: return false;
  }
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__)
  return isa_supported(Isa::Avx512) && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

namespace {

Isa detect() {
  if (const char* env = std::getenv("MAMBALM_CPU_ISA"); env && *env) {
    const std::string want = env;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Neon}) {
      if (want != isa_name(isa)) continue;
      check(isa_supported(isa), "MAMBALM_CPU_ISA", "'" + want + "' is not supported by this CPU or binary",
            "unset it to use the best supported variant");
      return isa;
    }
    fail("MAMBALM_CPU_ISA", "unknown value '" + want + "'", "use scalar, avx2, avx512, avx512bf16 or neon");
  }
  return best_supported_isa();
}

}  // namespace

Isa best_supported_isa() {
  for (Isa isa : {Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2, Isa::Neon})
    if (isa_supported(isa)) return isa;
  return Isa::Scalar;
}

Isa active_isa() {
  static const Isa isa = detect();
  return isa;
}

bool active_isa_forced() {
  static const bool forced = [] {
    const char* env = std::getenv("MAMBALM_CPU_ISA");
    return env && *env;
  }();
  return forced;
}

}  // namespace mambalm::ops::cpu
