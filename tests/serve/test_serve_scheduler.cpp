// The continuous-batching scheduler on tiny random models (hybrid: Mamba-2 + attention + MLP;
// Mamba-1; Transformer), in-process on the CPU:
//   - greedy output of a request that shares the batch with others (joining and leaving at
//     different steps, prompts prefilled in chunks between decode steps) equals the same request
//     run alone, and equals infer/generate.h's generate();
//   - echo + logprobs prompt scores equal the scoring library's (eval/scoring.h) log-likelihoods;
//   - a cancelled request ends at once and its slot serves the next one;
//   - the prompt-state cache: a prompt restored from a snapshot generates what a full prefill
//     does (bit-identical at snapshot-interval boundaries and for a whole cached prompt, equal
//     to float rounding at an end-of-prompt boundary), and the byte budget evicts LRU-first.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>

#include "config/presets.h"
#include "core/rng.h"
#include "eval/scoring.h"
#include "infer/generate.h"
#include "model/model.h"
#include "serve/scheduler.h"

using namespace mambalm;
using namespace mambalm::serve;

namespace {

// A tiny model with every weight moved by noise, so its greedy choices vary with the input.
Model tiny_model(const std::string& preset) {
  Model m(preset_config(preset));
  m.init_random(11);
  Rng rng(7);
  for (ParamRef& p : m.params()) {
    float* w = p.tensor->f32();
    for (int64_t i = 0; i < p.tensor->numel(); ++i) w[i] += static_cast<float>(0.2 * rng.uniform(-1, 1));
  }
  return m;
}

std::shared_ptr<Job> greedy_job(std::vector<int32_t> prompt, int64_t max_tokens) {
  auto j = std::make_shared<Job>();
  j->prompt = std::move(prompt);
  j->max_tokens = max_tokens;
  j->stop_at_eos = false;
  return j;
}

std::vector<int32_t> prompt_of(int64_t len, int32_t salt) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < len; ++i) p.push_back(static_cast<int32_t>((i * 37 + salt * 11 + 5) % 256));
  return p;
}

void wait_done(Job& j) {
  std::unique_lock<std::mutex> lock(j.signal->mutex);
  ASSERT_TRUE(j.signal->cv.wait_for(lock, std::chrono::seconds(60), [&] { return j.done; })) << "job did not finish";
}

std::vector<int32_t> tokens_of(Job& j) {
  std::lock_guard<std::mutex> lock(j.signal->mutex);
  std::vector<int32_t> out;
  for (const auto& t : j.generated) out.push_back(t.token);
  return out;
}

SchedulerOptions small_batch() {
  SchedulerOptions o;
  o.max_batch = 4;
  o.max_context = 256;
  o.prefill_chunk = 16;  // prompts of 40+ tokens take several steps, interleaved with decoding
  return o;
}

class ServeScheduler : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(ServeScheduler, GreedyInABatchEqualsAlone) {
  Model model = tiny_model(GetParam());
  Metrics metrics;
  // Six requests of different prompt and output lengths through four slots: some wait in the
  // queue, join when others leave, and prefill while the rest decode.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{5, 20}, {41, 12}, {17, 30}, {3, 8}, {60, 15}, {9, 25}};
  std::vector<std::vector<int32_t>> alone, together;
  {
    Scheduler s(model, small_batch(), metrics);
    for (size_t i = 0; i < shapes.size(); ++i) {
      auto j = greedy_job(prompt_of(shapes[i].first, static_cast<int32_t>(i)), shapes[i].second);
      s.submit({j});
      wait_done(*j);
      alone.push_back(tokens_of(*j));
      EXPECT_EQ(j->finish_reason, "length");
    }
  }
  Metrics batched;
  {
    Scheduler s(model, small_batch(), batched);
    std::vector<std::shared_ptr<Job>> jobs;
    for (size_t i = 0; i < shapes.size(); ++i)
      jobs.push_back(greedy_job(prompt_of(shapes[i].first, static_cast<int32_t>(i)), shapes[i].second));
    s.submit(jobs);
    for (auto& j : jobs) {
      wait_done(*j);
      together.push_back(tokens_of(*j));
    }
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(alone[i].size()), shapes[i].second);
    EXPECT_EQ(together[i], alone[i]) << "request " << i;
    // And the same as the library's own greedy generation.
    GenerateOptions g;
    g.max_tokens = shapes[i].second;
    g.stop_at_eos = false;
    EXPECT_EQ(generate(model, prompt_of(shapes[i].first, static_cast<int32_t>(i)), g), alone[i]) << "request " << i;
  }
  // The sequences did share steps: far fewer steps than tokens.
  int64_t tokens = 0;
  for (const auto& s : shapes) tokens += s.second;
  EXPECT_LT(batched.decode_steps.load(), tokens * 2 / 3);
  EXPECT_EQ(batched.batch_size.load(), 0);
}

