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
#include "study/speed_8b_shape.h"
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
  inputs["train"] = train_fingerprint(plan);
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
  std::vector<std::string> waiting, device_names;
  for (const std::string& family : families()) {
    // Per family: DIR/speed/<family>/done.json holds its rows (and the GPU's name), so that a
    // family measured in another run (--families) can be merged here.
    const std::string phase = "speed/" + family;
    nlohmann::json family_inputs = inputs;
    family_inputs["family"] = family;
    const std::string family_fp = fingerprint_of(family_inputs);
    nlohmann::json measured;
    if (!plan.runs(family) ? marker_matches(plan.out_dir, phase, family_fp) : phase_done(plan.out_dir, phase, family_fp)) {
      if (plan.runs(family)) std::printf("speed %s: done\n", family.c_str());
      measured = done_summary(plan.out_dir, phase);
    } else if (!plan.runs(family)) {
      waiting.push_back(family);
      continue;
    } else {
      require_trained(plan, family);
      Model model = Model::load(final_model_dir(plan, family));
      if (cuda) model.to_device(Device::CUDA, DType::BF16);
      measured = {{"rows", nlohmann::json::array()}};
      if (cuda) measured["device_name"] = cuda_device_summary();
      for (int64_t context : plan.speed_contexts) {
        measured["rows"].push_back(measure(model, context, plan.speed_gen_tokens, plan.seed));
        const nlohmann::json& row = measured["rows"].back();
        std::printf("speed %s (%s): context %lld, decode %.1f tokens/s, %.1f KiB per sequence\n", family.c_str(), cuda ? "cuda" : "cpu",
                    static_cast<long long>(context), row["decode_tokens_per_s"].get<double>(),
                    row["memory_per_sequence_bytes"].get<double>() / 1024.0);
        std::fflush(stdout);
      }
      mark_done(plan.out_dir, phase, family_fp, measured);
    }
    summary["families"][family] = measured["rows"];
    const std::string name = measured.value("device_name", "");
    if (!name.empty() && std::find(device_names.begin(), device_names.end(), name) == device_names.end()) device_names.push_back(name);
  }
  // The 8B shapes on the GPU, with the hybrid's measurement (also when it runs alone).
  nlohmann::json shape_inputs = plan.speed_settings();
  shape_inputs["part"] = "8b";
  summary["shape_8b"] = speed_at_8b_shape(plan, fingerprint_of(shape_inputs));
  if (!waiting.empty()) {
    std::printf("speed: no speed/done.json yet: %s not done here (--families)\n", join_names(waiting).c_str());
    return summary;
  }
  // One device name, or each distinct one when the families were measured on different GPUs.
  if (!device_names.empty()) summary["device_name"] = join_names(device_names);
  mark_done(plan.out_dir, "speed", fp, summary);
  return summary;
}

}  // namespace mambalm::study
