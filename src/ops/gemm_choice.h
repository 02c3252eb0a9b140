// Which cuBLASLt algorithm each GEMM shape of a process runs: what the CUDA GEMMs chose (timed
// or the heuristic's first), and what a resumed training run pins so that the same shapes run
// the same algorithms, hence the same bits (ops::gemm_choices, ops::pin_gemm_choices). The text
// form, RUN/gemm_choices.txt, is train/gemm_choices.h's.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace mambalm::ops {

struct GemmChoice {
  std::array<uint64_t, 8> algo{};  // cublasLtMatmulAlgo_t's opaque words, as cuBLASLt filled them
  int rank = 0, of = 1;            // its place in the heuristic's list and the list's length (0/8: the first)
};

struct GemmChoices {
  std::string device;                         // the GPU's name and cuBLASLt's version: what the algorithms are valid for
  std::map<std::string, GemmChoice> by_shape;  // by the plan's shape key
};

}  // namespace mambalm::ops