// Penalties need the sampler on the host even when greedy, and its memory of the prompt: a
// penalized request batched with a plain one equals generate() with the same options.
TEST_P(ServeScheduler, PenalizedGreedyEqualsGenerate) {
  Model model = tiny_model(GetParam());
  Metrics metrics;
  Scheduler s(model, small_batch(), metrics);
  auto plain = greedy_job(prompt_of(9, 3), 20);
  auto penalized = greedy_job(prompt_of(9, 3), 20);
  penalized->sampling.penalties.presence = 100;  // far above the logits' spread: no repeats
  penalized->sampling.penalties.repeat = 1.5;
  penalized->sampling.penalties.repeat_last_n = -1;
  s.submit({plain, penalized});
  wait_done(*plain);
  wait_done(*penalized);
  GenerateOptions g;
  g.max_tokens = 20;
  g.stop_at_eos = false;
  EXPECT_EQ(tokens_of(*plain), generate(model, prompt_of(9, 3), g));
  g.sampling = penalized->sampling;
  const std::vector<int32_t> want = generate(model, prompt_of(9, 3), g);
  EXPECT_EQ(tokens_of(*penalized), want);
  EXPECT_EQ(std::set<int32_t>(want.begin(), want.end()).size(), want.size());
}

TEST_P(ServeScheduler, EchoLogprobsEqualTheScoringLibrary) {
  Model model = tiny_model(GetParam());
  Metrics metrics;
  Scheduler s(model, small_batch(), metrics);
  const std::vector<int32_t> context = prompt_of(23, 1), continuation = prompt_of(14, 2);
  std::vector<int32_t> whole = context;
  whole.insert(whole.end(), continuation.begin(), continuation.end());
  auto j = greedy_job(whole, 0);
  j->prompt_logprobs = true;
  j->top_logprobs = 1;
  s.submit({j});
  wait_done(*j);
  ASSERT_EQ(j->prompt_scores.size(), whole.size());
  EXPECT_FALSE(j->prompt_scores[0].has_logprob);
  double sum = 0;
  bool greedy = true;
  for (size_t i = context.size(); i < whole.size(); ++i) {
    sum += j->prompt_scores[i].logprob;
    greedy &= j->prompt_scores[i].top[0].second == j->prompt_scores[i].logprob;
  }
  eval::Scorer scorer(model, nullptr);
  const auto ref = scorer.loglikelihood_tokens({{context, continuation}});
  EXPECT_NEAR(sum, ref[0].logprob, 1e-4 * std::abs(ref[0].logprob)) << "server " << sum << " scorer " << ref[0].logprob;
  EXPECT_EQ(greedy, ref[0].is_greedy);
}

TEST_P(ServeScheduler, CancelFreesTheSlotAtOnce) {
  Model model = tiny_model(GetParam());
  Metrics metrics;
  SchedulerOptions o = small_batch();
  o.max_batch = 1;
  Scheduler s(model, o, metrics);
  auto long_job = greedy_job(prompt_of(8, 3), 200);
  auto next_job = greedy_job(prompt_of(8, 4), 5);
  s.submit({long_job, next_job});  // the second waits for the only slot
  {
    std::unique_lock<std::mutex> lock(long_job->signal->mutex);
    long_job->signal->cv.wait(lock, [&] { return long_job->generated.size() >= 3; });
  }
  long_job->cancel();
  wait_done(*long_job);
  wait_done(*next_job);
  EXPECT_EQ(long_job->finish_reason, "cancelled");
  EXPECT_LT(long_job->generated.size(), 200u);
  EXPECT_EQ(next_job->finish_reason, "length");
  EXPECT_EQ(tokens_of(*next_job).size(), 5u);
  EXPECT_EQ(metrics.jobs_cancelled.load(), 1);
}

