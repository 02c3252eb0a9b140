// Generation controls on fixed inputs, against hand-computed values: the repetition, presence and
// frequency penalties, min-p (and its place after temperature), the sampler's memory of the
// prompt and of what it generated, stop strings over streamed pieces, and token logprobs.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "infer/logprobs.h"
#include "infer/sampler.h"
#include "infer/sampling_penalties.h"
#include "infer/stop_strings.h"

using namespace mambalm;

namespace {

TEST(Penalties, RepetitionPresenceAndFrequencyByHand) {
  // Prompt {0, 1}, generated {3, 3, 1}.
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
  const std::vector<int32_t> context = {0, 1, 3, 3, 1};
  Penalties p;
  p.repeat = 2.0;
  p.repeat_last_n = -1;
  p.presence = 0.5;
  p.frequency = 0.25;
  apply_penalties(logits.data(), 5, context, 3, p);
  // Repetition over {0, 1, 3}: 2/2 = 1, -1*2 = -2, 3/2 = 1.5, each once.
  // Presence + frequency over generated {3: 2 times, 1: once}: 3 -> 1.5 - 0.5 - 0.5; 1 -> -2 - 0.5 - 0.25.
  EXPECT_FLOAT_EQ(logits[0], 1.0f);   // in the prompt only: no presence/frequency
  EXPECT_FLOAT_EQ(logits[1], -2.75f);
  EXPECT_FLOAT_EQ(logits[2], 0.5f);   // never seen
  EXPECT_FLOAT_EQ(logits[3], 0.5f);
  EXPECT_FLOAT_EQ(logits[4], -2.0f);
}

TEST(Penalties, RepeatWindowAndNeutralValues) {
  const std::vector<int32_t> context = {0, 1, 3, 3, 1, 9};  // 9: outside the vocabulary, ignored
  Penalties p;
  p.repeat = 4.0;
  p.repeat_last_n = 3;  // {3, 1, 9}
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f};
  apply_penalties(logits.data(), 4, context, 0, p);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, -4.0f, 0.5f, 0.75f}));
  p.repeat_last_n = 0;  // off
  logits = {2.0f, -1.0f, 0.5f, 3.0f};
  apply_penalties(logits.data(), 4, context, 0, p);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, -1.0f, 0.5f, 3.0f}));
  EXPECT_FALSE(Penalties{}.active());
  p = Penalties{};
  p.repeat = 0;
  EXPECT_THROW(check_penalties(p, "test"), Error);
  p = Penalties{};
  p.repeat_last_n = -2;
  EXPECT_THROW(check_penalties(p, "test"), Error);
}

TEST(Sampler, GreedyHonoursPenaltiesOverPromptAndGenerated) {
  const std::vector<float> logits = {1.0f, 0.9f, 0.1f};
  SamplingOptions o;
  o.penalties.repeat = 2.0;  // 1.0 -> 0.5 once token 0 is in the context
  Sampler s(o);
  s.set_prompt({0});
  EXPECT_EQ(s.sample(logits.data(), 3), 1);  // 0.5 < 0.9
  EXPECT_EQ(s.sample(logits.data(), 3), 0);  // both seen: 0.5 > 0.45
  // Presence counts generated tokens only: the prompt's token 0 is not penalized.
  SamplingOptions q;
  q.penalties.presence = 1.0;
  Sampler t(q);
  t.set_prompt({0});
  EXPECT_EQ(t.sample(logits.data(), 3), 0);
  EXPECT_EQ(t.sample(logits.data(), 3), 1);  // 0 -> 0.0 < 0.9
  EXPECT_EQ(t.sample(logits.data(), 3), 2);  // 0 -> 0.0, 1 -> -0.1, 2 -> 0.1
}

// How often each token is drawn in n draws.
std::map<int32_t, int> draws(SamplingOptions o, const std::vector<float>& logits, int n) {
  Sampler s(o);
  std::map<int32_t, int> count;
  for (int i = 0; i < n; ++i) ++count[s.sample(logits.data(), static_cast<int64_t>(logits.size()))];
  return count;
}

