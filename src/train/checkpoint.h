// Checkpoints of a training run: RUN/checkpoints/step-NNNNNNNN/ is a complete model directory
// (config.json + model.safetensors, loadable by generate, forward and transformers) plus
// optimizer.safetensors (AdamW moments) and trainer_state.json. A checkpoint is assembled in a
// temporary directory, every file fsync'ed, then renamed into place, and RUN/checkpoints/latest
// is replaced atomically: a kill at any moment leaves either the old or the new checkpoint.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "train/adamw.h"

namespace mambalm {

struct TrainerState {
  int64_t step = 0;             // optimizer steps completed
  int64_t samples_seen = 0;     // training windows consumed (the data stream position)
  int64_t tokens_seen = 0;
  nlohmann::json config;        // the training options, to refuse resuming with different ones
};

// Writes the checkpoint for state.step and points `latest` at it; returns its directory.
// The tokenizer of `tokenizer_dir` (the model directory training started from), if it has one,
// travels with every checkpoint so that each is a complete model directory.
std::string save_checkpoint(const std::string& run_dir, const Model& model, const AdamW& opt, const TrainerState& state,
                            const std::string& tokenizer_dir = "");

// The newest complete checkpoint directory, or "" when the run has none.
std::string latest_checkpoint(const std::string& run_dir);

// Reads optimizer state and trainer state of a checkpoint directory into `opt` and returns the
// trainer state (the model itself loads with Model::load(dir)).
TrainerState load_checkpoint_state(const std::string& checkpoint_dir, AdamW& opt);

}  // namespace mambalm
