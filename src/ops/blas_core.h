// Which kernels OpenBLAS (the CPU backend's sgemm, used by prefill and training) runs here.
// OpenBLAS picks them once, when the library loads: from the CPU, or from OPENBLAS_CORETYPE when
// that is set. Some environments set it (the machines of this project's sessions export
// OPENBLAS_CORETYPE=Haswell: 8-wide AVX2 kernels on a CPU OpenBLAS itself would run with its
// 16-wide AVX-512 "Cooperlake" kernels, f32 prefill 319 vs 438 tokens/s on llama 134M, one
// thread; bench/NOTES.md), so `mambalm --version` says which core is in use.
#pragma once
#include <string>

#include "ops/cpu/cpu_features.h"

namespace mambalm::ops {

// The core OpenBLAS runs now ("Haswell", "SkylakeX", "Cooperlake", ...).
std::string openblas_core();

// OpenBLAS 0.3.21 (Debian 12) picks its kernels by CPU family and model, and gives a model it
// does not know its oldest x86-64 ones: on an Emerald Rapids Xeon (family 6, model 207)
// "Prescott", SSE3 sgemm, with f32 prefill 3-5x slower than on its AVX-512 kernels
// (bench/NOTES.md). The core to run instead, named as OPENBLAS_CORETYPE takes it, when `current`
// has narrower vectors than the best of this CPU's instruction sets (`best`: Cooperlake for
// AVX512-BF16, SkylakeX for AVX-512, Haswell for AVX2), else null.
const char* openblas_core_to_force(const std::string& current, cpu::Isa best);
// The same for this process: null when OPENBLAS_CORETYPE is set (the user's choice stands) or
// the core in use fits the CPU. The CLI sets OPENBLAS_CORETYPE to it and starts itself again
// (tools/mambalm/main.cpp), since OpenBLAS reads the variable only when it loads.
const char* openblas_core_to_force();

// True when the prefill with bf16 weights runs oneDNN's bf16 GEMM here (AVX512-BF16 and
// libdnnl.so.2 found; ops/cpu/onednn_gemm.h), rounding x to bf16.
bool onednn_bf16_prefill();

}  // namespace mambalm::ops
