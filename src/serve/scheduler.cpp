#include "serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

#include "core/device.h"
#include "core/error.h"
#include "infer/generate.h"
#include "infer/logprobs.h"
#include "ops/ops.h"
#include "serve/api_error.h"

namespace mambalm::serve {

Scheduler::Scheduler(Model& model, SchedulerOptions opts, Metrics& metrics)
    : model_(model),
      opts_(opts),
      metrics_(metrics),
      vocab_(model.config().vocab_size),
      batch_state_(model.config(), opts.max_batch, state_options_for(model, opts.max_context)),
      prompt_cache_(opts.prompt_cache_bytes, model.config().n_layers(), metrics) {
  check(opts_.max_batch >= 1, "serve", "--max-batch must be at least 1");
  check(opts_.max_context >= 2, "serve", "--max-context must be at least 2");
  check(opts_.prefill_chunk >= 1, "serve", "--prefill-chunk must be at least 1");
  check(opts_.snapshot_interval >= 1, "serve", "--snapshot-interval must be at least 1");
  // Snapshots on chunk boundaries only: a restore there continues with a full prefill's calls.
  opts_.snapshot_interval = (opts_.snapshot_interval + opts_.prefill_chunk - 1) / opts_.prefill_chunk * opts_.prefill_chunk;
  if (opts_.vocab_limit <= 0 || opts_.vocab_limit > vocab_) opts_.vocab_limit = vocab_;
  decoder_ = std::make_unique<BatchDecoder>(model_, batch_state_, DecoderOptions{true, opts_.vocab_limit});
  slot_used_.assign(static_cast<size_t>(opts_.max_batch), false);
  metrics_.max_batch = opts_.max_batch;
  metrics_.parameter_bytes = model_.parameter_bytes();
  update_gauges();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& a : active_) finish(*a, "cancelled");
  for (auto& j : queue_) {
    Active a(j);
    finish(a, "cancelled");
  }
}

void Scheduler::submit(const std::vector<std::shared_ptr<Job>>& jobs) {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (static_cast<int64_t>(queue_.size() + jobs.size()) > opts_.max_queue)
      throw ApiError(503, "the server is busy: " + std::to_string(queue_.size()) + " sequences are queued; retry later");
    for (const auto& j : jobs) {
      j->submitted = Clock::now();
      queue_.push_back(j);
    }
    metrics_.queue_length = static_cast<int64_t>(queue_.size());
  }
  queue_cv_.notify_all();
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !active_.empty(); });
      if (stopping_) return;
    }
    try {
      drop_cancelled();
      admit();
      prefill_some();
      drop_cancelled();  // sequences that ended in the prefill
      decode_step();
      update_gauges();
    } catch (const std::exception& e) {
      // Not one request's failure (those end their own job): fail every running sequence with
      // the message, free their slots and keep serving the next requests.
      for (auto& a : active_) finish(*a, "error", e.what());
      drop_cancelled();
    }
  }
}

void Scheduler::prefill_some() {
  // Chunks of the oldest admitted prompts (active_ is in admission order), up to prefill_chunk
  // prompt tokens and kMaxPrefillsPerStep prompts between two decode steps (at least one chunk).
  // One prompt per step capped admission at one request per step (~65 requests/s at 8B, however
  // large the batch); several short prompts per step let the batch refill as fast as sequences
  // finish, while a long prompt still takes one chunk per step so decoding never stalls longer.
  constexpr int kMaxPrefillsPerStep = 8;
  int64_t budget = opts_.prefill_chunk;
  int prompts = 0;
  for (auto& a : active_) {
    if (budget <= 0 || prompts == kMaxPrefillsPerStep) break;
    if (a->decoding || !a->prefill_state) continue;
    const size_t before = a->prefilled;
    prefill_one_chunk(*a);
    budget -= std::max<int64_t>(1, static_cast<int64_t>(a->prefilled - before));
    ++prompts;
  }
}

