// The study's training phase: the four families at the scale's matched presets (vocabulary
// from the study's tokenizer), each initialised from the same seed and trained on the same
// data in the same order with the same schedule, under DIR/train/<family>/:
//   init/   the random initial model directory (written atomically: built in init.tmp, renamed)
//   run/    the trainer's run directory: metrics.jsonl (loss curve), checkpoints/
// Training always continues the run directory's latest checkpoint (the trainer's resume), so a
// killed study picks up where it stopped. Each family has its own done-marker
// (DIR/train/<family>/done.json); the phase's marker follows the last one.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "study/study_plan.h"

namespace mambalm::study {

// Thrown when SIGINT/SIGTERM stopped training after a checkpoint: the CLI exits 128 + signal,
// and a rerun resumes.
class StudyInterrupted : public Error {
 public:
  StudyInterrupted(const std::string& what, int signal) : Error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

nlohmann::json run_train_phase(const StudyPlan& plan);

// The final checkpoint of a family (a complete model directory with its tokenizer).
std::string final_model_dir(const StudyPlan& plan, const std::string& family);
// DIR/train/<family>/run/metrics.jsonl
std::string metrics_path(const StudyPlan& plan, const std::string& family);

}  // namespace mambalm::study