TEST(Sampler, MinPKeepsTokensAtLeastPTimesTheMostLikely) {
  // Probabilities proportional to 1, 0.5, 0.2, 0.05 at temperature 1.
  const std::vector<float> logits = {0.0f, std::log(0.5f), std::log(0.2f), std::log(0.05f)};
  SamplingOptions o;
  o.temperature = 1.0;
  o.seed = 11;
  o.min_p = 0.3;  // keeps {0, 1}: p = 2/3, 1/3
  auto c = draws(o, logits, 3000);
  EXPECT_EQ(c.count(2) + c.count(3), 0u);
  EXPECT_NEAR(c[0] / 3000.0, 2.0 / 3.0, 0.04);
  o.min_p = 0.19;  // keeps {0, 1, 2}
  c = draws(o, logits, 3000);
  EXPECT_GT(c[2], 0);
  EXPECT_EQ(c.count(3), 0u);
  EXPECT_NEAR(c[2] / 3000.0, 0.2 / 1.7, 0.04);
  o.min_p = 1.0;  // only the most likely
  c = draws(o, logits, 200);
  EXPECT_EQ(c[0], 200);
  // After temperature: at T = 2 the ratios are 1, 0.707, 0.447, 0.224, so 0.3 keeps {0, 1, 2}.
  o.temperature = 2.0;
  o.min_p = 0.3;
  c = draws(o, logits, 3000);
  EXPECT_GT(c[2], 0);
  EXPECT_EQ(c.count(3), 0u);
  // min-p after top-p: top-p 0.6 keeps {0, 1} (p0 = 0.571 < 0.6); min-p 0.6 then drops 1 (0.5 < 0.6).
  o.temperature = 1.0;
  o.top_p = 0.6;
  o.min_p = 0.6;
  c = draws(o, logits, 200);
  EXPECT_EQ(c[0], 200);
  o.min_p = 1.5;
  EXPECT_THROW(Sampler{o}, Error);
}

TEST(Sampler, NeutralControlsChangeNothing) {
  const std::vector<float> logits = {0.3f, 0.1f, -0.2f, 0.25f, 0.0f};
  SamplingOptions a;
  a.temperature = 0.9;
  a.top_k = 4;
  a.top_p = 0.95;
  a.seed = 5;
  SamplingOptions b = a;
  b.min_p = 0.0;
  b.penalties.repeat_last_n = -1;  // window without a penalty
  Sampler x(a), y(b);
  y.set_prompt({0, 3});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(x.sample(logits.data(), 5), y.sample(logits.data(), 5));
}

TEST(StopStrings, SpanningPiecesHeldBackAndNeverShown) {
  StopStrings s({"END"});
  std::string shown;
  shown += s.push("abc E");
  EXPECT_EQ(shown, "abc ");  // "E" could begin "END"
  shown += s.push("N");
  EXPECT_EQ(shown, "abc ");
  shown += s.push("D and more");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "END");
  EXPECT_EQ(shown, "abc ");
  EXPECT_EQ(s.push("later"), "");
  EXPECT_EQ(s.finish(), "");
  EXPECT_EQ(s.visible(), "abc ");
}

TEST(StopStrings, ReleasesWhatTurnsOutNotToBeAStop) {
  StopStrings s({"END", "\n\nUser:"});
  std::string shown;
  shown += s.push("x EN");
  EXPECT_EQ(shown, "x ");
  shown += s.push("Y\n");
  EXPECT_EQ(shown, "x ENY");  // "\n" is held: it may begin "\n\nUser:"
  shown += s.push("\nUse");
  EXPECT_EQ(shown, "x ENY");
  shown += s.push("d");
  EXPECT_EQ(shown, "x ENY\n\nUsed");
  shown += s.push(" E");
  shown += s.finish();  // no more text: the held "E" is released
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(shown, "x ENY\n\nUsed E");
}

TEST(StopStrings, EarliestStopWinsAndPiecesCarryManyCharacters) {
  StopStrings s({"world", "o w", ""});  // the empty string is ignored
  EXPECT_EQ(s.push("Hel"), "Hel");
  EXPECT_EQ(s.push("lo wo"), "l");  // "o w" is found at once
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "o w");
  EXPECT_EQ(s.visible(), "Hell");
  // Held text is cut on a character boundary: "é" (2 bytes) is not split.
  StopStrings u({"\xC3\xA9!"});
  EXPECT_EQ(u.push("caf\xC3\xA9"), "caf");
  EXPECT_EQ(u.push("?"), "\xC3\xA9?");
}

TEST(Logprobs, LogSoftmaxAndTopAlternatives) {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(2.0f)};  // p = 1/8, 2/8, 3/8, 2/8
  TokenLogprobs t = token_logprobs(logits.data(), 4, 1, 3);
  EXPECT_EQ(t.token, 1);
  EXPECT_NEAR(t.logprob, std::log(0.25), 1e-6);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[0].first, 2);
  EXPECT_NEAR(t.top[0].second, std::log(0.375), 1e-6);
  EXPECT_EQ(t.top[1].first, 1);  // a tie: the lower id first
  EXPECT_EQ(t.top[2].first, 3);
  EXPECT_TRUE(token_logprobs(logits.data(), 4, 0, 0).top.empty());
}

}  // namespace
