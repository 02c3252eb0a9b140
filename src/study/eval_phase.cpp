#include "study/eval_phase.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "eval/scoring.h"
#include "eval/task_table.h"
#include "io/atomic_file.h"
#include "model/model.h"
#include "study/data_phase.h"
#include "study/phase_marker.h"
#include "study/train_phase.h"
#include "tokenizer/tokenizer.h"

namespace mambalm::study {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> heldout_texts(const StudyPlan& plan) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(heldout_text_dir(plan)))
    if (e.path().extension() == ".txt") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  if (static_cast<int64_t>(files.size()) > plan.heldout_eval_docs) files.resize(static_cast<size_t>(plan.heldout_eval_docs));
  return files;
}

// The parts of a task's result the report reads (metrics and per-bucket accuracy), without
// the example generations and timings.
nlohmann::json keep(const nlohmann::json& r) {
  nlohmann::json out = {{"metrics", r.value("metrics", nlohmann::json::object())}};
  if (r.contains("breakdown")) out["breakdown"] = r["breakdown"];
  if (r.contains("memory")) out["memory"] = r["memory"];
  if (r.contains("examples")) out["examples"] = r["examples"];
  return out;
}

nlohmann::json evaluate_family(const StudyPlan& plan, const std::string& family) {
  const std::string dir = final_model_dir(plan, family);
  Model model = Model::load(dir);
  // On CUDA the weights' matrices are bf16, as `mambalm generate --device cuda` places them, and
  // the scorer runs every forward there (eval/scoring.h).
  if (plan.device == Device::CUDA) model.to_device(Device::CUDA, DType::BF16);
  std::unique_ptr<Tokenizer> tok = open_tokenizer(dir);
  nlohmann::json out = nlohmann::json::object();
  eval::ScorerOptions base;
  if (plan.device == Device::CUDA) {  // wider batches for the GPU (one batch's logits <= 2 GiB)
    base.batch = 32;
    base.logits_budget_bytes = int64_t{2} << 30;
  }

  // Perplexity: every family sees the same windows of the training length.
  eval::ScorerOptions windowed = base;
  windowed.max_length = plan.seq_len;
  eval::Scorer ppl_scorer(model, tok.get(), windowed);
  eval::TaskOptions ppl;
  ppl.text_files = heldout_texts(plan);
  out["perplexity"] = keep(eval::run_task("perplexity", ppl_scorer, ppl, false).json);

  eval::Scorer scorer(model, tok.get(), base);
  eval::TaskOptions pb;
  pb.seed = 1;
  pb.lengths = plan.eval_phonebook_tokens;
  pb.depths = plan.eval_phonebook_depths;
  pb.samples_per_cell = plan.eval_samples;
  pb.shots = 1;
  // mambalm's own format (phonebook_depth), the one the training mix teaches; results keep the
  // study's labels
  out["phonebook"] = keep(eval::run_task("phonebook_depth", scorer, pb, false).json);
  pb.reversed = true;
  out["phonebook_reversed"] = keep(eval::run_task("phonebook_depth", scorer, pb, false).json);

  eval::TaskOptions mq;
  mq.seed = 2;
  mq.lengths = plan.eval_mqar_pairs;
  mq.samples_per_cell = plan.eval_samples;
  out["mqar"] = keep(eval::run_task("mqar", scorer, mq, false).json);

  eval::TaskOptions sc;
  sc.seed = 3;
  sc.lengths = plan.eval_copy_items;
  sc.samples_per_cell = plan.eval_samples;
  out["selective_copy"] = keep(eval::run_task("selective_copy", scorer, sc, false).json);

  // Multiple choice, the same questions in both formats: cloze (each choice's text scored) and
  // letter (choices listed A-D, the letter scored), k-shot, as lm-eval scores MMLU.
  eval::TaskOptions mc;
  mc.seed = 4;
  mc.samples_per_cell = plan.eval_mc_questions;
  mc.lengths = std::vector<int64_t>{plan.mc_facts};
  mc.shots = plan.mc_shots;
  for (const char* format : {"cloze", "letter"}) {
    mc.format = format;
    nlohmann::json r = eval::run_task("facts_mc", scorer, mc, false).json;
    r.erase("predictions");
    out[std::string("mc_") + format] = keep(r);
  }
  return out;
}

}  // namespace

nlohmann::json run_eval_phase(const StudyPlan& plan) {
  nlohmann::json inputs = plan.eval_settings();
  inputs["train"] = train_fingerprint(plan);
  const std::string fp = fingerprint_of(inputs);
  if (phase_done(plan.out_dir, "eval", fp)) {
    std::printf("eval: done (%s)\n", marker_path(plan.out_dir, "eval").c_str());
    return done_summary(plan.out_dir, "eval");
  }
  nlohmann::json summary = nlohmann::json::object();
  std::vector<std::string> waiting;
  for (const std::string& family : families()) {
    const std::string phase = "eval/" + family;
    nlohmann::json family_inputs = inputs;
    family_inputs["family"] = family;
    const std::string family_fp = fingerprint_of(family_inputs);
    if (!plan.runs(family)) {  // --families: another run's, merged here, or not done yet
      if (marker_matches(plan.out_dir, phase, family_fp))
        summary[family] = done_summary(plan.out_dir, phase);
      else
        waiting.push_back(family);
      continue;
    }
    if (phase_done(plan.out_dir, phase, family_fp)) {
      std::printf("eval %s: done\n", family.c_str());
      summary[family] = done_summary(plan.out_dir, phase);
      continue;
    }
    require_trained(plan, family);
    std::printf("eval %s (%s)\n", family.c_str(), plan.device == Device::CUDA ? "cuda" : "cpu");
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    summary[family] = evaluate_family(plan, family);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const nlohmann::json& p = summary[family]["perplexity"]["metrics"];
    std::printf("eval %s: held-out perplexity %.3f, %.4f bits per byte; phonebook %.3f, reversed %.3f, mqar %.3f, copy %.3f; "
                "multiple choice cloze %.3f, letter %.3f (%.0f s)\n",
                family.c_str(), p.value("token_perplexity", 0.0), p.value("bits_per_byte", 0.0),
                summary[family]["phonebook"]["metrics"].value("exact_match", 0.0),
                summary[family]["phonebook_reversed"]["metrics"].value("exact_match", 0.0),
                summary[family]["mqar"]["metrics"].value("exact_match", 0.0),
                summary[family]["selective_copy"]["metrics"].value("exact_match", 0.0),
                summary[family]["mc_cloze"]["metrics"].value("acc", 0.0), summary[family]["mc_letter"]["metrics"].value("acc", 0.0), seconds);
    std::fflush(stdout);
    mark_done(plan.out_dir, phase, family_fp, summary[family]);
  }
  if (!waiting.empty()) {
    std::printf("eval: no eval/done.json yet: %s not done here (--families)\n", join_names(waiting).c_str());
    return summary;
  }
  mark_done(plan.out_dir, "eval", fp, summary);
  return summary;
}

}  // namespace mambalm::study
