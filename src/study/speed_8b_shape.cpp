#include "study/speed_8b_shape.h"

#include <cstdio>

#include "bench/generation_sweep.h"
#include "core/device.h"
#include "study/phase_marker.h"

namespace mambalm::study {

namespace {

// The contexts of the study's generation-speed figure where the KV cache dominates.
const std::vector<int64_t> kContexts = {4096, 16384};
const char* const kPhase = "speed/8b";

}  // namespace

nlohmann::json speed_at_8b_shape(const StudyPlan& plan, const std::string& fingerprint) {
  if (marker_matches(plan.out_dir, kPhase, fingerprint)) return done_summary(plan.out_dir, kPhase);
  if (plan.device != Device::CUDA) return {{"measured", false}, {"reason", "measured on GPU runs only (--device cuda)"}};
  if (!plan.runs("hybrid")) return {{"measured", false}, {"reason", "measured with the hybrid's speed phase"}};
  bench::GenerationSweepOptions o;
  o.presets = {"transformer-8b", "hybrid-8b"};  // the first is the ratio's baseline
  o.contexts = kContexts;
  o.batches = {1};
  o.gen = 16;
  o.seed = plan.seed;
  std::printf("speed 8b: mambalm bench --device cuda --preset transformer-8b,hybrid-8b (random bf16 weights)\n");
  std::fflush(stdout);
  const bench::GenerationSweepResult r = bench::run_generation_sweep(o, stdout);
  nlohmann::json rows = nlohmann::json::array();
  for (size_t c = 0; c < kContexts.size(); ++c) {
    const bench::BestThroughput& t = r.best[0][c];
    const bench::BestThroughput& h = r.best[1][c];
    rows.push_back({{"context", kContexts[c]},
                    {"transformer_tokens_per_s", t.tokens_per_s},
                    {"transformer_batch", t.batch},
                    {"hybrid_tokens_per_s", h.tokens_per_s},
                    {"hybrid_batch", h.batch},
                    {"hybrid_over_transformer", t.tokens_per_s > 0 ? h.tokens_per_s / t.tokens_per_s : 0.0}});
  }
  const nlohmann::json summary = {{"measured", true},
                                  {"device_name", cuda_device_summary()},
                                  {"presets", {"transformer-8b", "hybrid-8b"}},
                                  {"weights", "random bf16"},
                                  {"decode", "best batch that fits (batch 1 and the largest), CUDA graph replay"},
                                  {"rows", rows}};
  mark_done(plan.out_dir, kPhase, fingerprint, summary);
  return summary;
}

}  // namespace mambalm::study
