// Continuous batching. One thread owns the model and a running batch of `max_batch` slots
// (one SequenceState of that batch size, stepped by BatchDecoder). Each loop iteration:
//   1. drops cancelled sequences (their slot is free for the next iteration),
//   2. admits queued sequences into free slots,
//   3. prefills ONE chunk of one admitted prompt into that sequence's own batch-1 state, so a
//      long prompt delays the decoding streams by one chunk per step, never by the whole prompt;
//      a finished prefill is copied into its slot (SSM/conv state, KV rows, position). With the
//      prompt-state cache on, a prompt starts from its longest cached prefix (prompt_cache.h)
//      and leaves snapshots at every snapshot_interval tokens and at its end,
//   4. runs one decode step of the whole batch and hands every decoding sequence its token.
// Slots that are not decoding ride along with a dummy token and are rewound to position 0 after
// the step, so the batch shape never changes: a sequence's numbers do not depend on what else
// is in the batch (greedy output in a batch equals the same request run alone).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "infer/decoder.h"
#include "infer/sampler.h"
#include "model/model.h"
#include "model/state.h"
#include "serve/job.h"
#include "serve/metrics.h"
#include "serve/prompt_cache.h"

namespace mambalm::serve {

struct SchedulerOptions {
  int64_t max_batch = 8;       // slots of the running batch
  int64_t max_context = 2048;  // prompt + generated tokens per sequence
  int64_t prefill_chunk = 128; // prompt tokens per prefill forward call
  int64_t max_queue = 1024;    // sequences waiting beyond this are refused (503)
  int64_t vocab_limit = 0;     // sample ids < this (the tokenizer's vocabulary); 0 = the model's
  int32_t eos_token = -1;      // ends a sequence when sampled (-1: none)
  int64_t prompt_cache_bytes = 0;  // budget of the prompt-state cache (0: off)
  int64_t snapshot_interval = 512; // tokens between snapshots (rounded up to a multiple of prefill_chunk)
};

class Scheduler {
 public:
  Scheduler(Model& model, SchedulerOptions opts, Metrics& metrics);
  ~Scheduler();  // stops the thread; unfinished sequences end as "cancelled"
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues the jobs (all or none); throws ApiError 503 when the queue is full.
  void submit(const std::vector<std::shared_ptr<Job>>& jobs);
  const SchedulerOptions& options() const { return opts_; }

 private:
  struct Active {
    std::shared_ptr<Job> job;
    int64_t slot = -1;
    std::unique_ptr<SequenceState> prefill_state;  // batch 1, until the prompt is in the slot
    size_t prefilled = 0;                          // prompt tokens run (or restored) so far
    std::vector<float> cached_logits;              // [V] when the whole prompt came from the cache
    bool decoding = false;                         // in the batch, `next` is its input
    int32_t next = 0;
    int64_t generated = 0;
    Sampler sampler;
    explicit Active(std::shared_ptr<Job> j) : job(std::move(j)), sampler(job->sampling) { sampler.set_prompt(job->prompt); }
  };

  void loop();
  void admit();
  void drop_cancelled();
  void prefill_some();
  void prefill_one_chunk(Active& a);
  void restore_cached_prefix(Active& a);
  void move_into_slot(Active& a);
  void decode_step();
  // Samples the next token from `logits` [V] and publishes it; true when the sequence ended.
  bool take_token(Active& a, const float* logits, int64_t position_after);
  // Appends a chosen token to the job and finishes it at EOS or its length limit (true then).
  bool record_token(Active& a, TokenLogprob t, int64_t position_after);
  // Whether a's next token needs its logits on the host (sampling, penalties or logprobs), not
  // only the device's greedy choice.
  static bool needs_logits(const Active& a);
  void finish(Active& a, const std::string& reason, const std::string& error = "");
  void score_prompt_chunk(Active& a, const Tensor& logits, size_t begin, size_t n);
  TokenLogprob scored(const float* logits, int32_t token, int top) const;
  void update_gauges();

  Model& model_;
  SchedulerOptions opts_;
  Metrics& metrics_;
  int64_t vocab_ = 0;  // the model's vocabulary (logprobs are over all of it)
  SequenceState batch_state_;
  std::unique_ptr<BatchDecoder> decoder_;
  std::vector<std::unique_ptr<Active>> active_;  // at most max_batch, each holding a slot
  std::vector<bool> slot_used_;
  PromptCache prompt_cache_;

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;

  std::deque<std::pair<Clock::time_point, int64_t>> recent_tokens_;  // for tokens_per_second
  std::thread thread_;
};

}  // namespace mambalm::serve
