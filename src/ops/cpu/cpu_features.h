// Which SIMD instruction sets this CPU offers, detected once at run time, so that one binary
// (built for any -march) picks the widest kernel the machine runs. The decode kernels
// (ops/cpu/gemv.h) come in one variant per Isa, each compiled with a function-level target
// attribute; tests run every variant the machine supports, selected explicitly.
#pragma once

namespace mambalm::ops::cpu {

// Ordered: on x86 a later entry implies the earlier ones' kernels can run.
enum class Isa {
  Scalar,      // portable C++ (the reference the SIMD variants are tested against)
  Avx2,        // AVX2 + FMA + F16C (x86-64-v3)
  Avx512,      // AVX-512 F + BW + VL
  Avx512Bf16,  // the above + AVX512-BF16 (vdpbf16ps)
  Neon,        // AArch64 Advanced SIMD (always present on AArch64)
};

const char* isa_name(Isa isa);
// True when this CPU can run `isa`'s kernels and this binary contains them.
bool isa_supported(Isa isa);
// The widest variant this CPU and binary support (Avx512Bf16, Avx512, Avx2, Neon, else Scalar),
// whatever MAMBALM_CPU_ISA says.
Isa best_supported_isa();
// The variant the kernels use: the best supported one, or the one named by the environment
// variable MAMBALM_CPU_ISA (scalar|avx2|avx512|avx512bf16|neon; an unsupported name is an error),
// read once.
Isa active_isa();
// True when MAMBALM_CPU_ISA chose active_isa() (rather than detection).
bool active_isa_forced();
// True on an x86 CPU with AVX512-VNNI (vpdpwssd), which the AVX-512 variants' integer Q8 GEMM
// uses (gemm_q8.h); false elsewhere.
bool cpu_has_avx512_vnni();

}  // namespace mambalm::ops::cpu
