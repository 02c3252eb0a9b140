#include "infer/generate.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "core/device.h"
#include "core/error.h"
#include "infer/decoder.h"

namespace mambalm {

void check_token_ids(const std::vector<int32_t>& ids, int64_t vocab, const std::string& where) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      fail(where, "token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) + " is outside the vocabulary [0, " +
                      std::to_string(vocab) + ")");
    }
  }
}

void copy_to_host(const Tensor& t, std::vector<float>& out) {
  out.resize(static_cast<size_t>(t.numel()));
  const Tensor host = to_host(t);
  std::memcpy(out.data(), host.raw(), host.nbytes());
}

std::vector<float> prefill(Model& model, SequenceState& state, const std::vector<int32_t>& tokens, int64_t chunk) {
  MAMBALM_CHECK(!tokens.empty(), "prefill", "empty prompt");
  MAMBALM_CHECK(chunk > 0, "prefill", "chunk must be positive");
  const int64_t V = model.config().vocab_size;
  check_token_ids(tokens, V, "prompt");
  std::vector<float> last(static_cast<size_t>(V));
  const int64_t T = static_cast<int64_t>(tokens.size());
  for (int64_t begin = 0; begin < T; begin += chunk) {
    int64_t n = std::min(chunk, T - begin);
    Tensor ids = Tensor::empty({1, n}, DType::I32);  // this chunk of the prompt
    std::memcpy(ids.raw(), tokens.data() + begin, static_cast<size_t>(n) * 4);
    Tensor logits = model.forward(ids, &state, /*last_only=*/true);  // [1, 1, V]
    copy_to_host(logits, last);
  }
  return last;
}

std::vector<float> decode_step(Model& model, SequenceState& state, int32_t token) {
  return prefill(model, state, {token}, 1);
}

StateOptions state_options_for(const Model& model, int64_t max_tokens) {
  StateOptions so;
  so.device = model.device();
  so.kv_dtype = model.kv_dtype();
  // Planned on CUDA: the decode graph needs fixed cache addresses. The CPU grows on demand,
  // no further than the generation can reach.
  if (so.device == Device::CUDA) so.kv_capacity = max_tokens;
  else so.kv_limit = max_tokens;
  return so;
}

GenerateStats generate_steps(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                             const StepFn& on_step) {
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto start = Clock::now();
  GenerateStats stats;
  stats.prompt_tokens = static_cast<int64_t>(prompt.size());
  stats.finish_reason = "length";
  SequenceState state(model.config(), 1, state_options_for(model, static_cast<int64_t>(prompt.size()) + opts.max_tokens));
  Sampler sampler(opts.sampling);
  sampler.set_prompt(prompt);
  const int64_t V = opts.vocab_limit > 0 ? std::min(opts.vocab_limit, model.config().vocab_size) : model.config().vocab_size;
  std::vector<float> logits = prefill(model, state, prompt, opts.prefill_chunk);
  stats.prefill_seconds = seconds(start, Clock::now());
  std::unique_ptr<BatchDecoder> decoder;  // CUDA: graph-captured steps
  if (model.device() == Device::CUDA) decoder = std::make_unique<BatchDecoder>(model, state, DecoderOptions{true, V});
  Clock::time_point first{};
  for (int64_t i = 0; i < opts.max_tokens; ++i) {
    const int32_t next = sampler.sample(logits.data(), V);
    ++stats.generated_tokens;
    if (i == 0) {
      first = Clock::now();
      stats.first_token_seconds = seconds(start, first);
    }
    if (on_step && !on_step(next, logits)) {
      stats.finish_reason = "stopped";
      break;
    }
    if (opts.stop_at_eos && next == model.config().eos_token_id) {
      stats.finish_reason = "eos";
      break;
    }
    if (i + 1 == opts.max_tokens) break;
    if (decoder) {
      decoder->set_tokens({next});
      decoder->step();
      logits = decoder->logits_host(0);
    } else {
      logits = decode_step(model, state, next);
    }
  }
  if (stats.generated_tokens > 0) stats.decode_seconds = seconds(first, Clock::now());
  return stats;
}

std::vector<int32_t> generate(Model& model, const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                              const std::function<void(int32_t)>& on_token) {
  std::vector<int32_t> out;
  generate_steps(model, prompt, opts, [&](int32_t token, const std::vector<float>&) {
    out.push_back(token);
    if (on_token) on_token(token);
    return true;
  });
  return out;
}

}  // namespace mambalm
