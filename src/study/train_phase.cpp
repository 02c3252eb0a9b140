#include "study/train_phase.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "config/presets.h"
#include "model/init.h"
#include "model/model.h"
#include "study/data_phase.h"
#include "study/phase_marker.h"
#include "tokenizer/install.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

namespace mambalm::study {

namespace fs = std::filesystem;

namespace {

fs::path family_dir(const StudyPlan& plan, const std::string& family) { return fs::path(plan.out_dir) / "train" / family; }

int64_t non_embedding_parameters(const ModelConfig& c) {
  return Model(c).parameter_count() - c.vocab_size * c.d_model * (c.tie_embeddings ? 1 : 2);
}

// The preset with the study tokenizer's vocabulary and special tokens.
ModelConfig family_config(const StudyPlan& plan, const std::string& family, const Tokenizer& tok) {
  ModelConfig cfg = preset_config(plan.preset(family));
  cfg.vocab_size = padded_vocab(tok.vocab_size());
  cfg.bos_token_id = tok.bos_id();
  cfg.eos_token_id = tok.eos_id();
  cfg.pad_token_id = tok.pad_id();
  cfg.validate("study");
  return cfg;
}

// DIR/train/<family>/init, written in a scratch directory and renamed into place when complete.
std::string initial_model(const StudyPlan& plan, const std::string& family, const ModelConfig& cfg) {
  const fs::path dir = family_dir(plan, family) / "init";
  if (fs::exists(dir / "config.json")) return dir.string();
  const fs::path tmp = family_dir(plan, family) / "init.tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  Model model(cfg);
  write_random_model(model, plan.seed, DType::F32, tmp.string(), false);
  install_tokenizer(tokenizer_path(plan), tmp.string());
  fs::rename(tmp, dir);
  return dir.string();
}

TrainConfig train_config(const StudyPlan& plan, const std::string& model_dir, const std::string& run_dir) {
  TrainConfig c;
  c.model_dir = model_dir;
  c.data = train_prefix(plan);
  c.valid_data = heldout_prefix(plan);
  c.run_dir = run_dir;
  c.seq_len = plan.seq_len;
  c.micro_batch = plan.micro_batch;
  c.steps = plan.steps;
  c.schedule.kind = ScheduleKind::Cosine;
  c.schedule.max_lr = plan.lr;
  c.schedule.min_lr = plan.lr / 10;
  c.schedule.warmup_steps = std::min(plan.warmup, plan.steps / 10);
  c.schedule.total_steps = plan.steps;
  c.seed = plan.seed;
  c.log_interval = std::max<int64_t>(1, plan.steps / 10);
  // Five held-out points on the loss curve; a short run (the CI test's 12 steps) validates only
  // at its end: there five validations of 4 batches cost more than the training steps between them.
  c.val_interval = plan.steps < 50 ? plan.steps : plan.steps / 5;
  c.val_batches = 4;
  c.checkpoint_interval = std::min(plan.checkpoint_interval, std::max<int64_t>(1, plan.steps / 2));
  c.resume = true;  // a fresh run directory starts from the model; a used one from its latest checkpoint
  c.device = plan.device;
  c.matrix_dtype = plan.device == Device::CUDA ? DType::BF16 : DType::F32;
  // The study's models are small beside the device: keeping every activation (instead of
  // recomputing the cheap ones in backward) costs memory they have and saves ~7% of a step.
  c.keep_activations = kKeepAll;
  return c;
}

nlohmann::json family_inputs(const StudyPlan& plan, const std::string& family) {
  nlohmann::json inputs = plan.train_settings();
  inputs["data"] = done_fingerprint(plan.out_dir, "data");
  inputs["preset"] = plan.preset(family);
  return inputs;
}

// DIR/train/<family>/run/checkpoints/step-N, relative to the study directory: a family's
// marker may have been written in another directory (--families) and merged here.
std::string final_model_relative(const StudyPlan& plan, const std::string& family) {
  return fs::relative(final_model_dir(plan, family), plan.out_dir).string();
}

nlohmann::json train_family(const StudyPlan& plan, const std::string& family, const Tokenizer& tok) {
  const std::string phase = "train/" + family;
  const std::string fp = fingerprint_of(family_inputs(plan, family));
  if (phase_done(plan.out_dir, phase, fp)) {
    std::printf("train %s: done\n", family.c_str());
    return done_summary(plan.out_dir, phase);
  }
  const ModelConfig cfg = family_config(plan, family, tok);
  std::printf("train %s: %s, pattern %s, %lld steps of %lld x %lld tokens\n", family.c_str(), plan.preset(family).c_str(),
              cfg.pattern.c_str(), static_cast<long long>(plan.steps), static_cast<long long>(plan.micro_batch),
              static_cast<long long>(plan.seq_len));
  std::fflush(stdout);
  const std::string model_dir = initial_model(plan, family, cfg);
  const TrainConfig tc = train_config(plan, model_dir, (family_dir(plan, family) / "run").string());
  const auto start = std::chrono::steady_clock::now();
  const TrainResult r = train(tc);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (r.interrupted)
    throw StudyInterrupted("study: training of " + family + " interrupted at step " + std::to_string(r.steps_done) +
                               "; rerun the same command to resume",
                           r.stop_signal);
  const nlohmann::json summary = {{"preset", plan.preset(family)},
                                  {"model_type", cfg.model_type},
                                  {"pattern", cfg.pattern},
                                  {"parameters", Model(cfg).parameter_count()},
                                  {"non_embedding_parameters", non_embedding_parameters(cfg)},
                                  {"steps", r.steps_done},
                                  {"tokens", r.steps_done * plan.micro_batch * plan.seq_len},
                                  {"final_loss", r.last_loss},
                                  {"final_val_loss", r.last_val_loss},
                                  {"seconds_last_session", seconds},
                                  {"model", final_model_relative(plan, family)}};
  mark_done(plan.out_dir, phase, fp, summary);
  return summary;
}

}  // namespace

std::string final_model_dir(const StudyPlan& plan, const std::string& family) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(plan.steps));
  return (family_dir(plan, family) / "run" / "checkpoints" / name).string();
}

