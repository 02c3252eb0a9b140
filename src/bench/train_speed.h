// Training throughput (`mambalm bench --train`): for each preset, forward + backward + AdamW
// steps on random tokens at a fixed sequence length and micro-batch, timed after warm-up steps;
// tokens/s, model TFLOP/s and MFU (FLOPs counted by Model::training_flops_per_token, against the
// device's measured matrix rate), and the device memory the run held. The presets hybrid-48l,
// mamba2-48l and transformer-24x are the shapes of the PyTorch peer (../shared/peers/train_anchor.py).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"

namespace mambalm::bench {

struct TrainSpeedOptions {
  std::vector<std::string> presets;
  Device device = Device::CUDA;
  DType dtype = DType::BF16;  // matrix operands (F32: exact fp32 training)
  int64_t seq_len = 4096;
  int64_t micro_batch = 4;
  int64_t warmup = 3;  // untimed steps first (workspace planning, cuBLAS heuristics)
  int64_t steps = 8;   // timed steps
  bool timed_gemms = true;  // as `mambalm train --gemm-algos`
  bool recompute = false;
  unsigned keep_activations = 0;  // KeepKinds (model/layer.h)
  bool profile = false;  // one extra step timed stage by stage (forward / backward per layer kind, head, optimizer)
  // Targets drawn apart from the ids instead of the next id: a model that could see the next
  // input (a causal leak) then gains nothing, while memorising the one batch is as easy as before.
  bool unrelated_targets = false;
  uint64_t seed = 0;
};

// One JSON object per preset: step_ms, tokens_per_s, model_tflops, mfu, peak_tflops, the
// memory held and the last loss; also printed as one table row each.
nlohmann::json run_train_speed(const TrainSpeedOptions& options, std::FILE* out = stdout);

}  // namespace mambalm::bench
