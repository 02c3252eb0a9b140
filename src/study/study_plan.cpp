#include "study/study_plan.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace mambalm::study {

const std::vector<std::string>& families() {
  static const std::vector<std::string> names = {"transformer", "mamba", "mamba2", "hybrid"};
  return names;
}

bool StudyPlan::runs(const std::string& family) const {
  return only_families.empty() || std::find(only_families.begin(), only_families.end(), family) != only_families.end();
}

std::vector<std::string> parse_families(const std::vector<std::string>& names) {
  check(!names.empty(), "--families", "no family named", "valid: " + join_names(families()));
  for (const std::string& n : names)
    check(std::find(families().begin(), families().end(), n) != families().end(), "--families", "unknown family '" + n + "'",
          "valid: " + join_names(families()));
  std::vector<std::string> out;
  for (const std::string& f : families())
    if (std::find(names.begin(), names.end(), f) != names.end()) out.push_back(f);
  return out;
}

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string StudyPlan::preset(const std::string& family) const { return family + "-" + preset_size; }

StudyPlan plan_for_scale(const std::string& scale) {
  StudyPlan p;
  p.scale = scale;
  p.preset_size = scale == "small" ? "26m" : scale;
  if (scale == "tiny") {
    // ~0.44M non-embedding parameters (+0.13M embedding and head at 1024 pieces); sized for 2
    // CPU cores: ~0.6M training tokens per model, ~10 minutes for all four.
    p.vocab_size = 1024;
    p.tokenizer_sentences = 50000;
    p.seq_len = 256;
    p.micro_batch = 8;
    p.steps = 300;
    p.lr = 3e-3;
    p.warmup = 30;
    p.checkpoint_interval = 50;
    p.train_phonebook_tokens = {64, 128, 192};
    p.train_mqar_pairs = {4, 8, 16};
    p.train_copy_items = {16, 32, 64};
    p.eval_phonebook_tokens = {64, 128, 256, 512};
    p.eval_phonebook_depths = {0.0, 0.5, 1.0};
    p.eval_mqar_pairs = {4, 8, 16, 32};
    p.eval_copy_items = {16, 32, 64, 128};
    p.eval_samples = 8;
    // 2 solved questions + the asked one (~80 tokens each with this tokenizer: ~240 per
    // request, inside the training length); 16 questions x 2 formats x 4 choices x ~240
    // tokens = ~31K tokens per family: ~8 s for Mamba, ~4 s for the others on one loaded core.
    p.eval_mc_questions = 16;
    p.mc_shots = 2;
    p.heldout_eval_docs = 8;
    p.speed_contexts = {256, 1024, 4096};
  } else if (scale == "small" || scale == "base") {
    // small: ~26M non-embedding parameters (the <family>-26m presets), 1600 x 64 x 1024 = 105M
    // training tokens per model, so that the slowest family (Mamba) trains and evaluates inside
    // one 10-minute call on one H200 (measured rates in docs/study.md); base: ~190M,
    // 4000 x 32 x 1024 = 131M. The ~7M-token mix is repeated for many epochs (docs/study.md).
    const bool small = scale == "small";
    // 105M training tokens over a 5.3M-token corpus: with the default 20% retrieval share the
    // 7M-token mix repeats 15 times, and a first H200 run (2026-11-30) memorised it: validation
    // loss rose from step 320 on and no model answered one retrieval prompt (the phone numbers
    // came out well formed but wrong: the training instances, seen 15 times, were learned rather
    // than the lookup). 70% retrieval data makes a 21M-token mix: ~5 epochs, 8x the distinct
    // retrieval documents.
    if (small) p.synthetic_fraction = 0.7;
    p.vocab_size = 8192;
    p.tokenizer_sentences = 1000000;
    p.seq_len = 1024;
    p.micro_batch = small ? 64 : 32;
    p.steps = small ? 1600 : 4000;
    p.lr = small ? 1e-3 : 6e-4;
    p.warmup = small ? 100 : 200;
    p.checkpoint_interval = 200;
    p.train_phonebook_tokens = {256, 512, 1024};
    p.train_mqar_pairs = {8, 32, 64};
    p.train_copy_items = {64, 256, 512};
    p.eval_phonebook_tokens = {256, 512, 1024, 2048, 4096};
    // Evaluation sized for one H200 (--device cuda; the scorer runs on the model's device):
    // 32 samples per cell (accuracy steps of 1/32, standard error <= 0.09 per cell, <= 0.04
    // per length and format of the phonebook's 3 depths). Token counts per family: phonebook
    // 5 lengths x 3 depths x 32 x 2 formats = 960 prompts, ~1.7M prefill tokens and at most
    // 23K greedy steps (24 each); MQAR 160 prompts, <= 1.3K steps; selective copy 160 prompts,
    // ~0.2M prefill tokens, <= 3.2K steps; multiple choice 64 questions x 2 formats x 4
    // choices x ~450 tokens = 0.23M tokens batched; perplexity ~0.1M tokens batched. Decode
    // steps run uncaptured at batch 1 (~2 ms each for these 15-29-layer models, launch bound),
    // prefill in 512-token chunks (~3 ms each): at most ~75 s per family, ~5 minutes for the
    // four with loading. On the CPU the same cells take about an hour per family: pass
    // --eval-samples 4 there.
    p.eval_phonebook_depths = {0.0, 0.5, 1.0};
    p.eval_mqar_pairs = {8, 32, 64, 128, 256};
    p.eval_copy_items = {64, 256, 512, 1024, 2048};
    p.eval_samples = 32;
    p.eval_mc_questions = 64;
    p.mc_shots = 5;  // the study's 5-shot MMLU
    p.heldout_eval_docs = 17;
    p.speed_contexts = {1024, 4096, 16384};
  } else {
    fail("--scale", "unknown scale '" + scale + "'", "valid: tiny, small, base");
  }
  return p;
}

