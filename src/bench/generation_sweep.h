// The study's generation-speed experiment on one GPU (`mambalm bench --device cuda`): for each
// preset, context length and batch size, prefill and graph-replayed batched decode are timed,
// device memory is planned so the largest batch that fits is measured too, batch-1 decode is
// compared with its bandwidth floor, and the presets' best throughputs are compared in a ratio
// table. Needs the CUDA backend; a CPU-only build fails on the first device call with a
// one-line "built without CUDA" error.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace mambalm::bench {

struct GenerationSweepOptions {
  std::vector<std::string> presets;  // the first is the baseline of the ratio table
  DType dtype = DType::BF16;         // weights and KV cache
  std::vector<int64_t> contexts{1024};
  std::vector<int64_t> batches{1};  // ascending
  bool max_batch = true;            // also measure the largest batch that fits in device memory
  int64_t batch_cap = 4096;         // ... but not beyond this
  int64_t gen = 32;                 // timed decode steps per configuration
  int64_t prefill_chunk = 8192;     // tokens per prefill forward
  bool graphs = true;               // replay decode steps as CUDA graphs
  bool profile = false;             // per-stage breakdown of decode steps (uncaptured)
  bool prefill = true;              // time a prefill per context (off: decode only, e.g. under a profiler)
  uint64_t seed = 0;
};

// The best decode throughput at one context, over the batches that fit.
struct BestThroughput {
  int64_t context = 0, batch = 0;
  double tokens_per_s = 0, kv_gb = 0, state_gb = 0;
  bool memory_bound = false;  // the next batch did not fit
};

struct GenerationSweepResult {
  // Per preset name: dtype, copy bandwidth, weight bytes and every measurement ("rows").
  nlohmann::json json;
  std::vector<std::vector<BestThroughput>> best;  // per preset (options order), per context
};

// Runs the sweep and reports it on `out` as it goes: one line per measurement, a best-batch
// table per preset, then the ratio table against the first preset. Unknown preset names fail
// before the device is touched.
GenerationSweepResult run_generation_sweep(const GenerationSweepOptions& options, std::FILE* out = stdout);

}  // namespace mambalm::bench