std::string metrics_path(const StudyPlan& plan, const std::string& family) {
  return (family_dir(plan, family) / "run" / "metrics.jsonl").string();
}

std::string train_fingerprint(const StudyPlan& plan) {
  nlohmann::json inputs = plan.train_settings();
  inputs["data"] = done_fingerprint(plan.out_dir, "data");
  return fingerprint_of(inputs);
}

void require_trained(const StudyPlan& plan, const std::string& family) {
  const std::string phase = "train/" + family;
  check(phase_done(plan.out_dir, phase, fingerprint_of(family_inputs(plan, family))), plan.out_dir,
        family + " has not finished training", "run it first: --phase train --families " + family);
}

nlohmann::json run_train_phase(const StudyPlan& plan) {
  const std::string fp = train_fingerprint(plan);
  if (phase_done(plan.out_dir, "train", fp)) {
    std::printf("train: done (%s)\n", marker_path(plan.out_dir, "train").c_str());
    return done_summary(plan.out_dir, "train");
  }
  std::unique_ptr<Tokenizer> tok = open_tokenizer(tokenizer_path(plan));
  nlohmann::json summary = nlohmann::json::object();
  std::vector<std::string> waiting;
  for (const std::string& family : families()) {
    if (!plan.runs(family)) {  // --families: another run's, merged here, or not done yet
      if (marker_matches(plan.out_dir, "train/" + family, fingerprint_of(family_inputs(plan, family))))
        summary[family] = done_summary(plan.out_dir, "train/" + family);
      else
        waiting.push_back(family);
      continue;
    }
    summary[family] = train_family(plan, family, *tok);
  }
  if (!waiting.empty()) {
    std::printf("train: no train/done.json yet: %s not done here (--families)\n", join_names(waiting).c_str());
    return summary;
  }
  mark_done(plan.out_dir, "train", fp, summary);
  return summary;
}

}  // namespace mambalm::study