namespace {

struct Generated {
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;
};

Generated run_one(Scheduler& s, std::vector<int32_t> prompt, int64_t max_tokens) {
  auto j = greedy_job(std::move(prompt), max_tokens);
  j->top_logprobs = 0;
  s.submit({j});
  wait_done(*j);
  Generated r;
  for (const auto& t : j->generated) {
    r.tokens.push_back(t.token);
    r.logprobs.push_back(t.logprob);
  }
  return r;
}

SchedulerOptions cached(int64_t bytes) {
  SchedulerOptions o = small_batch();
  o.prompt_cache_bytes = bytes;
  o.snapshot_interval = 32;  // chunks of 16: snapshots at 32, 64, 96, ... and at each prompt's end
  return o;
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_P(ServeScheduler, PromptCacheRestoresExactly) {
  Model model = tiny_model(GetParam());
  const std::vector<int32_t> system = prompt_of(100, 5), turn = prompt_of(40, 6);
  const std::vector<int32_t> aligned(system.begin(), system.begin() + 96);
  Metrics plain_metrics, metrics;
  Generated ref_turn, ref_aligned, ref_system;
  {
    Scheduler s(model, small_batch(), plain_metrics);  // no cache
    ref_turn = run_one(s, concat(system, turn), 12);
    ref_aligned = run_one(s, concat(aligned, turn), 12);
    ref_system = run_one(s, system, 12);
  }
  Scheduler s(model, cached(int64_t{64} << 20), metrics);
  run_one(s, system, 1);  // leaves snapshots at 32, 64, 96 and 100
  EXPECT_EQ(metrics.prompt_cache_entries.load(), 4);
  // Restored at 96, a snapshot-interval boundary: bit-identical.
  Generated r = run_one(s, concat(aligned, turn), 12);
  EXPECT_EQ(metrics.prompt_cache_tokens_reused.load(), 96);
  EXPECT_EQ(r.tokens, ref_aligned.tokens);
  EXPECT_EQ(r.logprobs, ref_aligned.logprobs);
  // The whole prompt cached: no forward call at all, bit-identical.
  const int64_t chunks = metrics.prefill_chunks.load();
  r = run_one(s, system, 12);
  EXPECT_EQ(metrics.prefill_chunks.load(), chunks);
  EXPECT_EQ(r.tokens, ref_system.tokens);
  EXPECT_EQ(r.logprobs, ref_system.logprobs);
  // Restored at 100, the end of the earlier prompt (one chunk split in two): same tokens,
  // log-probs equal to float rounding.
  r = run_one(s, concat(system, turn), 12);
  EXPECT_EQ(metrics.prompt_cache_tokens_reused.load(), 96 + 100 + 100);
  EXPECT_EQ(r.tokens, ref_turn.tokens);
  ASSERT_EQ(r.logprobs.size(), ref_turn.logprobs.size());
  double worst = 0;
  for (size_t i = 0; i < r.logprobs.size(); ++i) {
    EXPECT_NEAR(r.logprobs[i], ref_turn.logprobs[i], 1e-5) << "token " << i;
    worst = std::max(worst, std::abs(r.logprobs[i] - ref_turn.logprobs[i]));
  }
  std::printf("[restore at an end-of-prompt boundary] max |logprob difference| %.3g\n", worst);
  EXPECT_EQ(metrics.prompt_cache_hits.load(), 3);
}

TEST_P(ServeScheduler, PromptCacheStaysWithinItsBudget) {
  Model model = tiny_model(GetParam());
  int64_t one = 0;
  {
    Metrics m;
    Scheduler s(model, cached(int64_t{64} << 20), m);
    run_one(s, prompt_of(20, 0), 1);
    one = m.prompt_cache_bytes.load();  // one 20-token snapshot
  }
  ASSERT_GT(one, 0);
  Metrics m;
  Scheduler s(model, cached(one * 5 / 2), m);  // room for two
  for (int32_t i = 0; i < 5; ++i) run_one(s, prompt_of(20, 10 + i), 1);
  EXPECT_EQ(m.prompt_cache_entries.load(), 2);
  EXPECT_LE(m.prompt_cache_bytes.load(), one * 5 / 2);
  EXPECT_EQ(m.prompt_cache_evictions.load(), 3);
  const int64_t hits = m.prompt_cache_hits.load();
  run_one(s, prompt_of(20, 14), 1);  // the newest: still cached
  EXPECT_EQ(m.prompt_cache_hits.load(), hits + 1);
  run_one(s, prompt_of(20, 10), 1);  // the oldest: evicted
  EXPECT_EQ(m.prompt_cache_hits.load(), hits + 1);
}

INSTANTIATE_TEST_SUITE_P(Presets, ServeScheduler, ::testing::Values("hybrid-tiny", "mamba-tiny", "transformer-tiny"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });
