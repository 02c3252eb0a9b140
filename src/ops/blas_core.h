// Which kernels OpenBLAS (the CPU backend's sgemm, used by prefill and training) runs here.
// OpenBLAS picks them once, when the library loads: from the CPU, or from OPENBLAS_CORETYPE when
// that is set. Some environments set it (the machines of this project's sessions export
// OPENBLAS_CORETYPE=Haswell: 8-wide AVX2 kernels on a CPU OpenBLAS itself would run with its
// 16-wide AVX-512 "Cooperlake" kernels, f32 prefill 319 vs 438 tokens/s on llama 134M, one
// thread; bench/NOTES.md), so `mambalm --version` says which core is in use.
#pragma once
#include <string>

namespace mambalm::ops {

// The core OpenBLAS runs now ("Haswell", "SkylakeX", "Cooperlake", ...).
std::string openblas_core();

// True when the prefill with bf16 weights runs oneDNN's bf16 GEMM here (AVX512-BF16 and
// libdnnl.so.2 found; ops/cpu/onednn_gemm.h), rounding x to bf16.
bool onednn_bf16_prefill();

}  // namespace mambalm::ops
