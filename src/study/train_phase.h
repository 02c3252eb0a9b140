// The study's training phase: the four families at the scale's matched presets (vocabulary
// from the study's tokenizer), each initialised from the same seed and trained on the same
// data in the same order with the same schedule, under DIR/train/<family>/:
//   init/   the random initial model directory (written atomically: built in init.tmp, renamed)
//   run/    the trainer's run directory: metrics.jsonl (loss curve), checkpoints/
// Training always continues the run directory's latest checkpoint (the trainer's resume), so a
// killed study picks up where it stopped. Each family has its own done-marker
// (DIR/train/<family>/done.json); the phase's marker (DIR/train/done.json) is written once all
// four families' markers match, whether they were trained in this run or, with --families,
// in others whose outputs were merged here (docs/study.md, "Running `small` on GPUs").
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

// The train phase's fingerprint (its settings and the data phase's), computed: the phases after
// it depend on this, not on train/done.json, so that one family can go on alone.
std::string train_fingerprint(const StudyPlan& plan);
// Throws unless DIR/train/<family>/done.json is there and matches: evaluation and the speed
// phase read that family's final checkpoint.
void require_trained(const StudyPlan& plan, const std::string& family);

// The final checkpoint of a family (a complete model directory with its tokenizer).
std::string final_model_dir(const StudyPlan& plan, const std::string& family);
// DIR/train/<family>/run/metrics.jsonl
std::string metrics_path(const StudyPlan& plan, const std::string& family);

}  // namespace mambalm::study
