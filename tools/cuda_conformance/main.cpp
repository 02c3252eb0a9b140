// mambalm_cuda_conformance: every CUDA op against the CPU op (the reference backend) on fresh
// random inputs at the study's 8B layer shapes with short sequences, scored by normalised MSE
// ||cuda - cpu||^2 / ||cpu||^2 (computed in double). Thresholds and their reasons are in
// docs/numerics.md ("CUDA vs CPU"). CUDA outputs are poisoned with NaN before each call, so an
// element a kernel never writes fails the check. The cases live in cases_*.cpp, one group per
// file. Prints one table; exit status 1 if any case fails, 2 if no CUDA device is visible.
// Usage: mambalm_cuda_conformance [--seed N] [--quick] [--only GROUP[,GROUP...]]
//        mambalm_cuda_conformance --cudnn-graphs   (no GPU needed: builds the cuDNN attention
//        graphs up to the operation graph against the libcudnn.so.9 found; exit 1 on a failure)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "harness.h"
#include "ops/cuda/attention/cudnn_attention.h"
#include "harness_table.h"

using namespace conformance;

int main(int argc, char** argv) {
  uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  bool quick = false;
  std::string only;
  if (argc == 2 && !std::strcmp(argv[1], "--cudnn-graphs")) {
    const std::string r = ops::cuda::cudnn_attention_graph_check();
    std::printf("%s", r.c_str());
    return r.find("FAILED") == std::string::npos && r.rfind("cuDNN not available", 0) != 0 ? 0 : 1;
  }
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = "," + std::string(argv[++i]) + ",";
    else {
      std::fprintf(stderr, "usage: mambalm_cuda_conformance [--seed N] [--quick] [--only GROUP[,GROUP...]] | --cudnn-graphs\n");
      return 2;
    }
  }
  rng.seed(seed);
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "mambalm_cuda_conformance: no CUDA device visible; nothing checked\n");
    return 2;
  }
  try {
    std::printf("device: %s\nseed: %llu\n", cuda_device_summary().c_str(), (unsigned long long)seed);
    for (const CaseGroup& g : groups()) {
      if (!only.empty() && only.find("," + std::string(g.name) + ",") == std::string::npos) continue;
      std::printf("[%s]\n", g.name);
      g.run(quick);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mambalm_cuda_conformance: %s\n", e.what());
    return 1;
  }

  int failed = 0;
  std::printf("\n| op | shape | output | nmse | limit | ok | cuda ms | cpu ms |\n|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : table()) {
    failed += !r.ok();
    auto ms = [](double v) { return std::isfinite(v) ? std::to_string(v).substr(0, 7) : std::string("-"); };
    std::printf("| %s | %s | %s | %.2e | %.0e | %s | %s | %s |\n", r.op.c_str(), r.shape.c_str(),
                r.what.c_str(), r.err, r.limit, r.ok() ? "yes" : "**NO**", ms(r.gpu_ms).c_str(),
                ms(r.cpu_ms).c_str());
  }
  std::printf("\n%zu cases, %d failed (seed %llu)\n", table().size(), failed, (unsigned long long)seed);
  return failed ? 1 : 0;
}
