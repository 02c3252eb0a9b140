#include "study/speed_phase.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/rng.h"
#include "infer/generate.h"
#include "model/model.h"
#include "model/state.h"
#include "study/phase_marker.h"
#include "study/train_phase.h"

namespace mambalm::study {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

nlohmann::json measure(Model& model, int64_t context, int64_t gen_tokens, uint64_t seed) {
  const ModelConfig& cfg = model.config();
  Rng rng(seed);
  std::vector<int32_t> prompt(static_cast<size_t>(context));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(cfg.vocab_size));
  SequenceState state(cfg, 1);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(model, state, prompt);
  const double prefill_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < gen_tokens; ++i) logits = decode_step(model, state, argmax(logits));
  const double decode_s = seconds_since(t0);
  const int64_t state_bytes = state.ssm_state_bytes(), kv_bytes = state.kv_cache_bytes();
  return {{"context", context},
          {"prefill_tokens_per_s", static_cast<double>(context) / prefill_s},
          {"decode_tokens_per_s", static_cast<double>(gen_tokens) / decode_s},
          {"decode_ms_per_token", 1e3 * decode_s / static_cast<double>(gen_tokens)},
          {"ssm_state_bytes", state_bytes},
          {"kv_cache_bytes", kv_bytes},
          {"memory_per_sequence_bytes", state_bytes + kv_bytes}};
}

}  // namespace

nlohmann::json run_speed_phase(const StudyPlan& plan) {
  nlohmann::json inputs = plan.speed_settings();
  inputs["train"] = done_fingerprint(plan.out_dir, "train");
  const std::string fp = fingerprint_of(inputs);
  if (phase_done(plan.out_dir, "speed", fp)) {
    std::printf("speed: done (%s)\n", marker_path(plan.out_dir, "speed").c_str());
    return done_summary(plan.out_dir, "speed");
  }
  nlohmann::json summary = {{"device", "cpu"}, {"gen_tokens", plan.speed_gen_tokens}, {"families", nlohmann::json::object()}};
  for (const std::string& family : families()) {
    Model model = Model::load(final_model_dir(plan, family));
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t context : plan.speed_contexts) {
      rows.push_back(measure(model, context, plan.speed_gen_tokens, plan.seed));
      std::printf("speed %s: context %lld, decode %.1f tokens/s, %.1f KiB per sequence\n", family.c_str(),
                  static_cast<long long>(context), rows.back()["decode_tokens_per_s"].get<double>(),
                  rows.back()["memory_per_sequence_bytes"].get<double>() / 1024.0);
      std::fflush(stdout);
    }
    summary["families"][family] = rows;
  }
  mark_done(plan.out_dir, "speed", fp, summary);
  return summary;
}

}  // namespace mambalm::study
