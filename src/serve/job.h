// One sequence to generate: what the HTTP side hands the scheduler, and what the scheduler
// hands back token by token. A request with n choices or several prompts is several jobs.
// The scheduler thread writes the results under signal->mutex and notifies; the HTTP thread
// reads them under the same mutex. `cancelled` is the HTTP side's one way to talk back (client
// gone, a stop string seen): the scheduler drops the job and frees its slot at its next step.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "infer/sampler.h"

namespace mambalm::serve {

using Clock = std::chrono::steady_clock;

// Shared by all jobs of one HTTP request, so the request's thread waits on one condition.
struct Signal {
  std::mutex mutex;
  std::condition_variable cv;
};

struct TokenLogprob {
  int32_t token = 0;
  bool has_logprob = false;  // false for the first prompt token (nothing predicts it)
  double logprob = 0;        // log p(token | everything before it), raw model distribution
  std::vector<std::pair<int32_t, double>> top;  // the top_logprobs most likely alternatives
};

struct Job {
  // ---- inputs, fixed before submit ----
  std::vector<int32_t> prompt;  // non-empty, ids < vocab
  int64_t max_tokens = 16;      // 0: only the prompt is scored (echo)
  SamplingOptions sampling;
  bool stop_at_eos = true;
  int top_logprobs = -1;        // -1: no logprobs; k >= 0: logprob + k alternatives per token
  bool prompt_logprobs = false; // echo with logprobs: score every prompt token
  std::shared_ptr<Signal> signal = std::make_shared<Signal>();

  // ---- results, under signal->mutex ----
  std::vector<TokenLogprob> prompt_scores;  // prompt.size() entries when prompt_logprobs
  std::vector<TokenLogprob> generated;      // appended one per step
  bool done = false;
  std::string finish_reason;  // "stop" (EOS), "length", "cancelled", "error"
  std::string error;          // when finish_reason == "error"

  // ---- timing, written by the scheduler ----
  Clock::time_point submitted{}, first_token{};

  std::atomic<bool> cancelled{false};
  void cancel() {
    cancelled = true;
    signal->cv.notify_all();
  }
};

}  // namespace mambalm::serve
