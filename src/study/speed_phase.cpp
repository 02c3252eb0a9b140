#include "study/speed_phase.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/device.h"
#include "core/rng.h"
#include "infer/decoder.h"
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

// Uncaptured steps on CUDA before the timed ones: BatchDecoder's two warm-up steps and the one
// that captures its graph.
constexpr int64_t kCudaWarmSteps = 3;

nlohmann::json measure(Model& model, int64_t context, int64_t gen_tokens, uint64_t seed) {
  const ModelConfig& cfg = model.config();
  Rng rng(seed);
  std::vector<int32_t> prompt(static_cast<size_t>(context));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(cfg.vocab_size));
  const bool cuda = model.device() == Device::CUDA;
  // On CUDA: a planned KV cache in the weights' dtype, as `mambalm generate --device cuda` uses.
  SequenceState state(cfg, 1, state_options_for(model, context + gen_tokens + (cuda ? kCudaWarmSteps : 0)));
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(model, state, prompt);  // returns host logits: the device is done
  const double prefill_s = seconds_since(t0);
  double decode_s = 0;
  if (cuda) {
    // Decode as `generate --device cuda` does: graph-replayed steps whose greedy choice stays
    // on the device; timed after the warm-up and capture, until the last step has finished.
    BatchDecoder decoder(model, state, DecoderOptions{true, cfg.vocab_size});
    decoder.set_tokens({argmax(logits)});
    for (int64_t i = 0; i < kCudaWarmSteps; ++i) decoder.step();
    (void)decoder.tokens();  // waits for the warm-up
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < gen_tokens; ++i) decoder.step();
    (void)decoder.tokens();
    decode_s = seconds_since(t0);
  } else {
    t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < gen_tokens; ++i) logits = decode_step(model, state, argmax(logits));
    decode_s = seconds_since(t0);
  }
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
  const bool cuda = plan.device == Device::CUDA;
  nlohmann::json summary = {{"device", cuda ? "cuda" : "cpu"},
                            {"weights", cuda ? "bf16" : "f32"},
                            {"kv_cache", cuda ? "bf16" : "f32"},
                            {"decode", cuda ? "CUDA graph replay, batch 1" : "one forward per token, batch 1"},
                            {"gen_tokens", plan.speed_gen_tokens},
                            {"families", nlohmann::json::object()}};
  if (cuda) summary["device_name"] = cuda_device_summary();
  for (const std::string& family : families()) {
    Model model = Model::load(final_model_dir(plan, family));
    if (cuda) model.to_device(Device::CUDA, DType::BF16);
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t context : plan.speed_contexts) {
      rows.push_back(measure(model, context, plan.speed_gen_tokens, plan.seed));
      std::printf("speed %s (%s): context %lld, decode %.1f tokens/s, %.1f KiB per sequence\n", family.c_str(), cuda ? "cuda" : "cpu",
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
