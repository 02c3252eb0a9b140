// The training loop: micro-batches of token windows, gradient accumulation, global-norm
// clipping, AdamW on a warm-up + cosine/WSD schedule, validation, JSON-lines metrics, atomic
// checkpoints and exact resume. Started by mpirun/srun or with RANK/WORLD_SIZE set, it trains
// data-parallel: each rank takes its part of every step's batch, gradients are summed over
// ranks and the optimizer state is sharded (train/sharded_adamw.h); docs/distributed.md. Ctrl-C (SIGINT/SIGTERM) finishes the step, checkpoints, exits
// (TrainResult::stop_signal: the CLI exits 128 + signal). The run directory: train/run_dir.h.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "train/adamw.h"
#include "train/lr_schedule.h"

namespace mambalm {

struct TrainConfig {
  std::string model_dir;   // where the initial weights come from
  std::string data;        // dataset prefix (PREFIX_train(+_valid) from `prepare`, or PREFIX) or a blend "0.7 A 0.3 B" (train/data_blend.h)
  std::string valid_data;  // explicit validation prefix or blend (optional)
  std::string run_dir;
  int64_t seq_len = 256;
  int64_t micro_batch = 8;
  int64_t grad_accum = 1;
  int64_t steps = 1000;
  LrSchedule schedule;
  AdamWConfig adamw;
  double clip = 1.0;
  uint64_t seed = 1234;
  int64_t log_interval = 10;
  int64_t val_interval = 100;  // 0 = only at the end
  int64_t val_batches = 8;
  int64_t checkpoint_interval = 500;  // 0 = only at the end
  bool resume = false;
  bool overwrite = false;  // a fresh run replaces a run already in run_dir (else refused)
  int64_t keep_last = 0;   // keep only the newest K checkpoints (0: all)
  std::string tensorboard_dir;  // also write the metrics as TensorBoard scalars there (empty: no)
  std::string run_file;  // RUN/run.toml's text, the options to repeat this run (empty: not written)
  bool timed_gemms = true;  // time cuBLASLt's candidates per GEMM shape (false: the heuristic's first; CUDA)
  std::string gemm_choices_file;  // repeat these GEMM algorithms (another run's gemm_choices.txt)
  bool recompute = false;
  unsigned keep_activations = 0;  // KeepKinds: also keep those of what backward recomputes (Model::set_keep_activations)
  bool pack_documents = true;  // mask attention / reset SSM state at document boundaries
  Device device = Device::CPU;
  DType matrix_dtype = DType::F32;  // BF16 (CUDA): mixed precision, F32 masters; F32: exact
  double peak_tflops = 0;           // the device's matrix rate for MFU (0: measured at start)
  int64_t profile_step = 0;         // take this step apart on stderr (train/step_profile.h; 0: none)

  // The options that must match for a resume to continue the same run (world_size: the number
  // of data-parallel ranks, which with micro_batch and grad_accum makes the batch).
  nlohmann::json identity(int world_size = 1) const;
};

struct TrainResult {
  int64_t steps_done = 0;
  double last_loss = 0;
  double last_val_loss = -1;
  bool interrupted = false;
  int stop_signal = 0;  // the signal that interrupted it (SIGINT, SIGTERM), when interrupted
};

TrainResult train(const TrainConfig& cfg);

}  // namespace mambalm
