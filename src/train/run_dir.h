// A training run directory belongs to one run: RUN/run.json records which model, data and
// options it was started with and the run's id (checkpoints carry the id too), RUN/lock keeps a
// second process out while the run is live, and metrics.jsonl holds each step once.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/data_blend.h"

namespace mambalm {

// An exclusive flock on RUN/lock for as long as the object lives. The kernel drops it when the
// process ends in any way (kill -9 included), so there is never a stale lock to clean up.
class RunLock {
 public:
  explicit RunLock(const std::string& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

// What a run is made of, as recorded in run.json: the model directory it started from and the
// training and validation data (blend_identity()), and `options`, the training options that
// change the result (TrainConfig::identity()).
nlohmann::json run_identity(const std::string& model_dir, const nlohmann::json& train_data, const nlohmann::json& valid_data,
                            const nlohmann::json& options);

// The data of a run, each dataset with a fingerprint of its files (io/fingerprint.h): one part
// of weight 1 as {path, idx, bin} (as single datasets have always been recorded), a blend as
// {"blend": [{weight, path, idx, bin}, ...]}, no parts as null.
nlohmann::json blend_identity(const std::vector<BlendPart>& parts);

struct RunStart {
  std::string run_id;
  bool legacy = false;  // a directory of an older version (no run.json when adopted): its checkpoints have no run id
};

// Opens the run in `run_dir` (the caller holds its RunLock). Removes leftovers of interrupted
// writes. A fresh run (resume == false) refuses a directory that already holds a run (its
// checkpoints or metrics), and writes run.json. A resume refuses when run.json records another
// model, other data or different options, naming what differs.
// With `overwrite` (and no resume) a run already in the directory is removed first: its
// run.json, metrics.jsonl and checkpoints.
RunStart open_run(const std::string& run_dir, const nlohmann::json& identity, bool resume, bool overwrite = false);

// Throws naming `where` and the first option that differs between the options saved in a
// checkpoint and `now`. Options an older version did not record are not compared. "steps" may
// grow (a resume that extends the run; the schedule then ends at the new step count), not shrink
// below the step reached (`step_reached`, when known).
void check_same_options(const nlohmann::json& saved, const nlohmann::json& now, const std::string& where);

// Keeps only the rows of RUN/metrics.jsonl with step <= `step` (all of them go when step is 0),
// dropping a torn last line; rewritten atomically. After a resume from step N the steps after N
// are logged again, once.
void truncate_metrics(const std::string& run_dir, int64_t step);

}  // namespace mambalm
