// End-to-end: whole models on CUDA (fp32 weights) against the same models on the CPU. Three
// sequences with prompts of different lengths are prefilled through their slots of one planned
// state, then decoded together by BatchDecoder (greedy, ids fed back on the device, steps
// replayed from a CUDA graph after the warm-up), every step's logits compared per sequence.
#include <cstring>
#include <string>
#include <vector>

#include "config/presets.h"
#include "harness.h"
#include "infer/decoder.h"
#include "infer/generate.h"
#include "model/model.h"

namespace conformance {
namespace {

Tensor ids_of(const std::vector<int32_t>& t) {
  Tensor ids = Tensor::empty({1, static_cast<int64_t>(t.size())}, DType::I32);
  std::memcpy(ids.raw(), t.data(), t.size() * 4);
  return ids;
}

// Logits of the ragged batch on one device: [steps + 1][B] rows of V floats (row 0: after the
// prefill of each sequence), plus the greedy tokens the decoder chose.
std::vector<std::vector<std::vector<float>>> run(Model& m, Device device, const std::vector<std::vector<int32_t>>& prompts,
                                                 int steps, bool* graphed) {
  const int64_t B = static_cast<int64_t>(prompts.size()), V = m.config().vocab_size;
  StateOptions so;
  so.device = device;
  so.kv_capacity = 64;
  SequenceState state(m.config(), B, so);
  std::vector<std::vector<std::vector<float>>> out(static_cast<size_t>(steps + 1));
  std::vector<int32_t> first;
  for (int64_t b = 0; b < B; ++b) {
    SequenceState slot = state.slot(b);
    Tensor logits = to_host(m.forward(ids_of(prompts[static_cast<size_t>(b)]), &slot, /*last_only=*/true));
    state.advance(static_cast<int64_t>(prompts[static_cast<size_t>(b)].size()), b);
    const float* p = logits.f32();
    out[0].emplace_back(p, p + V);
    int32_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (p[j] > p[best]) best = static_cast<int32_t>(j);
    first.push_back(best);
  }
  BatchDecoder dec(m, state);
  dec.set_tokens(first);
  for (int s = 1; s <= steps; ++s) {
    dec.step();
    for (int64_t b = 0; b < B; ++b) out[static_cast<size_t>(s)].push_back(dec.logits_host(b));
  }
  *graphed = dec.graph_captured();
  return out;
}

void check_model(const char* preset) {
  ModelConfig cfg = preset_config(preset);
  Model cpu(cfg), gpu(cfg);
  const uint64_t seed = rng();
  cpu.init_random(seed);
  gpu.init_random(seed);
  gpu.to_device(Device::CUDA, DType::F32);
  std::vector<std::vector<int32_t>> prompts = {std::vector<int32_t>(5), std::vector<int32_t>(23), std::vector<int32_t>(1)};
  std::uniform_int_distribution<int32_t> pick(0, int32_t(cfg.vocab_size - 1));
  for (auto& p : prompts)
    for (int32_t& t : p) t = pick(rng);
  const int steps = 6;
  bool graphed_cpu = false, graphed_gpu = false;
  auto want = run(cpu, Device::CPU, prompts, steps, &graphed_cpu);
  auto got = run(gpu, Device::CUDA, prompts, steps, &graphed_gpu);
  double num = 0, den = 0;
  bool finite = true;
  for (size_t s = 0; s < want.size(); ++s)
    for (size_t b = 0; b < want[s].size(); ++b)
      for (size_t j = 0; j < want[s][b].size(); ++j) {
        const double d = double(got[s][b][j]) - want[s][b][j];
        num += d * d;
        den += double(want[s][b][j]) * want[s][b][j];
        finite = finite && std::isfinite(got[s][b][j]);
      }
  const double err = finite ? num / den : NAN;
  record("model decode", std::string(preset) + " fp32, prompts 5/23/1, 6 steps", graphed_gpu ? "logits (graph)" : "logits",
         err, kGemm, NAN, NAN);
}

void run_model(bool) {
  for (const char* p : {"hybrid-tiny", "transformer-tiny", "mamba2-tiny", "mamba-tiny"}) check_model(p);
}

}  // namespace

MAMBALM_CONFORMANCE_CASES("model", run_model);

}  // namespace conformance