void Scheduler::drop_cancelled() {
  for (size_t i = 0; i < active_.size();) {
    Active& a = *active_[i];
    bool ended;
    {
      std::lock_guard<std::mutex> lock(a.job->signal->mutex);
      ended = a.job->done;
    }
    if (!ended && a.job->cancelled) {
      finish(a, "cancelled");
      ended = true;
    }
    if (ended) {
      slot_used_[static_cast<size_t>(a.slot)] = false;
      active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void Scheduler::admit() {
  std::vector<Active*> admitted;
  std::unique_lock<std::mutex> lock(queue_mutex_);
  while (!queue_.empty() && static_cast<int64_t>(active_.size()) < opts_.max_batch) {
    std::shared_ptr<Job> job = queue_.front();
    queue_.pop_front();
    auto a = std::make_unique<Active>(job);
    if (job->cancelled) {
      finish(*a, "cancelled");
      continue;
    }
    const auto free_slot = std::find(slot_used_.begin(), slot_used_.end(), false);
    a->slot = free_slot - slot_used_.begin();
    *free_slot = true;
    // The prompt's own state: batch 1, planned for the prompt (CUDA needs a planned KV cache).
    try {
      a->prefill_state = std::make_unique<SequenceState>(model_.config(), 1,
                                                         state_options_for(model_, static_cast<int64_t>(job->prompt.size())));
    } catch (const std::exception& e) {  // out of memory: this request fails, the server goes on
      finish(*a, "error", e.what());
      *free_slot = false;
      continue;
    }
    admitted.push_back(a.get());
    active_.push_back(std::move(a));
  }
  metrics_.queue_length = static_cast<int64_t>(queue_.size());
  lock.unlock();  // restoring copies state: not while HTTP threads wait to queue
  for (Active* a : admitted) restore_cached_prefix(*a);
}

TokenLogprob Scheduler::scored(const float* logits, int32_t token, int top) const {
  // log softmax in double over the model's whole vocabulary (as eval/scoring.cpp scores):
  // alternatives too, as eval/scoring.cpp's is_greedy compares with the argmax over all of it;
  // padding ids read as "" in the response.
  TokenLogprobs lp = token_logprobs(logits, vocab_, token, top);
  return TokenLogprob{token, true, lp.logprob, std::move(lp.top)};
}

void Scheduler::score_prompt_chunk(Active& a, const Tensor& logits, size_t begin, size_t n) {
  // logits [1, n, V]: row j predicts prompt token begin + j + 1.
  std::vector<float> host;
  copy_to_host(logits, host);
  const auto& prompt = a.job->prompt;
  std::vector<TokenLogprob> scores;
  if (begin == 0) scores.push_back(TokenLogprob{prompt[0], false, 0, {}});
  for (size_t j = 0; j < n && begin + j + 1 < prompt.size(); ++j)
    scores.push_back(scored(host.data() + j * static_cast<size_t>(vocab_), prompt[begin + j + 1], a.job->top_logprobs));
  std::lock_guard<std::mutex> lock(a.job->signal->mutex);
  for (auto& s : scores) a.job->prompt_scores.push_back(std::move(s));
}

void Scheduler::restore_cached_prefix(Active& a) {
  // Echo requests score every prompt token, so they need every prompt position's logits.
  if (!prompt_cache_.enabled() || a.job->prompt_logprobs) return;
  try {
    const PromptSnapshot* snap = prompt_cache_.lookup(a.job->prompt);
    if (!snap) return;
    prompt_cache_.restore(*snap, *a.prefill_state);
    a.prefilled = snap->tokens.size();
    if (a.prefilled == a.job->prompt.size()) a.cached_logits = snap->logits;
  } catch (const std::exception& e) {
    finish(a, "error", e.what());
  }
}

void Scheduler::prefill_one_chunk(Active& a) {
  Job& job = *a.job;
  const size_t T = job.prompt.size();
  const size_t begin = a.prefilled;
  // Chunks end on multiples of prefill_chunk, also after a restore from the prompt cache.
  const size_t chunk = static_cast<size_t>(opts_.prefill_chunk);
  const size_t n = std::min(chunk - begin % chunk, T - begin);
  try {
    std::vector<float> last_row = a.cached_logits;  // [V]: predicts the first new token
    if (begin < T) {
      Tensor ids = Tensor::empty({1, static_cast<int64_t>(n)}, DType::I32);  // I32 [1, n]: this chunk
      std::memcpy(ids.raw(), job.prompt.data() + begin, n * 4);
      Tensor logits = model_.forward(ids, a.prefill_state.get(), /*last_only=*/!job.prompt_logprobs);  // [1, n or 1, V]
      a.prefilled += n;
      metrics_.prompt_tokens += static_cast<int64_t>(n);
      ++metrics_.prefill_chunks;
      if (job.prompt_logprobs) score_prompt_chunk(a, logits, begin, n);
      const bool boundary = a.prefilled == T || a.prefilled % static_cast<size_t>(opts_.snapshot_interval) == 0;
      if (a.prefilled < T && !(boundary && prompt_cache_.enabled())) return;
      std::vector<float> host;
      copy_to_host(logits, host);  // [n or 1, V]
      last_row.assign(host.end() - vocab_, host.end());
      if (boundary && prompt_cache_.enabled()) {
        const std::vector<int32_t> prefix(job.prompt.begin(), job.prompt.begin() + static_cast<std::ptrdiff_t>(a.prefilled));
        prompt_cache_.store(prefix, *a.prefill_state, last_row);
      }
      if (a.prefilled < T) return;
    }
    if (job.max_tokens == 0) {
      finish(a, "length");
      return;
    }
    if (take_token(a, last_row.data(), static_cast<int64_t>(T))) return;
    move_into_slot(a);
  } catch (const std::exception& e) {
    finish(a, "error", e.what());
  }
}

void Scheduler::move_into_slot(Active& a) {
  const int64_t b = a.slot;
  SequenceState& from = *a.prefill_state;
  const int64_t pos = from.position(0);
  batch_state_.reserve_kv(pos + 1);
  for (int64_t i = 0; i < model_.config().n_layers(); ++i) {
    LayerState& src = from.layer(i);
    LayerState& dst = batch_state_.layer(i);
    if (src.conv.defined()) {
      Tensor d = dst.conv.slice0(b, b + 1);  // [1, C, K-1]
      copy_tensor(src.conv, d);
    }
    if (src.ssm.defined()) {
      Tensor d = dst.ssm.slice0(b, b + 1);  // Mamba-2 [1, H, P, N]; Mamba-1 [1, Di, N]
      copy_tensor(src.ssm, d);
    }
    if (src.k.defined()) {
      const int64_t rows_src = src.k.dim(1), rows_dst = dst.k.dim(1), h = src.k.dim(2), dh = src.k.dim(3);
      Tensor dk = dst.k.slice0(b, b + 1).reshape({rows_dst, h, dh});  // [rows, Hkv, Dh]
      Tensor dv = dst.v.slice0(b, b + 1).reshape({rows_dst, h, dh});
      ops::copy_rows(src.k.reshape({rows_src, h, dh}), pos, dk);
      ops::copy_rows(src.v.reshape({rows_src, h, dh}), pos, dv);
    }
  }
  batch_state_.advance(pos - batch_state_.position(b), b);
  a.prefill_state.reset();  // its memory goes now
  a.decoding = true;
}

bool Scheduler::take_token(Active& a, const float* logits, int64_t position_after) {
  Job& job = *a.job;
  const int32_t token = a.sampler.sample(logits, opts_.vocab_limit);
  TokenLogprob t = job.top_logprobs >= 0 ? scored(logits, token, job.top_logprobs) : TokenLogprob{token, false, 0, {}};
  return record_token(a, std::move(t), position_after);
}

bool Scheduler::needs_logits(const Active& a) {
  return a.job->sampling.temperature != 0.0 || a.job->top_logprobs >= 0 || a.job->sampling.penalties.active();
}

bool Scheduler::record_token(Active& a, TokenLogprob t, int64_t position_after) {
  Job& job = *a.job;
  const int32_t token = t.token;
  ++a.generated;
  a.next = token;
  ++metrics_.generated_tokens;
  recent_tokens_.push_back({Clock::now(), 1});
  const bool eos = job.stop_at_eos && token == opts_.eos_token;
  const bool length = a.generated >= job.max_tokens || position_after + 1 >= opts_.max_context;
  {
    std::lock_guard<std::mutex> lock(job.signal->mutex);
    if (job.generated.empty()) {
      job.first_token = Clock::now();
      metrics_.add_ttft(std::chrono::duration<double>(job.first_token - job.submitted).count());
    }
    job.generated.push_back(std::move(t));
  }
  job.signal->cv.notify_all();
  if (eos || length) finish(a, eos ? "stop" : "length");
  return eos || length;
}

void Scheduler::finish(Active& a, const std::string& reason, const std::string& error) {
  Job& job = *a.job;
  {
    std::lock_guard<std::mutex> lock(job.signal->mutex);
    if (job.done) return;
    job.done = true;
    job.finish_reason = reason;
    job.error = error;
  }
  ++metrics_.jobs_finished;
  if (reason == "cancelled") ++metrics_.jobs_cancelled;
  a.prefill_state.reset();
  a.decoding = false;
  job.signal->cv.notify_all();
}

void Scheduler::decode_step() {
  std::vector<int32_t> tokens(static_cast<size_t>(opts_.max_batch), 0);
  std::vector<Active*> decoding;
  for (auto& a : active_) {
    if (!a->decoding || a->job->cancelled) continue;
    tokens[static_cast<size_t>(a->slot)] = a->next;
    decoding.push_back(a.get());
  }
  if (decoding.empty()) return;
  try {
    decoder_->set_tokens(tokens);
    decoder_->step();
    ++metrics_.decode_steps;
    // The step already chose every row's greedy token on the device. Greedy rows without
    // logprobs take it (4 bytes a row); only rows that sample or report logprobs bring their
    // logits row to the host (V floats). Copying all [B, 1, V] logits and scanning them on the
    // host cost ~190 ms a step at batch 256 and a 256K vocabulary.
    const std::vector<int32_t> greedy = decoder_->tokens();  // [B]
    for (Active* a : decoding) {
      const int64_t position = batch_state_.position(a->slot);
      if (!needs_logits(*a)) {
        record_token(*a, TokenLogprob{greedy[static_cast<size_t>(a->slot)], false, 0, {}}, position);
        continue;
      }
      const std::vector<float> row = decoder_->logits_host(a->slot);  // [V]
      take_token(*a, row.data(), position);
    }
  } catch (const std::exception& e) {
    for (Active* a : decoding) finish(*a, "error", e.what());
  }
  // Slots that rode along (free, or still prefilling elsewhere) go back to position 0, so they
  // never grow the KV cache; their state is overwritten when a sequence moves in.
  for (int64_t b = 0; b < opts_.max_batch; ++b) {
    bool in_use = false;
    for (Active* a : decoding) in_use |= a->slot == b && a->decoding;
    if (!in_use) batch_state_.advance(-batch_state_.position(b), b);
  }
}

void Scheduler::update_gauges() {
  int64_t decoding = 0, prefilling = 0;
  for (auto& a : active_) {
    decoding += a->decoding;
    prefilling += a->prefill_state != nullptr;
  }
  metrics_.batch_size = decoding;
  metrics_.prefilling = prefilling;
  metrics_.ssm_state_bytes = batch_state_.ssm_state_bytes();
  metrics_.kv_cache_bytes = batch_state_.kv_allocated_bytes();
  const auto now = Clock::now();
  while (!recent_tokens_.empty() && now - recent_tokens_.front().first > std::chrono::seconds(5)) recent_tokens_.pop_front();
  int64_t n = 0;
  for (const auto& r : recent_tokens_) n += r.second;
  metrics_.tokens_per_second = recent_tokens_.empty() ? 0.0 : static_cast<double>(n) / 5.0;
}

}  // namespace mambalm::serve
