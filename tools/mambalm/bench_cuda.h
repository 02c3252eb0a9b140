// The GPU half of `mambalm bench` (see bench_cuda.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mambalm::cli {

struct BenchCudaOptions {
  std::vector<std::string> presets;  // the first is the baseline of the ratio table
  DType dtype = DType::BF16;
  std::vector<int64_t> contexts{1024};
  std::vector<int64_t> batches{1};
  bool max_batch = true;    // also measure the largest batch that fits in device memory
  int64_t batch_cap = 4096;  // ... but not beyond this
  int64_t gen = 32;             // timed decode steps per configuration
  int64_t prefill_chunk = 8192;  // tokens per prefill forward
  bool graphs = true;
  bool profile = false;
  bool prefill = true;   // time a prefill per context (off: decode only, e.g. under a profiler)  // per-stage breakdown of decode steps (uncaptured)
  uint64_t seed = 0;
  std::string json_path;
};

int bench_cuda(const BenchCudaOptions& o);

}  // namespace mambalm::cli