nlohmann::json StudyPlan::data_settings() const {
  return {{"corpus", corpus_dirs},
          {"vocab_size", vocab_size},
          {"tokenizer_sentences", tokenizer_sentences},
          {"heldout_every", heldout_every},
          {"synthetic_fraction", synthetic_fraction},
          {"mc_fraction", mc_fraction},
          {"mc_shots", mc_shots},
          {"mc_facts", mc_facts},
          {"train_phonebook_tokens", train_phonebook_tokens},
          {"train_mqar_pairs", train_mqar_pairs},
          {"train_copy_items", train_copy_items},
          {"seed", seed}};
}

nlohmann::json StudyPlan::train_settings() const {
  return {{"scale", scale},   {"device", device == Device::CUDA ? "cuda" : "cpu"},
          {"seq_len", seq_len}, {"micro_batch", micro_batch},
          {"steps", steps},   {"lr", lr},
          {"warmup", warmup}, {"seed", seed}};
}

nlohmann::json StudyPlan::eval_settings() const {
  return {{"phonebook_tokens", eval_phonebook_tokens}, {"phonebook_depths", eval_phonebook_depths},
          {"mqar_pairs", eval_mqar_pairs},           {"copy_items", eval_copy_items},
          {"samples", eval_samples},                 {"heldout_eval_docs", heldout_eval_docs},
          {"mc_questions", eval_mc_questions},       {"mc_shots", mc_shots},
          {"mc_facts", mc_facts},                    {"device", device == Device::CUDA ? "cuda" : "cpu"}};
}

nlohmann::json StudyPlan::speed_settings() const {
  return {{"contexts", speed_contexts},
          {"gen_tokens", speed_gen_tokens},
          {"scale", scale},
          {"device", device == Device::CUDA ? "cuda" : "cpu"}};
}

nlohmann::json StudyPlan::to_json() const {
  return {{"scale", scale},          {"out", out_dir},          {"data", data_settings()},
          {"train", train_settings()}, {"eval", eval_settings()}, {"speed", speed_settings()}};
}

std::string default_cache_dir() {
  if (const char* c = std::getenv("MAMBALM_CACHE"); c && *c) return c;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/mambalm";
}

std::vector<std::string> default_corpus_dirs() {
  std::vector<std::string> dirs = {default_cache_dir() + "/corpus"};
  if (std::filesystem::exists(default_cache_dir() + "/corpus-extra/.done")) dirs.push_back(default_cache_dir() + "/corpus-extra");
  return dirs;
}
std::string default_chart_library() { return default_cache_dir() + "/study/chart.umd.min.js"; }

}  // namespace mambalm::study
