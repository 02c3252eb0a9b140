// Checkpoints of a training run: RUN/checkpoints/step-NNNNNNNN/ is a complete model directory
// (config.json + model.safetensors, loadable by generate, forward and transformers) plus
// optimizer.safetensors (AdamW moments) and trainer_state.json. A checkpoint is assembled in a
// temporary directory, every file fsync'ed, then renamed into place, and RUN/checkpoints/latest
// is replaced atomically: a kill at any moment leaves either the old or the new checkpoint.
// Each checkpoint records the id of the run that wrote it (train/run_dir.h), so a resume never
// picks up another run's checkpoint.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "train/optimizer.h"

namespace mambalm {

struct TrainerState {
  int64_t step = 0;             // optimizer steps completed
  int64_t samples_seen = 0;     // training windows consumed (the data stream position)
  int64_t tokens_seen = 0;
  nlohmann::json config;        // the training options, to refuse resuming with different ones
  std::string run_id;           // the run that wrote it ("" in checkpoints of older versions)
};

// A checkpoint's content in host memory, taken between two steps (snapshot_checkpoint) so that
// writing it (write_checkpoint) may go on while training does.
struct CheckpointSnapshot {
  NamedTensors weights;          // Model::host_weights(F32)
  ModelConfig config;
  NamedTensors optimizer_state;  // copies: no later step changes them
  int64_t optimizer_steps = 0;
  TrainerState state;
  std::string tokenizer_dir;
};
// `optimizer_state` is Optimizer::state_tensors() (gathered from every rank first in a
// data-parallel run, where only rank 0 writes). The tokenizer of `tokenizer_dir` (the model
// directory training started from), if it has one, travels with every checkpoint so that each is
// a complete model directory.
CheckpointSnapshot snapshot_checkpoint(const Model& model, NamedTensors optimizer_state, int64_t optimizer_steps,
                                       const TrainerState& state, const std::string& tokenizer_dir = "");
// Writes the snapshot as the checkpoint for its step and points `latest` at it; returns its
// directory. Safe on another thread than the one training.
std::string write_checkpoint(const std::string& run_dir, const CheckpointSnapshot& snapshot);

// The checkpoint a resume of run `run_id` continues from, or "" when the run has none: the one
// `latest` names; when that one is missing or damaged (unreadable state, truncated weights or
// optimizer file), the newest complete one before it, with a warning on stderr for each one
// skipped. Checkpoints of another run are never chosen; checkpoints without a run id (older
// versions) only when `accept_legacy`. Throws when checkpoints exist but none is usable.
std::string resume_checkpoint(const std::string& run_dir, const std::string& run_id, bool accept_legacy);

// Removes what interrupted checkpoint writes left behind (checkpoints/.tmp-*, latest.tmp-*).
// Call only while holding the run's lock (no other process is writing then).
void remove_checkpoint_leftovers(const std::string& run_dir);

// Keeps the newest `keep` checkpoint directories (and always the one `latest` names), removing
// older ones; keep <= 0 keeps all. Returns how many were removed.
int prune_checkpoints(const std::string& run_dir, int64_t keep);

// True when the run directory holds at least one checkpoint directory (complete or not).
bool has_checkpoints(const std::string& run_dir);

// Reads optimizer state and trainer state of a checkpoint directory into `opt` and returns the
// trainer state (the model itself loads with Model::load(dir)).
TrainerState load_checkpoint_state(const std::string& checkpoint_dir, Optimizer& opt);

}  // namespace mambalm
